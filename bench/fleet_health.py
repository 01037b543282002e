"""Fleet-health benchmark: 10,000 simulated gateways heartbeating every 10 s; kill 100 at
once and measure how fast the controller shows them offline, and that nobody else moves.

``python -m bench.fleet_health [--gateways 10000] [--kill 100] [--kill-mode silent|close]``;
last line: one JSON object with ``killed``, ``detected``, ``max_detect_s`` and
``false_transitions``. ``silent`` (the default) is the hard case: the link goes quiet and the
broker notices after 1.5 keepalives (keepalive 10 s), then sends the will.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import machine, query, start_controller, stop
from bench.fleet_sim import FleetSim, gateway_ids
from edgewatch.broker import Mosquitto


def online_count(db: Path) -> int:
    return int(query(db, "SELECT count(*) FROM gateways WHERE state = 'online'")[0][0])


def run(args: argparse.Namespace) -> dict[str, Any]:
    ids = gateway_ids(args.gateways)
    interval_s = args.heartbeat_interval_s
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "broker") as broker:
            controller, _url, db = start_controller(workdir, broker.port)
            try:
                connect_started = time.monotonic()
                with FleetSim(
                    "127.0.0.1", broker.port, ids, keepalive_s=args.keepalive_s,
                    heartbeat_interval_s=interval_s,
                ) as fleet:  # fmt: skip
                    connect_s = time.monotonic() - connect_started
                    # Heartbeats spread evenly over the interval, as a real fleet's would be.
                    due = {g: time.monotonic() + random.uniform(0, interval_s) for g in ids}

                    def beat(until_s: float) -> None:
                        while time.monotonic() < until_s:
                            now = time.monotonic()
                            for gateway_id, due_s in due.items():
                                if due_s <= now and fleet.gateways[gateway_id].alive:
                                    fleet.heartbeat(gateway_id)
                                    due[gateway_id] = due_s + interval_s
                            fleet.pump(0.05)

                    settle_deadline = time.monotonic() + args.settle_timeout_s
                    while time.monotonic() < settle_deadline and online_count(db) < len(ids):
                        beat(time.monotonic() + 1)
                    settled_online = online_count(db)
                    beat(time.monotonic() + interval_s)  # one full heartbeat round, settled
                    baseline_id = int(
                        query(db, "SELECT coalesce(max(id), 0) FROM gateway_transitions")[0][0]
                    )
                    victims = set(random.sample(ids, args.kill))
                    kill_ms = time.time_ns() // 1_000_000
                    for gateway_id in victims:
                        fleet.kill(gateway_id, mode=args.kill_mode)
                    detect: dict[str, float] = {}
                    deadline = time.monotonic() + args.detect_timeout_s
                    while time.monotonic() < deadline and len(detect) < len(victims):
                        beat(time.monotonic() + 0.5)
                        for gateway, at_ms in query(
                            db,
                            "SELECT gateway, min(at_ms) FROM gateway_transitions"
                            " WHERE id > ? AND to_state = 'offline' GROUP BY gateway",
                            (baseline_id,),
                        ):
                            if gateway in victims:
                                detect[gateway] = (at_ms - kill_ms) / 1000
                    beat(time.monotonic() + 2)  # let any stray transition show up
                    others = query(
                        db,
                        "SELECT gateway, from_state, to_state, reason FROM gateway_transitions"
                        " WHERE id > ?",
                        (baseline_id,),
                    )
                    sim_resets = fleet.resets  # live sessions the broker dropped
                false = [row for row in others if row[0] not in victims]
            finally:
                stop(controller)
    return {
        "gateways": args.gateways,
        "heartbeat_interval_s": interval_s,
        "keepalive_s": args.keepalive_s,
        "kill_mode": args.kill_mode,
        "connect_s": round(connect_s, 1),
        "online_before_kill": settled_online,
        "killed": len(victims),
        "detected": len(detect),
        "max_detect_s": round(max(detect.values()), 2) if detect else None,
        "mean_detect_s": round(sum(detect.values()) / len(detect), 2) if detect else None,
        "false_transitions": len(false),
        "sim_sessions_lost": sim_resets,
        "false_examples": [list(row) for row in false[:3]],
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_health")
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--kill", type=int, default=100)
    parser.add_argument("--kill-mode", choices=["silent", "close"], default="silent")
    parser.add_argument("--heartbeat-interval-s", type=float, default=10.0)
    parser.add_argument("--keepalive-s", type=int, default=10)
    parser.add_argument("--settle-timeout-s", type=float, default=60.0)
    parser.add_argument("--detect-timeout-s", type=float, default=40.0)
    print(json.dumps(run(parser.parse_args(argv))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
