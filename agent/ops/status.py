"""``edgewatch agent status --config PATH [--json]``: the gateway at a glance, offline.

Needs no uplink and never touches the broker: it reads the buffer file read-only (rows,
unsent rows and the oldest one's age, session and last seq, each device's latest good
value per metric) and ``status.json``, which the running agent rewrites every heartbeat
(last contact with the broker, each device's state). A table for people, ``--json`` for
machines. Exit status 0; 2 when the config cannot be used; 1 when the buffer cannot be
read. ``--watch`` follows the buffer draining instead (``agent.ops.status_watch``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from agent.buffer.view import (
    BUFFER_FILE,
    BufferTooNewError,
    BufferUnreadableError,
    BufferView,
    read_buffer,
)
from agent.config import ConfigError, load_config
from agent.ops.checks import human_age
from agent.ops.doctor_serial import agent_holding
from agent.ops.progress import StatusLine
from agent.ops.status_watch import positive_seconds, run_watch
from agent.status_file import AgentStatus, read_status
from agent.uplink.replay_progress import ReplayProgress

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_CONFIG = 2
STALE_HEARTBEATS = 3  # status.json older than this many heartbeats: the agent is not writing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the agent's TOML config")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="follow the buffer draining (unsent rows, rate, ETA) until it is drained",
    )
    parser.add_argument(
        "--interval-s", type=positive_seconds, default=1.0, help="--watch: default 1 s"
    )
    parser.add_argument(
        "--max-s", type=positive_seconds, default=3600.0, help="--watch: give up after (3600)"
    )


def gather(config_path: Path, *, line: StatusLine | None = None) -> dict[str, Any]:
    """Everything ``status`` shows, as one JSON-shaped dict (raises ConfigError,
    BufferUnreadableError)."""
    config = load_config(config_path)
    data_dir = config.gateway.data_dir
    now_ms = time.time_ns() // 1_000_000
    buffer_path = data_dir / BUFFER_FILE

    def progress(elapsed_s: float) -> None:
        if line is not None:
            line.show(f"reading {buffer_path}: {elapsed_s:.0f} s")

    view = read_buffer(buffer_path, progress=progress)
    if line is not None:
        line.clear()
    status = read_status(data_dir)
    holder = agent_holding(data_dir)
    fresh_s = STALE_HEARTBEATS * status.heartbeat_interval_s + 1 if status is not None else 0.0
    status_age_s = (now_ms - status.written_ms) / 1000 if status is not None else None
    return {
        "gateway_id": config.gateway.id,
        "now_ms": now_ms,
        "agent": {
            "running": holder is not None,
            "pid": holder.pid if holder is not None else None,
            "status_written_ms": status.written_ms if status is not None else None,
            "status_fresh": status_age_s is not None and status_age_s <= fresh_s,
        },
        "buffer": _buffer(view, now_ms),
        "broker": status.mqtt.model_dump(mode="json") if status is not None else None,
        "devices": _devices(config.devices, status, view),
        "replay": _replay(status),
    }


def _buffer(view: BufferView | None, now_ms: int) -> dict[str, Any]:
    if view is None:
        return {"exists": False, "rows": 0, "unsent_rows": 0, "oldest_unsent_age_s": 0.0}
    return {
        "exists": True,
        "path": str(view.path),
        "bytes": view.file_bytes,
        "rows": view.rows,
        "unsent_rows": view.unsent_rows,
        "alerts_unsent": view.alerts_unsent,
        "oldest_unsent_age_s": round(view.oldest_unsent_age_s(now_ms), 3),
        "session": view.session,
        "last_seq": view.last_seq,
        "without_newest_commits": view.stale_wal,
    }


def _replay(status: AgentStatus | None) -> dict[str, Any] | None:
    if status is None or status.replay is None:
        return None
    return {**status.replay.model_dump(mode="json"), "seqs_total": status.replay.seqs_total}


def _devices(
    configured: Any, status: AgentStatus | None, view: BufferView | None
) -> dict[str, Any]:
    latest = view.latest_good if view is not None else []
    devices: dict[str, Any] = {}
    for device in configured:
        known = status.devices.get(device.name) if status is not None else None
        devices[device.name] = {
            "state": known.state if known is not None else "unknown",
            "last_good_ms": known.last_good_ms if known is not None else None,
            "last_error": known.last_error if known is not None else None,
            "values": {
                v.metric: {"value": v.value, "unit": v.unit, "ts_ms": v.ts_ms, "seq": v.seq}
                for v in latest
                if v.device == device.name
            },
        }
    return devices


def _when(ts_ms: int | None, now_ms: int) -> str:
    if ts_ms is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts_ms / 1000))
    return f"{stamp} ({human_age(max(0.0, (now_ms - ts_ms) / 1000))} ago)"


def render(data: dict[str, Any]) -> str:
    now_ms = data["now_ms"]
    agent, buffer, broker = data["agent"], data["buffer"], data["broker"]
    running = f"running (pid {agent['pid']})" if agent["running"] else "not running"
    if agent["status_written_ms"] is not None and not agent["status_fresh"]:
        running += f"; status.json last written {_when(agent['status_written_ms'], now_ms)}"
    lines = [f"gateway   {data['gateway_id']}", f"agent     {running}"]
    if buffer["exists"]:
        oldest = (
            f", oldest unsent {human_age(buffer['oldest_unsent_age_s'])} old"
            if buffer["unsent_rows"]
            else ""
        )
        lines.append(
            f"buffer    {buffer['rows']} rows, {buffer['unsent_rows']} unsent{oldest},"
            f" {buffer['alerts_unsent']} alerts unsent"
        )
        lines.append(f"session   {buffer['session']}, last seq {buffer['last_seq']}")
    else:
        lines.append("buffer    none yet (the agent has not run with this data_dir)")
    if broker is None:
        lines.append("broker    no status.json yet: no contact recorded")
    else:
        state = "connected" if broker["connected"] and agent["status_fresh"] else "not connected"
        lines += [
            f"broker    {broker['broker']}: {state}",
            f"  last connected     {_when(broker['last_connected_ms'], now_ms)}",
            f"  last disconnected  {_when(broker['last_disconnected_ms'], now_ms)}",
            f"  last PUBACK        {_when(broker['last_puback_ms'], now_ms)}",
        ]
    if (replay := data.get("replay")) is not None:
        progress = ReplayProgress.model_validate(replay)
        lines.append(f"replay    {progress.describe()}")
    lines += ["", f"{'device':<20} {'state':<10} {'last good value':<40} when"]
    for name, device in data["devices"].items():
        values = device["values"] or {"-": {"value": None, "unit": "", "ts_ms": None}}
        first = True
        for metric, value in values.items():
            shown = (
                "-" if value["value"] is None else f"{metric} = {value['value']:g} {value['unit']}"
            )
            when = _when(value["ts_ms"], now_ms) if value["ts_ms"] is not None else ""
            head = f"{name:<20} {device['state']:<10}" if first else f"{'':<31}"
            lines.append(f"{head} {shown.strip():<40} {when}".rstrip())
            first = False
        if device["last_error"] and device["state"] != "ok":
            lines.append(f"{'':<31} last error: {device['last_error']}")
    return "\n".join(lines)


def run_status(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    if args.watch:
        return run_watch(args)
    out = sys.stdout if out is None else out
    try:
        data = gather(args.config, line=StatusLine(sys.stderr))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except BufferTooNewError as exc:
        print(f"edgewatch agent status: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except BufferUnreadableError as exc:
        print(f"edgewatch agent status: {exc} (try sudo)", file=sys.stderr)
        return EXIT_UNREADABLE
    print(json.dumps(data) if args.json else render(data), file=out)
    return EXIT_OK
