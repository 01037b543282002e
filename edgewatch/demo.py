"""``edgewatch demo``: the whole system on one machine, for a first look.

Starts a private MQTT broker, three reference tier centers (city, district, street), the
controller, and two simulated gateways: each is the real agent reading simulated firmware
on a pseudo-terminal. Runs until Ctrl-C, or ``--seconds N``; then prints a JSON summary as
its last line and exits 0 only if every gateway came online, readings were stored and every
center received some.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgewatch.broker import BrokerError, demo_broker, free_port, port_accepts
from edgewatch.processes import Child, ProcessGroup
from edgewatch.waiting import wait_until

GATEWAYS = {
    "gw-demo-1": "cq/yuzhong/jiefangbei/grid-1",
    "gw-demo-2": "cq/yuzhong/jiefangbei/grid-2",
}


@dataclass(frozen=True)
class CenterSpec:
    name: str
    tier: str
    place: str


CENTERS = (
    CenterSpec("chongqing-city", "city", "cq"),
    CenterSpec("yuzhong-district", "district", "cq/yuzhong"),
    CenterSpec("jiefangbei-street", "street", "cq/yuzhong/jiefangbei"),
)
STATUS_EVERY_S = 5.0


def get_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (loopback)
        return json.load(response)


def controller_config(mqtt_port: int, http_port: int, db: Path, center_ports: list[int]) -> str:
    lines = [
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n',
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n',
        f'[storage]\npath = "{db}"\n',
    ]
    for gateway_id, place in GATEWAYS.items():
        lines.append(f'[[gateways]]\nid = "{gateway_id}"\nplace = "{place}"\n')
    for spec, port in zip(CENTERS, center_ports, strict=True):
        lines.append(
            f'[[centers]]\nname = "{spec.name}"\ntier = "{spec.tier}"\nplace = "{spec.place}"\n'
            f'url = "http://127.0.0.1:{port}/ingest"\n'
        )
    return "\n".join(lines)


def agent_config(gateway_id: str, mqtt_port: int, data_dir: Path, pty: str) -> str:
    return f"""\
[gateway]
id = "{gateway_id}"
data_dir = "{data_dir}"
heartbeat_interval_s = 5.0

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
keepalive_s = 5

[[ports]]
name = "bus1"
url = "{pty}"
baud = 9600
parity = "N"
timeout_s = 0.3

