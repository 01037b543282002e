"""Readings per second the demo pipeline carries end to end.

``python -m bench.pipeline [--gateways 2] [--gauges 8] [--seconds 20] [--runs 3]``

The whole system as the demo runs it (real processes: mosquitto, three reference centers,
the controller, simulated gateways each with the real agent on a simulated RS-485 bus at
9600 baud), but with every gauge polled as fast as its bus allows. Counts readings stored
by the controller and received by the street center over a measured window after warm-up.
Prints one JSON object as its last line. A figure, not a target yet: at 9600 baud the
simulated buses, not the software, set the pace.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import machine, median
from edgewatch.broker import Mosquitto
from edgewatch.processes import ProcessGroup
from edgewatch.system import CENTERS, GatewayTiming, LocalSystem
from edgewatch.waiting import wait_until


def counts(system: LocalSystem) -> tuple[int, int]:
    summary = system.summary()
    street = summary["centers"][CENTERS[-1].name]
    return int(summary["readings_stored"]), int(street.get("received", 0))


def one_run(workdir: Path, gateways: int, gauges: int, seconds: float) -> dict[str, float]:
    timing = GatewayTiming(poll_interval_s=0.05, heartbeat_interval_s=5.0, gauges=gauges)
    with Mosquitto(workdir / "broker") as broker, ProcessGroup(workdir / "logs") as procs:
        system = LocalSystem(workdir, broker.port, procs)
        system.start_centers()
        system.start_controller()
        for index in range(1, gateways + 1):
            system.start_gateway(f"gw-demo-{index}", timing)
        wait_until(lambda: counts(system)[1] > 0, timeout_s=60, message="first delivery")
        stored_0, delivered_0 = counts(system)
        started = time.monotonic()
        time.sleep(seconds)  # the measured window, not a wait for a condition
        stored_1, delivered_1 = counts(system)
        elapsed = time.monotonic() - started
    return {
        "stored_per_s": (stored_1 - stored_0) / elapsed,
        "delivered_per_s": (delivered_1 - delivered_0) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--gauges", type=int, default=8, help="gauges per gateway bus")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="ew-bench-pipeline-") as tmp:
            result = one_run(Path(tmp), args.gateways, args.gauges, args.seconds)
        print(f"run {run + 1}: {json.dumps(result)}", flush=True)
        runs.append(result)
    figures: dict[str, Any] = {
        "bench": "pipeline",
        "gateways": args.gateways,
        "gauges_per_gateway": args.gauges,
        "window_s": args.seconds,
        "runs": args.runs,
        "readings_per_s": round(median([r["stored_per_s"] for r in runs]), 1),
        "delivered_per_s_street_center": round(median([r["delivered_per_s"] for r in runs]), 1),
        "machine": machine(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
