"""``edgewatch agent status --config PATH --watch``: follow a gateway draining its buffer.

After an outage a technician wants to know when the backlog will be through. Every
``--interval-s`` this reads the buffer read-only (no broker needed, like ``agent status``)
and ``status.json``, and shows the unsent rows left, the drain rate over the last
interval (rows/s, net of new readings), the ETA at that rate and the oldest unsent row's
age: one line rewritten in place on a terminal (stderr), one line per interval
otherwise, one JSON object per interval on stdout with ``--json``.

It stops by itself when the buffer is drained: no unsent row left, or only live readings
(younger than ``[buffer] live_window_s``) on their way while the agent is connected.
Exit status 0 drained; 3 not drained within ``--max-s``; 130 on Ctrl-C; 2 for a config
that cannot be used; 1 when the buffer cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from agent.buffer.view import BUFFER_FILE, BufferUnreadableError, read_buffer
from agent.config import ConfigError, load_config
from agent.ops.checks import human_age
from agent.ops.doctor_serial import agent_holding
from agent.ops.progress import StatusLine
from agent.status_file import read_status

EXIT_DRAINED = 0
EXIT_UNREADABLE = 1
EXIT_CONFIG = 2
EXIT_NOT_DRAINED = 3  # --max-s passed first
EXIT_INTERRUPTED = 130  # Ctrl-C
STALE_HEARTBEATS = 3  # as agent.status: an older status.json says nothing of the session


@dataclass(frozen=True)
class DrainSample:
    """One interval's look at the buffer, as ``--json`` prints it."""

    now_ms: int
    elapsed_s: float
    unsent_rows: int
    drain_rate_rows_per_s: float | None  # None on the first sample
    eta_s: float | None  # None while the buffer does not shrink
    oldest_unsent_age_s: float
    agent_running: bool
    broker_connected: bool
    drained: bool


def describe(sample: DrainSample) -> str:
    """``1200 unsent, draining 210 rows/s, ETA 6 s, oldest unsent 3 min old``."""
    if sample.drained:
        return f"drained: {sample.unsent_rows} unsent after {human_age(sample.elapsed_s)}"
    parts = [f"{sample.unsent_rows} unsent"]
    rate = sample.drain_rate_rows_per_s
    if rate is not None and rate > 0:
        parts.append(f"draining {rate:.0f} rows/s")
    elif rate is not None and rate < 0:
        parts.append(f"growing {-rate:.0f} rows/s")
    elif rate is not None:
        parts.append("not draining")
    parts.append(f"ETA {human_age(sample.eta_s)}" if sample.eta_s is not None else "ETA unknown")
    parts.append(f"oldest unsent {human_age(sample.oldest_unsent_age_s)} old")
    if not sample.agent_running:
        parts.append("agent not running: nothing drains")
    elif not sample.broker_connected:
        parts.append("broker not connected: waiting")
    return ", ".join(parts)


class Sampler:
    """Takes a DrainSample of one gateway's data_dir; remembers the last for the rate."""

    def __init__(self, data_dir: Path, *, live_window_s: float, monotonic_s: float) -> None:
        self._data_dir = data_dir
        self._live_window_s = live_window_s
        self._started_s = monotonic_s
        self._last: tuple[float, int] | None = None  # (monotonic s, unsent rows)

    def sample(self, monotonic_s: float) -> DrainSample:
        """Raises BufferUnreadableError."""
        now_ms = time.time_ns() // 1_000_000
        view = read_buffer(self._data_dir / BUFFER_FILE, latest_values=False)
        unsent = view.unsent_rows if view is not None else 0
        oldest_age_s = view.oldest_unsent_age_s(now_ms) if view is not None else 0.0
        status = read_status(self._data_dir)
        connected = (
            status is not None
            and status.mqtt.connected
            and now_ms - status.written_ms
            <= (STALE_HEARTBEATS * status.heartbeat_interval_s + 1) * 1000
        )
        rate = eta = None
        if self._last is not None and monotonic_s > self._last[0]:
            rate = (self._last[1] - unsent) / (monotonic_s - self._last[0])
            eta = unsent / rate if rate > 0 else None
        self._last = (monotonic_s, unsent)
        return DrainSample(
            now_ms=now_ms,
            elapsed_s=round(monotonic_s - self._started_s, 3),
            unsent_rows=unsent,
            drain_rate_rows_per_s=round(rate, 1) if rate is not None else None,
            eta_s=round(eta, 1) if eta is not None else None,
            oldest_unsent_age_s=round(oldest_age_s, 3),
            agent_running=agent_holding(self._data_dir) is not None,
            broker_connected=connected,
            drained=unsent == 0 or (connected and oldest_age_s <= self._live_window_s),
        )


def watch(
    config_path: Path,
    *,
    interval_s: float,
    max_s: float,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(exc, file=err)
        return EXIT_CONFIG
    started_s = monotonic()
    sampler = Sampler(
        config.gateway.data_dir,
        live_window_s=config.buffer.live_window_s,
        monotonic_s=started_s,
    )
    line = StatusLine(err, enabled=False if as_json else None)
    try:
        while True:
            sample = sampler.sample(monotonic())
            if as_json:
                print(json.dumps(asdict(sample)), file=out, flush=True)
            elif line.enabled:
                line.show(describe(sample))
            elif not sample.drained:
                print(describe(sample), file=err, flush=True)
            if sample.drained:
                line.clear()
                if not as_json:
                    print(describe(sample), file=out)
                return EXIT_DRAINED
            if monotonic() - started_s >= max_s:
                line.clear()
                print(f"not drained within {max_s:g} s: {describe(sample)}", file=err)
                return EXIT_NOT_DRAINED
            sleep(interval_s)
    except BufferUnreadableError as exc:
        line.clear()
        print(f"edgewatch agent status: {exc} (try sudo)", file=err)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        line.clear()
        return EXIT_INTERRUPTED


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text}: expected 0.1 to 86400 seconds")
    return value


def run_watch(args: argparse.Namespace) -> int:
    return watch(
        args.config,
        interval_s=args.interval_s,
        max_s=args.max_s,
        as_json=args.json,
        out=sys.stdout,
        err=sys.stderr,
    )