[[devices]]
name = "river-gauge-1"
driver = "modbus_rtu"
port = "bus1"
slave = 1
interval_s = 1.0
[[devices.registers]]
metric = "level_cm"
address = 0
type = "u16"
scale = 0.1
unit = "cm"
[[devices.registers]]
metric = "status_word"
address = 1
type = "u16"
"""


class DemoError(RuntimeError):
    """A part of the demo did not come up; the message says which and shows its log."""


def wait_for_child(child: Child, what: str, ready: Callable[[], object], timeout_s: float) -> None:
    def check() -> object:
        if not child.alive:
            raise DemoError(f"{child.name} exited while starting:\n{child.log_tail()}")
        return ready()

    try:
        wait_until(check, timeout_s=timeout_s, interval_s=0.05, message=what)
    except TimeoutError as exc:
        raise DemoError(f"{exc}\n--- {child.log_path} ---\n{child.log_tail()}") from None


def http_ok(url: str) -> bool:
    try:
        get_json(url, timeout_s=0.5)
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return True


def accepts_on(port: int) -> Callable[[], bool]:
    return lambda: port_accepts("127.0.0.1", port)


def summarise(api: str, center_ports: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = get_json(f"{api}/api/v1/summary")
    for spec, port in zip(CENTERS, center_ports, strict=True):
        entry = summary.setdefault("centers", {}).setdefault(spec.name, {"tier": spec.tier})
        try:
            entry["received"] = get_json(f"http://127.0.0.1:{port}/received")["readings"]
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            entry["received"] = 0
    return summary


def demo_succeeded(summary: dict[str, Any]) -> bool:
    online = summary.get("gateways", {}).get("online", 0)
    centers = summary.get("centers", {})
    return (
        online == len(GATEWAYS)
        and summary.get("readings_stored", 0) > 0
        and len(centers) == len(CENTERS)
        and all(c.get("received", 0) > 0 for c in centers.values())
    )


def status_line(summary: dict[str, Any]) -> str:
    gateways = ", ".join(f"{n} {state}" for state, n in summary.get("gateways", {}).items())
    centers = ", ".join(
        f"{name} {c.get('received', 0)}" for name, c in summary.get("centers", {}).items()
    )
    return (
        f"[demo] gateways: {gateways or 'none yet'} | readings stored: "
        f"{summary.get('readings_stored', 0)} | centers received: {centers}"
    )


def run(seconds: float | None, workdir: Path) -> int:
    print(f"[demo] working directory: {workdir}")
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        broker = demo_broker(workdir / "broker")
    except BrokerError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 2
    with broker, ProcessGroup(workdir / "logs") as procs:
        print(f"[demo] {broker.name} on 127.0.0.1:{broker.port}")
        center_ports = [free_port() for _ in CENTERS]
        for spec, port in zip(CENTERS, center_ports, strict=True):
            child = procs.start_cli(
                f"center-{spec.name}", "center", "run", "--name", spec.name,
                "--tier", spec.tier, "--port", str(port),
            )  # fmt: skip
            wait_for_child(child, f"center {spec.name}", accepts_on(port), 20)
            print(f"[demo] {spec.tier} center {spec.name}: http://127.0.0.1:{port}/received")

        http_port = free_port()
        api = f"http://127.0.0.1:{http_port}"
        config_path = workdir / "controller.toml"
        config_path.write_text(
            controller_config(broker.port, http_port, workdir / "controller.db", center_ports)
        )
        controller = procs.start_cli(
            "controller", "controller", "run", "--config", str(config_path)
        )
        wait_for_child(controller, "controller API", lambda: http_ok(f"{api}/api/v1/healthz"), 30)
        print(f"[demo] controller API: {api}/api/v1 (OpenAPI: {api}/docs)")

        for gateway_id in GATEWAYS:
            manifest = workdir / f"{gateway_id}-sim.json"
            sim = procs.start_cli(f"sim-{gateway_id}", "sim", "run", "--manifest", str(manifest))
            wait_for_child(sim, f"simulator manifest {manifest}", manifest.exists, 20)
            pty = json.loads(manifest.read_text())["devices"][0]["pty"]
            agent_path = workdir / f"{gateway_id}.toml"
            agent_path.write_text(agent_config(gateway_id, broker.port, workdir / gateway_id, pty))
            procs.start_cli(f"agent-{gateway_id}", "agent", "run", "--config", str(agent_path))
            print(f"[demo] gateway {gateway_id}: agent reading a simulated water gauge on {pty}")

        print("[demo] running" + (f" for {seconds:g} s" if seconds else "; Ctrl-C stops it"))
        started = time.monotonic()
        next_status = started + STATUS_EVERY_S
        try:
            while not stop_requested:
                now = time.monotonic()
                if seconds is not None and now - started >= seconds:
                    break
                if now >= next_status:
                    print(status_line(summarise(api, center_ports)), flush=True)
                    next_status = now + STATUS_EVERY_S
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("[demo] stopping")
        summary = summarise(api, center_ports)
    print(json.dumps(summary, sort_keys=True))
    return 0 if demo_succeeded(summary) else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edgewatch demo", description=__doc__)
    parser.add_argument("--seconds", type=float, help="run this long, then print a summary")
    parser.add_argument("--workdir", type=Path, help="where configs, databases and logs go")
    args = parser.parse_args(argv)
    if args.seconds is not None and args.seconds <= 0:
        parser.error("--seconds must be positive")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edgewatch-demo-"))
    try:
        return run(args.seconds, workdir.resolve())
    except DemoError as exc:
        print(f"[demo] failed: {exc}", file=sys.stderr)
        return 1
