"""Second-level push: from a red reading's source timestamp to each tier center having it.

``python -m bench.alert_latency [--alerts N] [--backlog-readings N] [--max-seconds S]``

A real mosquitto, the controller as its own process (``edgewatch controller run``), and
three reference centers (street, district, city; signatures verified) in this process,
which also plays the gateways: it publishes, as a gateway's agent would, one live reading
past a red threshold per risk point (each one a new alert episode) and times its arrival at
every center. Three conditions, each over ``--alerts`` alerts:

- quiet;
- backlog: another gateway replays ``--backlog-readings`` buffered readings on the backlog
  lane meanwhile (all forwarded to the same three centers);
- center down: the district center is stopped; the street and city are measured, then the
  district comes back and must receive every alert it missed.

The last line printed is one JSON object with the figures and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import wire
from bench.common import percentile
from edgewatch.broker import Mosquitto, free_port
from edgewatch.center import ReferenceCenter
from edgewatch.waiting import wait_until

SECRET = "bench-secret-shared-with-the-centers"
PLACE = "cq/yuzhong/jiefangbei/grid-1"
TIERS = {"street": "cq/yuzhong/jiefangbei", "district": "cq/yuzhong", "city": "cq"}
BATCH_READINGS = 500


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def controller_toml(
    mqtt_port: int, http_port: int, db: Path, urls: dict[str, str], points: int
) -> str:
    lines = [
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n',
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n',
        f'[storage]\npath = "{db}"\n',
        '[api]\nauth = "demo"\n',  # no tokens: loopback only, as the demo
        "[forwarding]\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.5\n",
        f'[[gateways]]\nid = "gw-bench"\nplace = "{PLACE}"\n',
        f'[[gateways]]\nid = "gw-backlog"\nplace = "{PLACE}"\n',
    ]
    for tier, place in TIERS.items():
        lines.append(
            f'[[centers]]\nname = "{tier}"\ntier = "{tier}"\nplace = "{place}"\n'
            f'url = "{urls[tier]}"\nsecret = "{SECRET}"\n'
        )
    for i in range(points):
        lines.append(
            f'[[risk_points]]\nid = "p{i}"\ncategory = "water_level"\nplace = "{PLACE}"\n'
            f'stale_after_s = 86400\n[[risk_points.metrics]]\ndevice = "gw-bench.gauge-{i}"\n'
            'metric = "level_cm"\npreset = "water_level"\nwarning_level = 80.0\n'
            "guarantee_level = 100.0\n"
        )
    return "\n".join(lines)


class Gateway:
    """A paho client publishing on a gateway's topics, QoS 1."""

    def __init__(self, broker: Mosquitto, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{gateway_id}")
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        wait_until(self.client.is_connected, timeout_s=5, message=f"{gateway_id} connected")
        self.seq = 0

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def red_reading(self, device: str) -> int:
        """One live reading past red; returns its source timestamp."""
        self.seq += 1
        ts_ms = now_ms()
        batch = wire.ReadingBatch(
            session=1,
            readings=[wire.Reading(seq=self.seq, ts_ms=ts_ms, device=device, metric="level_cm",
                                   value=150.0, unit="cm")],
        )  # fmt: skip
        topic = wire.topic_for(self.gateway_id, wire.TopicKind.READINGS)
        self.client.publish(topic, wire.encode(batch), qos=1)
        return ts_ms


def backlog_payloads(total: int) -> list[bytes]:
    """``total`` old readings of gw-backlog as batches, built before the clock starts (a
    gateway builds them on its own CPU, not the measuring machine's)."""
    base_ts = now_ms() - 86_400_000
    payloads = []
    for start in range(1, total + 1, BATCH_READINGS):
        stop = min(start + BATCH_READINGS, total + 1)
        readings = ",".join(
            f'{{"seq":{s},"ts_ms":{base_ts + s},"device":"logger-{s % 50}",'
            f'"metric":"level_cm","value":{50 + s % 7},"unit":"cm","quality":"good"}}'
            for s in range(start, stop)
        )
        payloads.append(f'{{"v":1,"session":1,"readings":[{readings}]}}'.encode())
    return payloads


def replay_backlog(broker: Mosquitto, payloads: list[bytes], done: threading.Event) -> None:
    """Publish the batches on gw-backlog's backlog lane as fast as the broker takes them."""
    gateway = Gateway(broker, "gw-backlog")
    topic = wire.topic_for("gw-backlog", wire.TopicKind.BACKLOG)
    try:
        infos = [gateway.client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(timeout=600)
    finally:
        gateway.close()
        done.set()


def measure(
    gateway: Gateway,
    centers: dict[str, ReferenceCenter],
    points: range,
    *,
    interval_s: float,
    timeout_s: float,
) -> dict[str, list[float]]:
    """Publish one red reading per point; latency per center in ms (source ts -> received)."""
    sent: dict[str, int] = {}
    for i in points:
        sent[f"p{i}"] = gateway.red_reading(f"gauge-{i}")
        time.sleep(interval_s)  # pacing the publisher, not waiting for a result

    def arrived(center: ReferenceCenter) -> dict[str, int]:
        return {
            a["point"]: a["received_ms"]
            for a in list(center.alerts)
            if a["action"] == "raised" and a["point"] in sent
        }

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(len(arrived(c)) == len(sent) for c in centers.values()):
            break
        time.sleep(0.05)
    return {
        tier: [received - sent[point] for point, received in arrived(center).items()]
        for tier, center in centers.items()
    }


def summary(latencies: dict[str, list[float]]) -> dict[str, Any]:
    every = [v for values in latencies.values() for v in values]
    return {
        "p50_ms": round(statistics.median(every), 1) if every else None,
        "p99_ms": round(percentile(every, 99), 1) if every else None,
        "max_ms": round(max(every), 1) if every else None,
        "received": {tier: len(values) for tier, values in latencies.items()},
    }


def machine() -> dict[str, Any]:
    mosquitto = subprocess.run(
        ["mosquitto", "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "mosquitto": mosquitto[0] if mosquitto else "?",
    }


def readings_stored(api: str) -> int:
    with urllib.request.urlopen(f"{api}/summary", timeout=5) as response:
        return int(json.load(response)["readings_stored"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alert_latency")
    parser.add_argument("--alerts", type=int, default=250, help="alerts per condition (>= 200)")
    parser.add_argument("--backlog-readings", type=int, default=1_000_000)
    parser.add_argument("--interval-ms", type=float, default=20.0, help="between alert readings")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="per condition")
    args = parser.parse_args(argv)
    n = args.alerts
    results: dict[str, Any] = {"n_alerts_per_condition": n, "machine": machine()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgewatch-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        broker = stack.enter_context(Mosquitto(workdir / "broker"))
        district_port = free_port()
        centers = {
            "street": stack.enter_context(ReferenceCenter("street", "street", secret=SECRET)),
            "district": ReferenceCenter("district", "district", port=district_port, secret=SECRET),
            "city": stack.enter_context(ReferenceCenter("city", "city", secret=SECRET)),
        }
        centers["district"].start()
        urls = {t: c.url for t, c in centers.items()}
        http_port = free_port()
        config = workdir / "controller.toml"
        config.write_text(controller_toml(broker.port, http_port, workdir / "c.db", urls, 3 * n))
        log_file = stack.enter_context((workdir / "controller.log").open("wb"))
        controller = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "run", "--config", str(config),
             "--log-level", "WARNING"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stack.callback(controller.wait, 30)
        stack.callback(controller.terminate)
        api = f"http://127.0.0.1:{http_port}/api/v1"
        wait_until(
            lambda: _ok(f"http://127.0.0.1:{http_port}/healthz"),
            timeout_s=30,
            message="controller API",
        )
        gateway = Gateway(broker, "gw-bench")
        stack.callback(gateway.close)
        wait_s = args.interval_ms / 1000

        quiet = measure(gateway, centers, range(n), interval_s=wait_s, timeout_s=args.timeout_s)
        results["quiet"] = summary(quiet)

        done = threading.Event()
        payloads = backlog_payloads(args.backlog_readings)
        replay = threading.Thread(target=replay_backlog, args=(broker, payloads, done), daemon=True)
        replay.start()
        wait_until(lambda: readings_stored(f"{api}") > 0, timeout_s=60, message="backlog ingest")
        backlog_start = readings_stored(api)
        backlog = measure(
            gateway, centers, range(n, 2 * n), interval_s=wait_s, timeout_s=args.timeout_s
        )
        backlog_end = readings_stored(api)
        results["backlog"] = {
            **summary(backlog),
            "backlog_readings": args.backlog_readings,
            "readings_stored_during_measurement": backlog_end - backlog_start,
            "replay_still_running_at_end": backlog_end < args.backlog_readings,
        }
        wait_until(done.is_set, timeout_s=600, message="backlog published")
        wait_until(lambda: readings_stored(api) >= args.backlog_readings, timeout_s=600,
                   message="backlog stored")  # fmt: skip
        results["backlog"]["replay_ingest_s"] = round(time.monotonic() - started, 1)

        centers["district"].stop()
        up = {t: c for t, c in centers.items() if t != "district"}
        down = measure(
            gateway, up, range(2 * n, 3 * n), interval_s=wait_s, timeout_s=args.timeout_s
        )
        results["center_down"] = summary(down)
        back = ReferenceCenter("district", "district", port=district_port, secret=SECRET)
        stack.enter_context(back)
        missed = {f"p{i}" for i in range(2 * n, 3 * n)}
        t0 = time.monotonic()
        wait_until(
            lambda: missed <= {a["point"] for a in list(back.alerts)},
            timeout_s=args.timeout_s,
            message="district catches up",
        )
        results["center_down"]["district_caught_up_s"] = round(time.monotonic() - t0, 2)
        results["center_down"]["district_rejected_signatures"] = back.rejected_signatures

    results["quiet_p50_ms"] = results["quiet"]["p50_ms"]
    results["quiet_p99_ms"] = results["quiet"]["p99_ms"]
    results["backlog_p99_ms"] = results["backlog"]["p99_ms"]
    results["center_down_p99_ms"] = results["center_down"]["p99_ms"]
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, separators=(",", ":")), flush=True)
    return 0


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
