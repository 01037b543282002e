"""``edgewatch agent doctor --config PATH [--json]``: is this gateway ready to work?

One line per check (PASS, WARN, FAIL or SKIP) with the fix under each failure; the checks
and what their failures mean are in docs/field-guide.md ("What doctor says"). Order: the
config (nothing else runs without it), the serial ports, the devices, the broker, the
clock, the disk and the buffer. Exit status 0 when nothing failed, 1 when something did,
2 for a config that cannot be used. Reading devices and scanning the buffer show a
progress line on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from agent.buffer.view import BUFFER_FILE, BufferUnreadableError, read_buffer
from agent.config import AgentConfig, ConfigError, load_config
from agent.ops.checks import (
    CheckName,
    CheckResult,
    Outcome,
    failed,
    human_age,
    human_bytes,
    passed,
    warned,
)
from agent.ops.doctor_net import check_broker
from agent.ops.doctor_serial import check_devices, check_port
from agent.ops.progress import StatusLine
from agent.system_info import clock_synchronized, disk_free_bytes

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
DISK_FAIL_BYTES = 50_000_000  # below this the buffer soon cannot take a reading
BACKLOG_WARN_S = 60.0  # the controller calls a gateway degraded at this backlog age


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the agent's TOML config")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run_checks(
    config_path: Path, *, progress: Callable[[str], None] = lambda text: None
) -> Iterator[CheckResult]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        yield failed(
            CheckName.CONFIG,
            str(exc),
            "fix the key it names (every key: agent/README.md), then run doctor again",
            str(config_path),
        )
        return
    yield passed(
        CheckName.CONFIG,
        f"gateway {config.gateway.id}: {len(config.ports)} ports, {len(config.devices)} devices",
        str(config_path),
    )
    usable: set[str] = set()
    for port in config.ports:
        results = list(check_port(port))
        yield from results
        if all(r.outcome is not Outcome.FAIL for r in results):
            usable.add(port.name)
    yield from check_devices(config, usable, progress=progress)
    yield from check_broker(config)
    yield check_clock()
    yield check_disk(config)
    yield check_buffer(config, progress=progress)


def check_clock() -> CheckResult:
    synced = clock_synchronized()
    if synced:
        return passed(CheckName.CLOCK, "synchronised (NTP)")
    fix = (
        "`timedatectl status`; `sudo timedatectl set-ntp true`; NTP needs the uplink (UDP 123)."
        " Readings are stamped with this clock: the controller shows the skew"
    )
    if synced is None:
        return warned(CheckName.CLOCK, "cannot tell whether the clock is synchronised", fix)
    return warned(CheckName.CLOCK, "not synchronised", fix)


def check_disk(config: AgentConfig) -> CheckResult:
    data_dir = config.gateway.data_dir
    where = data_dir
    while not where.exists() and where != where.parent:
        where = where.parent
    free = disk_free_bytes(where)
    if free is None:
        return warned(
            CheckName.DISK, f"cannot tell the free space at {where}", subject=str(data_dir)
        )
    buffer_bytes = _file_bytes(data_dir / BUFFER_FILE)
    room = config.buffer.max_bytes - buffer_bytes if config.buffer.max_bytes else 0
    message = f"{human_bytes(free)} free"
    if free < DISK_FAIL_BYTES:
        return failed(
            CheckName.DISK,
            message + ": the buffer cannot keep readings much longer",
            "free space (`sudo journalctl --vacuum-size=50M`, old logs, `du -xh / | sort -h`)",
            str(data_dir),
        )
    if room > free:
        return warned(
            CheckName.DISK,
            message + f", less than the buffer may still grow ({human_bytes(room)}:"
            " buffer.max_bytes)",
            "free space, or lower buffer.max_bytes to fit this disk",
            str(data_dir),
        )
    return passed(CheckName.DISK, message, str(data_dir))


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def check_buffer(
    config: AgentConfig, *, progress: Callable[[str], None] = lambda text: None
) -> CheckResult:
    path = config.gateway.data_dir / BUFFER_FILE
    try:
        view = read_buffer(
            path,
            latest_values=False,
            progress=lambda elapsed_s: progress(f"reading {path}: {elapsed_s:.0f} s"),
        )
    except BufferUnreadableError as exc:
        return failed(
            CheckName.BUFFER,
            str(exc),
            "run doctor with sudo (the file belongs to the service user); if it still fails,"
            " stop the agent and move the file aside: it starts a new one",
            str(path),
        )
    if view is None:
        return passed(CheckName.BUFFER, "no buffer yet (the agent has not run here)", str(path))
    age_s = view.oldest_unsent_age_s(time.time_ns() // 1_000_000)
    message = (
        f"{view.rows} rows ({human_bytes(view.file_bytes)}), {view.unsent_rows} unsent"
        + (f", oldest unsent {human_age(age_s)} old" if view.unsent_rows else "")
        + f", last seq {view.last_seq}, session {view.session}"
    )
    if view.unsent_rows and age_s > BACKLOG_WARN_S:
        return warned(
            CheckName.BUFFER,
            message,
            "readings wait for the broker: see the broker checks; nothing is lost while the"
            " disk holds (buffer.max_age_s, buffer.max_bytes)",
            str(path),
        )
    return passed(CheckName.BUFFER, message, str(path))


def format_line(result: CheckResult) -> str:
    subject = f"{result.subject}: " if result.subject else ""
    line = f"{result.outcome.value:<5} {result.name.value:<17} {subject}{result.message}"
    if result.fix and result.outcome in (Outcome.FAIL, Outcome.WARN):
        line += f"\n{'':<24}fix: {result.fix}"
    return line


def run_doctor(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    line = StatusLine(sys.stderr)
    results: list[CheckResult] = []
    for result in run_checks(args.config, progress=line.show):
        results.append(result)
        if not args.json:
            line.clear()
            print(format_line(result), file=out, flush=True)
    line.clear()
    failures = sum(r.outcome is Outcome.FAIL for r in results)
    warnings = sum(r.outcome is Outcome.WARN for r in results)
    if args.json:
        print(
            json.dumps({"ok": not failures, "checks": [r.as_dict() for r in results]}),
            file=out,
        )
    else:
        print(f"\n{len(results)} checks: {failures} failed, {warnings} warnings", file=out)
    if results and results[0].name is CheckName.CONFIG and results[0].outcome is Outcome.FAIL:
        return EXIT_CONFIG
    return EXIT_FAILED if failures else EXIT_OK
