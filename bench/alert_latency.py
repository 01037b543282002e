"""Second-level push, measured from the edge: a gauge's value steps over its red line, and
the clock runs until the slowest of the three tier centers has the alert.

``python -m bench.alert_latency [--alerts 250] [--gauges 10] [--poll-interval-s 0.1]
[--backlog-readings 1000000] [--timeout-s 30]``

Real parts, each its own process: a private mosquitto; the controller (``edgewatch
controller run``); a firmware simulator serving ``--gauges`` water gauges on a 115200-baud
Modbus RTU bus (``edgewatch sim run``); the real agent polling each gauge every
``--poll-interval-s``, with the red line pushed to it by the controller (``set-rules``), so
the edge rule is evaluated on the agent; three reference centers (``edgewatch center run``:
street, district, city; signatures verified), each stamping the alerts it receives with its
clock (``GET /received/alerts``): centers of their own, as in the field, so the replay they
are forwarded does not queue their alerts behind this process's work. One risk point per
gauge: red at 300 cm, no hold.

An alert is a step: the benchmark holds a gauge's level register at 350 cm through the
simulator's control socket (``set``), then, once the alert is at the centers, releases it
(the river's own ~250 cm: green; the controller resolves the episode) before the gauge
steps again. Steps go in rounds, one per gauge, ``--step-interval-ms`` apart. Latency of
a step: from the moment of the step to the slowest center's receipt of the raised alert
(``*_ms``, the headline: what a user sees, the agent's polling included), and from the
source timestamp of the reading that crossed (``from_reading``: the software alone). A
step whose alert does not reach every center that is up within ``--timeout-s`` counts in
``alerts_lost``, a failure, never a dropped sample.

Three conditions, ``--alerts`` steps each:
- quiet: the agent's own readings only;
- backlog: meanwhile another gateway replays ``--backlog-readings`` buffered readings on
  the backlog lane as fast as the broker takes them (paho; forwarded to the same centers);
- center down: the district center is stopped; street and city are measured, then the
  district comes back and must receive every alert it missed (else ``alerts_lost``).

The last line printed is one JSON object: ``quiet_p50_ms``, ``quiet_p99_ms``,
``backlog_p99_ms``, ``center_down_p99_ms``, ``alerts_lost``, the details and the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import wire
from bench.common import machine, percentile, query, start_controller, stop
from edgewatch.broker import Mosquitto, free_port
from edgewatch.processes import Child, ProcessGroup
from edgewatch.system import GatewayTiming, LocalSystem, accepts_on, get_json, wait_for_child
from edgewatch.waiting import wait_until
from firmware_sim.control import send

SECRET = "bench-secret-shared-with-the-centers"
GATEWAY = "gw-bench"
PLACE = "cq/yuzhong/jiefangbei/grid-1"
TIERS = {"street": "cq/yuzhong/jiefangbei", "district": "cq/yuzhong", "city": "cq"}
RED_CM = 300.0
STEP_RAW = 3500  # the level register, cm x10: 350 cm, past red
BATCH_READINGS = 500


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def controller_extra(urls: dict[str, str], gauges: int) -> str:
    lines = [
        "[forwarding]\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.5\n",
        f'[[gateways]]\nid = "{GATEWAY}"\nplace = "{PLACE}"\n',
        f'[[gateways]]\nid = "gw-backlog"\nplace = "{PLACE}"\n',
    ]
    for tier, place in TIERS.items():
        lines.append(
            f'[[centers]]\nname = "{tier}"\ntier = "{tier}"\nplace = "{place}"\n'
            f'url = "{urls[tier]}"\nsecret = "{SECRET}"\n'
        )
    for i in range(1, gauges + 1):
        lines.append(
            f'[[risk_points]]\nid = "p{i}"\ncategory = "water_level"\nplace = "{PLACE}"\n'
            f'[[risk_points.metrics]]\ndevice = "{GATEWAY}.gauge-{i}"\nmetric = "level_cm"\n'
            f"thresholds = {{red = {RED_CM}}}\nhold_s = 0\n"
        )
    return "\n".join(lines)


def scenario_toml(gauges: int) -> str:
    text = 'name = "alert-latency"\n\n[[buses]]\nname = "bus1"\nprotocol = "modbus_rtu"\n'
    text += "baud = 115200\n"
    for slave in range(1, gauges + 1):
        text += (
            f'\n[[buses.devices]]\nname = "gauge-{slave}"\nmodel = "water_level"\n'
            f"slave = {slave}\nseed = {slave}\n"
        )
    return text


# -- the backlog replay (another gateway, as fast as the broker takes it) ------------------


def backlog_payloads(total: int) -> list[bytes]:
    """``total`` old readings of gw-backlog as batches, built before the clock starts (a
    gateway builds them on its own CPU, not the measuring machine's)."""
    base_ts = now_ms() - 86_400_000
    payloads = []
    for start in range(1, total + 1, BATCH_READINGS):
        stop_at = min(start + BATCH_READINGS, total + 1)
        readings = ",".join(
            f'{{"seq":{s},"ts_ms":{base_ts + s},"device":"logger-{s % 50}",'
            f'"metric":"level_cm","value":{50 + s % 7},"unit":"cm","quality":"good"}}'
            for s in range(start, stop_at)
        )
        payloads.append(f'{{"v":1,"session":1,"readings":[{readings}]}}'.encode())
    return payloads


def replay_backlog(broker: Mosquitto, payloads: list[bytes]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-gw-backlog")
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    topic = wire.topic_for("gw-backlog", wire.TopicKind.BACKLOG)
    try:
        wait_until(client.is_connected, timeout_s=5, message="gw-backlog connected")
        infos = [client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(timeout=600)
    finally:
        client.disconnect()
        client.loop_stop()


# -- steps and what the centers received ----------------------------------------------------


@dataclass
class Step:
    point: str
    device: str
    at_ms: int
    # Per center, the raised alert as it arrived: received_ms (the center's clock) and the
    # message's source_ts_ms, raised_ms (the controller's) and source.
    arrivals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def latency_ms(self, centers: list[str]) -> dict[str, float] | None:
        """To the slowest of ``centers``: from the step, from the reading that crossed, and
        that split at the controller's raising; None if a center never had it."""
        if not all(c in self.arrivals for c in centers):
            return None
        slowest = max(self.arrivals[c]["received_ms"] for c in centers)
        alert = self.arrivals[centers[0]]
        return {
            "from_step": slowest - self.at_ms,
            "from_reading": slowest - alert["source_ts_ms"],
            "reading_to_raised": alert["raised_ms"] - alert["source_ts_ms"],
            "raised_to_slowest_center": slowest - alert["raised_ms"],
        }


class Center:
    """A reference center as its own process; what it received, read over HTTP."""

    def __init__(self, procs: ProcessGroup, tier: str) -> None:
        self.procs = procs
        self.tier = tier
        self.port = free_port()
        self.child: Child | None = None
        self.alerts: list[dict[str, Any]] = []  # every alert message received, in order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or start again, on the same port, with nothing received yet)."""
        self.alerts = []
        self.child = self.procs.start_cli(
            f"center-{self.tier}", "center", "run", "--name", self.tier, "--tier", self.tier,
            "--port", str(self.port), "--secret", SECRET,
        )  # fmt: skip
        wait_for_child(self.child, f"center {self.tier}", accepts_on(self.port), 20)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()

    def fetch(self) -> list[dict[str, Any]]:
        """Every alert message received so far (asks only for the new ones)."""
        url = f"{self.url}/received/alerts?from={len(self.alerts)}"
        self.alerts += get_json(url, timeout_s=10)["alerts"]
        return self.alerts

    def rejected_signatures(self) -> int:
        return int(get_json(f"{self.url}/received", timeout_s=10)["rejected_signatures"])


class Bench:
    def __init__(
        self, centers: dict[str, Center], control: Path, api: str, timeout_s: float
    ) -> None:
        self.centers = centers
        self.control = control
        self.api = api
        self.timeout_s = timeout_s
        self.claimed: dict[str, set[int]] = {name: set() for name in centers}

    def set_level(self, device: str, raw: int | None) -> None:
        registers = {} if raw is None else {"level": raw}
        answer = send(self.control, {"cmd": "set", "device": device, "registers": registers})
        if not answer.get("ok"):
            raise RuntimeError(f"the simulator refused a set on {device}: {answer}")

    def match(self, steps: list[Step], center: str) -> None:
        """Give each step the first raised alert of its point that the controller raised
        after it (by the controller's ``raised_ms``: the reading's own time is taken as its
        read starts, which may be before a step that lands during the read)."""
        raised = [
            a
            for a in self.centers[center].fetch()
            if a["action"] == "raised" and a["alert_id"] not in self.claimed[center]
        ]
        for step in steps:
            if center in step.arrivals:
                continue
            for alert in raised:
                if alert["point"] == step.point and alert["raised_ms"] >= step.at_ms:
                    step.arrivals[center] = alert
                    self.claimed[center].add(alert["alert_id"])
                    break

    def wait_arrivals(self, steps: list[Step], up: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            for center in up:
                self.match(steps, center)
            if all(c in s.arrivals for s in steps for c in up) or time.monotonic() > deadline:
                return
            time.sleep(0.02)  # polling what the centers recorded

    def open_points(self) -> set[str]:
        url = f"{self.api}/alerts?open=true&limit=500"
        return {a["point"] for a in get_json(url, timeout_s=10)}

    def round(self, gauges: int, interval_s: float, up: list[str]) -> list[Step]:
        """Step every gauge up, wait for the alerts, release them, wait for resolution."""
        steps = []
        for i in range(1, gauges + 1):
            step = Step(point=f"p{i}", device=f"gauge-{i}", at_ms=now_ms())
            self.set_level(step.device, STEP_RAW)
            steps.append(step)
            time.sleep(interval_s)  # pacing the steps, not waiting for a result
        self.wait_arrivals(steps, up, self.timeout_s)
        for step in steps:
            self.set_level(step.device, None)
        points = {s.point for s in steps}
        wait_until(
            lambda: not (self.open_points() & points),
            timeout_s=self.timeout_s,
            message="the round's alerts resolved (the gauges back to green)",
        )
        return steps


def summary(steps: list[Step], up: list[str]) -> dict[str, Any]:
    measured = [m for m in (s.latency_ms(up) for s in steps) if m is not None]
    sources = [s.arrivals[up[0]]["source"] for s in steps if up[0] in s.arrivals]

    def figures(part: str) -> dict[str, float | None]:
        values = [m[part] for m in measured]
        return {
            "p50_ms": round(statistics.median(values), 1) if values else None,
            "p99_ms": round(percentile(values, 99), 1) if values else None,
            "max_ms": round(max(values), 1) if values else None,
        }

    return {
        **figures("from_step"),
        "from_reading": figures("from_reading"),
        "reading_to_raised": figures("reading_to_raised"),
        "raised_to_slowest_center": figures("raised_to_slowest_center"),
        "steps": len(steps),
        "lost": len(steps) - len(measured),
        "lost_examples": [
            {"point": s.point, "at_ms": s.at_ms, "centers_with_it": sorted(s.arrivals)}
            for s in steps
            if s.latency_ms(up) is None
        ][:5],
        "raised_at_the_edge": sum(1 for s in sources if s.startswith("edge:")),
        "centers": up,
    }


def measure(bench: Bench, args: argparse.Namespace, up: list[str]) -> list[Step]:
    steps: list[Step] = []
    while len(steps) < args.alerts:
        gauges = min(args.gauges, args.alerts - len(steps))
        steps += bench.round(gauges, args.step_interval_ms / 1000, up)
    return steps


def backlog_stored(db: Path) -> int:
    return int(query(db, "SELECT count(*) FROM readings WHERE gateway = 'gw-backlog'")[0][0])


def rules_in_force(api: str) -> bool:
    commands = get_json(f"{api}/gateways/{GATEWAY}/commands", timeout_s=10)
    return any(c["type"] == "set-rules" and c["state"] == "succeeded" for c in commands)


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "alerts_per_condition": args.alerts,
        "gauges": args.gauges,
        "poll_interval_s": args.poll_interval_s,
        "step_interval_ms": args.step_interval_ms,
    }
    everything = list(TIERS)
    with tempfile.TemporaryDirectory(prefix="ew-bench-alerts-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        broker = stack.enter_context(Mosquitto(workdir / "broker"))
        procs = stack.enter_context(ProcessGroup(workdir / "logs"))
        centers = {tier: Center(procs, tier) for tier in TIERS}
        for center in centers.values():
            center.start()
        urls = {t: f"{c.url}/ingest" for t, c in centers.items()}
        controller, url, db = start_controller(
            workdir, broker.port, controller_extra(urls, args.gauges)
        )
        stack.callback(stop, controller)
        api = f"{url}/api/v1"
        system = LocalSystem(workdir, broker.port, procs)
        scenario = workdir / "scenario.toml"
        scenario.write_text(scenario_toml(args.gauges))
        timing = GatewayTiming(poll_interval_s=args.poll_interval_s, heartbeat_interval_s=2.0)
        system.start_scenario_gateway(GATEWAY, str(scenario), time_scale=1.0, timing=timing)
        manifest = json.loads((workdir / f"{GATEWAY}-sim.json").read_text())
        control = Path(manifest["devices"][0]["control"])
        wait_until(lambda: rules_in_force(api), timeout_s=60, message="edge rules pushed")
        bench = Bench(centers, control, api, args.timeout_s)

        quiet = measure(bench, args, everything)
        results["quiet"] = summary(quiet, everything)

        payloads = backlog_payloads(args.backlog_readings)
        replay = threading.Thread(target=replay_backlog, args=(broker, payloads), daemon=True)
        started = time.monotonic()
        replay.start()
        wait_until(lambda: backlog_stored(db) > 0, timeout_s=60, message="backlog ingest")
        before = backlog_stored(db)
        backlog = measure(bench, args, everything)
        measured_s, after = time.monotonic() - started, backlog_stored(db)
        results["backlog"] = {
            **summary(backlog, everything),
            "backlog_readings": args.backlog_readings,
            "backlog_stored_while_measuring": after - before,
            "measured_from_replay_start_s": round(measured_s, 1),
            "replay_ingest_still_running_at_end": after < args.backlog_readings,
        }
        wait_until(
            lambda: backlog_stored(db) >= args.backlog_readings,
            timeout_s=600,
            interval_s=0.5,
            message="backlog stored",
        )
        results["backlog"]["replay_stored_s"] = round(time.monotonic() - started, 1)
        replay.join(timeout=60)

        centers["district"].stop()
        up = ["street", "city"]
        down = measure(bench, args, up)
        results["center_down"] = summary(down, up)
        centers["district"].start()
        bench.claimed["district"] = set()
        returned = time.monotonic()
        bench.wait_arrivals(down, ["district"], args.timeout_s)
        missed = [s for s in down if "district" not in s.arrivals]
        results["center_down"]["district_missed_after_return"] = len(missed)
        results["center_down"]["district_caught_up_s"] = (
            round(time.monotonic() - returned, 2) if not missed else None
        )
        results["center_down"]["district_rejected_signatures"] = centers[
            "district"
        ].rejected_signatures()

    lost = sum(results[c]["lost"] for c in ("quiet", "backlog", "center_down"))
    results["quiet_p50_ms"] = results["quiet"]["p50_ms"]
    results["quiet_p99_ms"] = results["quiet"]["p99_ms"]
    results["backlog_p99_ms"] = results["backlog"]["p99_ms"]
    results["center_down_p99_ms"] = results["center_down"]["p99_ms"]
    results["alerts_lost"] = lost + results["center_down"]["district_missed_after_return"]
    results["machine"] = machine()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alert_latency")
    parser.add_argument("--alerts", type=int, default=250, help="steps per condition")
    parser.add_argument("--gauges", type=int, default=10, help="gauges, one risk point each")
    parser.add_argument("--poll-interval-s", type=float, default=0.1, help="the agent's polling")
    parser.add_argument("--step-interval-ms", type=float, default=50.0, help="between steps")
    parser.add_argument("--backlog-readings", type=int, default=1_000_000)
    parser.add_argument("--timeout-s", type=float, default=30.0, help="for each round's alerts")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = run(args)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, separators=(",", ":")), flush=True)
    return 1 if results["alerts_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
