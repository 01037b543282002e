"""Ingest benchmark: readings/s one controller stores from 1,000 simulated gateways
publishing batches through mosquitto, and the API's p99 under that load (a viewer's
bearer token on every request).

``python -m bench.ingest [--gateways 1000] [--readings 1000000] [--batch 100]``; the last
line is one JSON object with ``readings_per_s`` and ``api_p99_ms``. Bounded: at most
``--timeout-s`` seconds of ingest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    ROOT,
    child_env,
    create_token,
    machine,
    readings_stored,
    start_controller,
    stop,
)
from edgewatch.broker import Mosquitto
from edgewatch.waiting import WaitTimeoutError, wait_until


class ApiLoad:
    """GET /api/v1/gateways?limit=100 at a fixed rate (open loop) on its own thread."""

    def __init__(self, url: str, rate_per_s: float, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.interval_s = 1.0 / rate_per_s
        self.latencies_ms: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-load")

    def __enter__(self) -> ApiLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(
            base_url=self.url, headers=self.headers, timeout=10, trust_env=False
        ) as client:
            next_s = time.monotonic()
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get("/api/v1/gateways", params={"limit": 100})
                    if response.status_code != 200:
                        self.errors += 1
                except httpx.HTTPError:
                    self.errors += 1
                # Latency from the scheduled time: a late start counts against the API.
                self.latencies_ms.append((time.monotonic() - min(started, next_s)) * 1000)
                next_s += self.interval_s
                delay = next_s - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)

    def p(self, quantile: float) -> float:
        if len(self.latencies_ms) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=1000)[int(quantile * 1000) - 1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "broker") as broker:
            # A viewer's token, as an operator's console sends it: authentication is part of
            # every request's cost.
            token = create_token(workdir, "viewer")
            controller, url, db = start_controller(workdir, broker.port, auth="tokens")
            try:
                fleet = subprocess.Popen(
                    [sys.executable, "-m", "bench.fleet_sim", "--port", str(broker.port),
                     "--gateways", str(args.gateways), "--readings", str(args.readings),
                     "--batch", str(args.batch), "--rate", str(args.ingest_rate)],
                    cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                assert fleet.stdout is not None
                fleet.stdout.readline()  # {"connected": N}: publishing starts now
                started_s = time.monotonic()
                with ApiLoad(url, args.api_rate, token) as load:
                    try:
                        wait_until(
                            lambda: readings_stored(db) >= args.readings,
                            timeout_s=args.timeout_s,
                            interval_s=0.05,
                        )
                        done = True
                    except WaitTimeoutError:
                        done = False  # reported as "complete": false, with what was stored
                    elapsed_s = time.monotonic() - started_s
                stored = readings_stored(db)
                fleet_line = fleet.stdout.readline()
                fleet.wait(timeout=60)
                fleet.stdout.close()
            finally:
                stop(controller)
    return {
        "gateways": args.gateways,
        "batch": args.batch,
        "ingest_rate_offered": args.ingest_rate or "flat out",
        "readings_sent": args.readings,
        "readings_stored": stored,
        "complete": done,
        "elapsed_s": round(elapsed_s, 2),
        "readings_per_s": round(stored / elapsed_s),
        "api_requests": len(load.latencies_ms),
        "api_errors": load.errors,
        "api_p50_ms": round(load.p(0.5), 2),
        "api_p99_ms": round(load.p(0.99), 2),
        "publisher": json.loads(fleet_line) if fleet_line.strip() else None,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--api-rate", type=float, default=200.0, help="API requests per second")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument(
        "--ingest-rate",
        type=float,
        default=0.0,
        help="readings/s the fleet publishes (0: as fast as it can, the throughput figure)",
    )
    result = run(parser.parse_args(argv))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
