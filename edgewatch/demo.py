"""``edgewatch demo``: the whole system on one machine, for a first look.

Starts a private MQTT broker, three reference tier centers (city, district, street), the
controller, two simulated gateways (each the real agent reading simulated water gauges on a
pseudo-terminal) and a third on the flood-station scenario: Modbus gauges plus the stations
that push, an SL651 river station and an HJ212 air and water monitor dialing in to the
agent's listeners over TCP and an SL651 rain station on a serial line. Runs until Ctrl-C,
or ``--seconds N``; then prints a JSON summary as its last line and exits 0 only if every
gateway came online, readings were stored, every center received some and a station of
each protocol reported.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgewatch.broker import BrokerError, demo_broker
from edgewatch.processes import ProcessGroup
from edgewatch.system import (
    CENTERS,
    GATEWAYS,
    STATION_GATEWAY,
    STATION_GATEWAY_PLACE,
    GatewayTiming,
    LocalSystem,
    StartupError,
)

STATUS_EVERY_S = 5.0
FLOOD_TIME_SCALE = 120.0  # the flood-station's three hours of storm in 90 s

# Each simulated gauge watches a river section, so the risk map and the alert chain have
# something to show. The simulated river swings 230-270 cm over ten minutes: the first
# section's levels put it in blue and yellow at its crest, the second's keep it green.
DEMO_RISK_POINTS = """
[[risk_points]]
id = "jialing-grid-1"
name = "Jialing river, grid 1"
category = "water_level"
place = "cq/yuzhong/jiefangbei/grid-1"
[[risk_points.metrics]]
device = "gw-demo-1.river-gauge-1"
metric = "level_cm"
preset = "water_level"
warning_level = 260.0
guarantee_level = 300.0

[[risk_points]]
id = "yangtze-grid-2"
name = "Yangtze river, grid 2"
category = "water_level"
place = "cq/yuzhong/jiefangbei/grid-2"
[[risk_points.metrics]]
device = "gw-demo-2.river-gauge-1"
metric = "level_cm"
preset = "water_level"
warning_level = 300.0
guarantee_level = 340.0

[[risk_points]]
id = "jialing-station-grid-3"
name = "Jialing river station, grid 3"
category = "water_level"
place = "cq/yuzhong/jiefangbei/grid-3"
[[risk_points.metrics]]
device = "gw-flood-1.river-st-1"
metric = "level_m"
preset = "water_level"
warning_level = 16.0
guarantee_level = 18.0
"""


def demo_succeeded(summary: dict[str, Any]) -> bool:
    online = summary.get("gateways", {}).get("online", 0)
    centers = summary.get("centers", {})
    reporting = {
        s["protocol"] for s in summary.get("stations", {}).values() if s["value"] is not None
    }
    return (
        online == len(GATEWAYS) + 1
        and summary.get("readings_stored", 0) > 0
        and len(centers) == len(CENTERS)
        and all(c.get("received", 0) > 0 for c in centers.values())
        and reporting == {"sl651", "hj212"}
    )


def status_line(summary: dict[str, Any]) -> str:
    gateways = ", ".join(f"{n} {state}" for state, n in summary.get("gateways", {}).items())
    centers = ", ".join(
        f"{name} {c.get('received', 0)}" for name, c in summary.get("centers", {}).items()
    )
    stations = ", ".join(
        f"{name} {s['value']:g} {s['unit'] or ''}".rstrip()
        for name, s in summary.get("stations", {}).items()
        if s["value"] is not None
    )
    return (
        f"[demo] gateways: {gateways or 'none yet'} | readings stored: "
        f"{summary.get('readings_stored', 0)} | centers received: {centers}"
        f" | stations: {stations or 'none yet'}"
    )


def full_summary(system: LocalSystem) -> dict[str, Any]:
    """The controller's summary, what the centers received and each station's last value."""
    summary = system.summary()
    summary["stations"] = system.station_readings(STATION_GATEWAY)
    return summary


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
        # Webhooks to the centers are signed (HMAC-SHA256) with a secret made for this run.
        system = LocalSystem(workdir, broker.port, procs, center_secret=secrets.token_hex(16))
        system.start_centers()
        for spec, port in system.centers.items():
            print(f"[demo] {spec.tier} center {spec.name}: http://127.0.0.1:{port}/received")
        system.start_controller(extra_config=DEMO_RISK_POINTS)
        print(f"[demo] controller API: {system.api} (OpenAPI: {system.base_url}/docs)")
        print(f"[demo] web console: {system.base_url}/console/ (demo mode: no login)")
        for gateway_id, place in GATEWAYS.items():
            system.start_gateway(gateway_id)
            print(f"[demo] gateway {gateway_id} at {place}: agent reading a simulated water gauge")
        flood = system.start_scenario_gateway(
            STATION_GATEWAY, "flood-station", time_scale=FLOOD_TIME_SCALE, timing=GatewayTiming()
        )
        print(
            f"[demo] gateway {STATION_GATEWAY} at {STATION_GATEWAY_PLACE}: Modbus gauges and"
            " stations that push to its listeners:"
        )
        for station in flood.stations:
            how = "dials in over TCP" if station["transport"] == "tcp" else "on a serial line"
            print(f"[demo]   {station['protocol']} {station['model']} {station['name']} {how}")

        print("[demo] running" + (f" for {seconds:g} s" if seconds else "; Ctrl-C stops it"))
        started = time.monotonic()
        next_status = started + STATUS_EVERY_S
        try:
            while not stop_requested:
                now = time.monotonic()
                if seconds is not None and now - started >= seconds:
                    break
                if now >= next_status:
                    print(status_line(full_summary(system)), flush=True)
                    next_status = now + STATUS_EVERY_S
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("[demo] stopping")
        summary = full_summary(system)
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
    except StartupError as exc:
        print(f"[demo] failed: {exc}", file=sys.stderr)
        return 1
