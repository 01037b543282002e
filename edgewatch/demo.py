"""``edgewatch demo``: the whole system on one machine, for a first look.

Starts a private MQTT broker, three reference tier centers (city, district, street), the
controller, two simulated gateways (each the real agent reading simulated water gauges on a
pseudo-terminal) and a third on the flood-station scenario: Modbus gauges plus the stations
that push, an SL651 river station and an HJ212 air and water monitor dialing in to the
agent's listeners over TCP and an SL651 rain station on a serial line. Runs until Ctrl-C
(or SIGTERM), or ``--seconds N``; then prints a JSON summary as its last line, taken while
every part still runs, and stops them all. A stop by signal exits 0 (it is the normal way
to end the demo); after ``--seconds N`` it exits 0 only if every gateway came online,
readings were stored, every center received some and a station of each protocol reported.
Without ``--workdir`` it works in a temporary folder, removed on exit (kept when it failed,
for its logs).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
from pathlib import Path
from typing import Any

from edgewatch.broker import BrokerError, Mosquitto, demo_broker
from edgewatch.processes import ProcessGroup
from edgewatch.system import (
    CENTERS,
    GATEWAYS,
    PLACE_NAMES,
    STATION_GATEWAY,
    STATION_GATEWAY_PLACE,
    GatewayTiming,
    LocalSystem,
    StartupError,
)

STATUS_EVERY_S = 5.0
FLOOD_TIME_SCALE = 120.0  # the flood-station's three hours of storm in 90 s
STATION_PROTOCOLS = frozenset({"sl651", "hj212"})

# Each simulated gauge watches a river section, so the risk map and the alert chain have
# something to show. The simulated river swings 230-270 cm over ten minutes: the first
# section's levels put it in blue and yellow at its crest, the second's keep it green.
DEMO_RISK_POINTS = """
[[risk_points]]
id = "jialing-grid-1"
name = "Jialing river, grid 1"
category = "water_level"
place = "cq/yuzhong/jiefangbei/grid-1"
lon = 106.5818
lat = 29.5655
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
lon = 106.5812
lat = 29.5572
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


def stations_reporting(summary: dict[str, Any]) -> set[str]:
    """The protocols of the stations that have a reading stored."""
    return {s["protocol"] for s in summary.get("stations", {}).values() if s["value"] is not None}


def load_outlines(system: LocalSystem) -> None:
    """Chongqing's 38 district outlines as the map's offline base layer, loaded the
    operator's way (``edgewatch controller import-boundaries``)."""
    from edgewatch.chongqing import BoundariesMissingError  # noqa: PLC0415
    from edgewatch.city_map import import_outlines  # noqa: PLC0415

    try:
        import_outlines(system)
    except (BoundariesMissingError, RuntimeError) as exc:
        print(f"[demo] map: no district outlines ({exc})")
        return
    print(f"[demo] map: {system.base_url}/console/#/map (Chongqing's 38 districts, offline)")


