"""Fleet-health benchmark: 10,000 simulated gateways heartbeating every 10 s; kill 100 at
once and measure how fast the controller shows them offline, and that nobody else moves.

``python -m bench.fleet_health [--gateways 10000] [--kill 100] [--kill-mode silent|close]``;
last line: one JSON object with ``killed``, ``detected``, ``max_detect_s`` and
``false_transitions``. ``silent`` (the default) is the hard case: the link goes quiet and the
broker notices after 1.5 keepalives (keepalive 10 s), then sends the will.

Every gateway must be online before the kill (else the run fails: a gateway that never came
online cannot show a false transition). False transitions are counted from the kill until
the heartbeat-miss timeout (``--heartbeat-misses`` x the interval, 30 s) and a check
interval have passed, or detection ended if later: any survivor whose heartbeat the
controller lost track of in the kill's aftermath has been declared offline by then.
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

CHECK_INTERVAL_S = 1.0  # the controller's [health] check_interval_s (its default)


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

                    # How late the simulator sent a heartbeat at worst, since the kill: a
                    # load generator that falls behind makes false transitions of its own.
                    late_s = [0.0]

                    def beat(until_s: float) -> None:
                        while time.monotonic() < until_s:
                            now = time.monotonic()
                            for gateway_id, due_s in due.items():
                                if due_s <= now and fleet.gateways[gateway_id].alive:
                                    fleet.heartbeat(gateway_id)
                                    late_s[0] = max(late_s[0], now - due_s)
                                    due[gateway_id] = due_s + interval_s
                            fleet.pump(0.05)

                    settle_deadline = time.monotonic() + args.settle_timeout_s
                    while time.monotonic() < settle_deadline and online_count(db) < len(ids):
                        beat(time.monotonic() + 1)
                    settled_online = online_count(db)
                    if settled_online < len(ids):
                        return {
                            "error": f"only {settled_online} of {len(ids)} gateways online"
                            f" after {args.settle_timeout_s:g} s: nothing killed",
                            "gateways": args.gateways,
                            "online_before_kill": settled_online,
                            "machine": machine(),
                        }
                    beat(time.monotonic() + interval_s)  # one full heartbeat round, settled
                    baseline_id = int(
                        query(db, "SELECT coalesce(max(id), 0) FROM gateway_transitions")[0][0]
                    )
                    victims = set(random.sample(ids, args.kill))
                    kill_ms = time.time_ns() // 1_000_000
                    killed_at = time.monotonic()
                    late_s[0] = 0.0
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
                    # Watch the whole heartbeat-miss timeout after the kill (and a check).
                    watch_s = args.heartbeat_misses * interval_s + CHECK_INTERVAL_S + 1
                    beat(max(killed_at + watch_s, time.monotonic() + 2))
                    watched_s = time.monotonic() - killed_at
                    online_after = online_count(db)
                    others = query(
                        db,
                        "SELECT gateway, from_state, to_state, reason,"
                        " round((at_ms - ?) / 1000.0, 1) FROM gateway_transitions WHERE id > ?",
                        (kill_ms, baseline_id),
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
        "online_after_watch": online_after,
        "watched_after_kill_s": round(watched_s, 1),
        "killed": len(victims),
        "detected": len(detect),
        "max_detect_s": round(max(detect.values()), 2) if detect else None,
        "mean_detect_s": round(sum(detect.values()) / len(detect), 2) if detect else None,
        "false_transitions": len(false),
        "sim_sessions_lost": sim_resets,
        "sim_heartbeat_late_max_s": round(late_s[0], 2),
        # (gateway, from, to, reason, seconds after the kill)
        "false_examples": [list(row) for row in false[:6]],
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_health")
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--kill", type=int, default=100)
    parser.add_argument("--kill-mode", choices=["silent", "close"], default="silent")
    parser.add_argument("--heartbeat-interval-s", type=float, default=10.0)
    parser.add_argument("--keepalive-s", type=int, default=10)
    parser.add_argument(
        "--heartbeat-misses",
        type=int,
        default=3,
        help="the controller's [health] heartbeat_misses (its default): the watch lasts this"
        " many heartbeat intervals after the kill",
    )
    parser.add_argument("--settle-timeout-s", type=float, default=60.0)
    parser.add_argument("--detect-timeout-s", type=float, default=40.0)
    result = run(parser.parse_args(argv))
    print(json.dumps(result), flush=True)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
