"""Duty notifications at a city's scale: 1,000 red alerts to 5,000 duty people in 500 grids.

``python -m bench.notify [--alerts N] [--grids N] [--people-per-grid N] [--rate PER_S]
[--down-s S] [--max-seconds S]``

A real mosquitto and the controller (in this process) with 500 grid rosters of 10 people
each, all on duty, reached through five JSON webhook channels on loopback (each person on
one of them); a red alert tells the grid on duty. This process plays the gateway: one live
reading past the red threshold per risk point (two per grid), ``--rate`` a second. The
first channel is down (its port closed) for the first ``--down-s`` seconds of the run.

Figures: ``first_notify_p99_ms`` (from the alert's raised time to the first message of it
taken by a receiver, p99 over alerts; the same for p50), ``lost`` (people never told of
their alert's step), ``duplicates`` (a person told twice of the same step). The last line
printed is one JSON object with the figures and the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import wire
from bench.common import machine, percentile
from controller.config import parse_config
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.json_sink import JsonReceiver
from edgewatch.waiting import WaitTimeoutError, wait_until

CHANNELS = 5
REF = re.compile(r"ref: alert (\d+) (\S+) (\S+)")


def grid_place(grid: int) -> str:
    district, street, cell = grid // 100, (grid // 10) % 10, grid % 10
    return f"cq/d{district}/s{street}/g{cell}"


def config(workdir: Path, broker: Mosquitto, sinks: list[JsonReceiver], args: Any) -> Any:
    week = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "start": "00:00", "end": "00:00"}  # fmt: skip
    rosters = []
    for grid in range(args.grids):
        people = [
            {"id": f"p{grid}-{i}", "name": f"Person {grid}-{i}",
             "contacts": [{"channel": f"hook-{(grid + i) % CHANNELS}", "to": f"p{grid}-{i}"}]}
            for i in range(args.people_per_grid)
        ]  # fmt: skip
        rosters.append({"place": grid_place(grid), "people": people,
                        "shifts": [{"person": p["id"], **week} for p in people]})  # fmt: skip
    points = [
        {"id": f"pt{n}", "category": "water_level", "place": grid_place(n % args.grids),
         "stale_after_s": 86400,
         "metrics": [{"device": f"gw-bench.gauge-{n}", "metric": "level_cm",
                      "thresholds": {"red": 100}}]}
        for n in range(args.alerts)
    ]  # fmt: skip
    data = {
        "api": {"auth": "demo"},
        "mqtt": {"host": broker.host, "port": broker.port},
        "http": {"host": "127.0.0.1", "port": 0},
        "storage": {"path": str(workdir / "controller.db")},
        "gateways": [{"id": "gw-bench", "place": "cq"}],
        "risk_points": points,
        "notify": {
            "link_secret": "a-benchmark-link-secret-of-32-bytes-at-least",
            "allowed_hosts": ["127.0.0.1"],
            "backoff_initial_s": 0.2,
            "backoff_max_s": 3.0,
            "request_timeout_s": 2.0,
            "senders": 6,
            "in_flight_per_channel": 3,
            "channels": [
                {"name": f"hook-{c}", "kind": "webhook", "url": f"{sink.url}?:to={{to}}"}
                for c, sink in enumerate(sinks)
            ],
            "routes": [
                {
                    "colours": ["red", "orange", "yellow", "blue"],
                    "layers": ["grid"],
                    "escalate_after_s": 3600,
                }
            ],
            "rosters": rosters,
        },
    }
    return parse_config(data)


def run(args: Any) -> dict[str, Any]:
    taken_ms: dict[tuple[int, str, str], list[int]] = {}
    lock = threading.Lock()

    def on_message(message: dict[str, Any]) -> None:
        found = REF.search(str(message.get("message", "")))
        if found is None:
            return
        key = (int(found[1]), found[2], found[3])
        with lock:
            taken_ms.setdefault(key, []).append(time.time_ns() // 1_000_000)

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-notify-")))
        broker = stack.enter_context(Mosquitto(workdir / "broker"))
        sinks = [stack.enter_context(JsonReceiver()) for _ in range(CHANNELS)]
        for sink in sinks:
            sink.on_message = on_message
        controller = stack.enter_context(Controller(config(workdir, broker, sinks, args)))
        wait_until(lambda: controller.mqtt_connected, timeout_s=10)
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.connect(broker.host, broker.port)
        client.loop_start()
        stack.callback(client.loop_stop)
        down = sinks[0]
        down.stop()  # the first channel is down: connection refused
        started = time.monotonic()
        topic = wire.topic_for("gw-bench", wire.TopicKind.READINGS)
        for n in range(args.alerts):
            if not down.running and time.monotonic() - started >= args.down_s:
                down.start()  # back on the same port
            due = started + n / args.rate
            pause_s = due - time.monotonic()
            if pause_s > 0:
                time.sleep(pause_s)  # pacing the load, not waiting for something
            batch = wire.ReadingBatch(
                session=1,
                readings=[wire.Reading(seq=n + 1, ts_ms=time.time_ns() // 1_000_000,
                                       device=f"gauge-{n}", metric="level_cm", value=200.0,
                                       unit="cm")],
            )  # fmt: skip
            client.publish(topic, wire.encode(batch), qos=1)
        if not down.running:
            wait_until(lambda: time.monotonic() - started >= args.down_s, timeout_s=args.down_s)
            down.start()
        expected = args.alerts * args.people_per_grid

        def all_taken() -> bool:
            with lock:
                return bool(len(taken_ms) >= expected)

        with contextlib.suppress(WaitTimeoutError):  # what never came is counted as lost
            wait_until(all_taken, timeout_s=args.max_seconds, interval_s=0.5)
        raised = dict(
            controller.store.read(
                lambda conn: conn.execute("SELECT id, raised_ms FROM alerts").fetchall()
            )
        )
    with lock:
        firsts: dict[int, int] = {}
        for (alert, _step, _person), times in taken_ms.items():
            firsts[alert] = min(firsts.get(alert, times[0]), *times)
        duplicates = sum(len(times) - 1 for times in taken_ms.values())
        people = Counter(alert for alert, _step, _person in taken_ms)
    latencies = [firsts[a] - raised[a] for a in firsts if a in raised]
    return {
        "alerts": args.alerts,
        "alerts_raised": len(raised),
        "duty_people": args.grids * args.people_per_grid,
        "grids": args.grids,
        "channel_down_s": args.down_s,
        "notifications_expected": expected,
        "notifications_taken": len(taken_ms),
        "first_notify_p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "first_notify_p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "first_notify_max_ms": max(latencies) if latencies else None,
        "alerts_fully_told": sum(1 for c in people.values() if c == args.people_per_grid),
        "lost": expected - len(taken_ms),
        "duplicates": duplicates,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notify")
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--grids", type=int, default=500)
    parser.add_argument("--people-per-grid", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10.0, help="alerts raised per second")
    parser.add_argument("--down-s", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    results = run(args)
    print(json.dumps(results, separators=(",", ":")), flush=True)
    ok = results["lost"] == 0 and results["duplicates"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