def demo_succeeded(summary: dict[str, Any]) -> bool:
    online = summary.get("gateways", {}).get("online", 0)
    centers = summary.get("centers", {})
    return (
        online == len(GATEWAYS) + 1
        and summary.get("readings_stored", 0) > 0
        and len(centers) == len(CENTERS)
        and all(c.get("received", 0) > 0 for c in centers.values())
        and stations_reporting(summary) == STATION_PROTOCOLS
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
    return (  # "centers received" last: scripts read the counts at the end of the line
        f"[demo] gateways: {gateways or 'none yet'} | readings stored: "
        f"{summary.get('readings_stored', 0)} | stations: {stations or 'none yet'}"
        f" | centers received: {centers}"
    )


def verdict(summary: dict[str, Any]) -> str:
    """One line for a person: did every part do its job?"""
    if "error" in summary:
        return f"[demo] no summary: {summary['error']}"
    if demo_succeeded(summary):
        return (
            "[demo] every gateway came online, readings were stored, every center received"
            " some, a station of each protocol reported"
        )
    missing = []
    online = summary.get("gateways", {}).get("online", 0)
    if online < len(GATEWAYS) + 1:
        missing.append(f"{online} of {len(GATEWAYS) + 1} gateways online")
    silent = STATION_PROTOCOLS - stations_reporting(summary)
    if silent:
        missing.append("no station reported yet for " + ", ".join(sorted(silent)))
    if not summary.get("readings_stored", 0):
        missing.append("no reading stored")
    idle = [n for n, c in summary.get("centers", {}).items() if not c.get("received", 0)]
    if idle:
        missing.append("nothing received by " + ", ".join(idle))
    return "[demo] not everything worked yet: " + "; ".join(missing)


def take_summary(system: LocalSystem) -> dict[str, Any]:
    """The system's summary with each station's latest value, or ``{"error": ...}`` if
    the controller does not answer."""
    try:
        summary = system.summary()
        summary["stations"] = system.station_readings(STATION_GATEWAY)
        return summary
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return {"error": f"the controller at {system.base_url} did not answer: {exc}"}


class StartInterruptedError(BaseException):
    """A stop signal arrived before every part had started (a BaseException, as
    KeyboardInterrupt is, so that no `except Exception` on the way swallows it)."""


class StopSignals:
    """The signals that stop the demo: SIGINT (Ctrl-C: a terminal sends it to the whole
    foreground process group, but the parts run in groups of their own), SIGTERM (``timeout``,
    ``kill``) and SIGHUP (the terminal closed).

    While the parts start, a signal interrupts the start (``StartInterruptedError``); once
    they run, it ends the status loop at its next turn, so the summary is taken while every
    part still answers. Later signals change nothing: the stop is already under way.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: str | None = None
        self.starting = True
        for signum in self.SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            return
        self.received = signal.Signals(signum).name
        if self.starting:
            self.starting = False
            raise StartInterruptedError(self.received)


def run(seconds: float | None, workdir: Path, *, temporary: bool) -> int:
    print(f"[demo] working directory: {workdir}")
    print(
        f"[demo] logs: {workdir / 'logs'}/ (one file per part)"
        + ("; the folder is removed on exit, keep it with --workdir DIR" if temporary else "")
    )
    stop = StopSignals()
    try:
        broker = demo_broker(workdir / "broker")
    except BrokerError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 2
    try:
        with broker, ProcessGroup(workdir / "logs") as procs:
            summary = run_system(seconds, workdir, broker, procs, stop)
    except StartInterruptedError as exc:
        print(f"[demo] stopped ({exc}) while starting: every part is stopped")
        return 0
    print(verdict(summary))
    print(json.dumps(summary, sort_keys=True))
    if stop.received is not None:
        return 0  # stopping is the normal way to end the demo; the summary tells how it went
    return 0 if demo_succeeded(summary) else 1


def run_system(
    seconds: float | None,
    workdir: Path,
    broker: Mosquitto,
    procs: ProcessGroup,
    stop: StopSignals,
) -> dict[str, Any]:
    """Start every part, print a status line every few seconds until ``seconds`` pass or a
    stop signal arrives, and return the summary taken before anything is stopped."""
    print(f"[demo] {broker.name} on 127.0.0.1:{broker.port}")
    # Webhooks to the centers are signed (HMAC-SHA256) with a secret made for this run.
    system = LocalSystem(workdir, broker.port, procs, center_secret=secrets.token_hex(16))
    system.start_centers()
    for spec, port in system.centers.items():
        print(f"[demo] {spec.tier} center {spec.name}: http://127.0.0.1:{port}/received")
    system.start_controller(extra_config=DEMO_RISK_POINTS)
    system.name_places(PLACE_NAMES)
    print(f"[demo] controller API: {system.api} (OpenAPI: {system.base_url}/docs)")
    print(f"[demo] web console: {system.base_url}/console/ (demo mode: no login)")
    load_outlines(system)
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
    stop.starting = False
    print("[demo] running" + (f" for {seconds:g} s" if seconds else "; Ctrl-C stops it"))
    started = time.monotonic()
    next_status = started + STATUS_EVERY_S
    while stop.received is None:
        now = time.monotonic()
        if seconds is not None and now - started >= seconds:
            break
        if now >= next_status:
            print(status_line(take_summary(system)), flush=True)
            next_status = now + STATUS_EVERY_S
        time.sleep(0.2)
    if stop.received is not None:
        print(f"[demo] stopping ({stop.received}): summary first, then every part")
    return take_summary(system)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edgewatch demo", description=__doc__)
    parser.add_argument("--seconds", type=float, help="run this long, then print a summary")
    parser.add_argument("--workdir", type=Path, help="where configs, databases and logs go")
    args = parser.parse_args(argv)
    if args.seconds is not None and args.seconds <= 0:
        parser.error("--seconds must be positive")
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="edgewatch-demo-")) if temporary else args.workdir
    status = 1
    try:
        status = run(args.seconds, workdir.resolve(), temporary=temporary)
    except StartupError as exc:
        print(f"[demo] failed: {exc}", file=sys.stderr)
    finally:
        if temporary and status == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        elif temporary:
            print(f"[demo] kept {workdir} for its logs ({workdir / 'logs'}/)", file=sys.stderr)
    return status
