"""Shared benchmark plumbing: machine info, medians, a controller child process."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "platform": platform.platform(terse=True),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "firmware-sim")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def start_controller(
    workdir: Path, mqtt_port: int, extra: str = "", *, auth: str = "demo"
) -> tuple[subprocess.Popen[str], str, Path]:
    """The controller as a process; ``auth="tokens"`` for bearer tokens (``create_token``)."""
    db = workdir / "controller.db"
    config = workdir / "controller.toml"
    config.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
        '[http]\nhost = "127.0.0.1"\nport = 0\n'
        f'[storage]\npath = "{db}"\n[api]\nauth = "{auth}"\n{extra}'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "run", "--config", str(config),
         "--log-level", "WARNING"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if "API at " not in line:
        process.kill()
        raise RuntimeError(f"the controller did not start: {line!r}")
    url = line.split("API at ", 1)[1].split("/api/v1", 1)[0]
    return process, url, db


def create_token(workdir: Path, role: str) -> str:
    """A new API token in the controller.db of ``workdir``, with the controller's own CLI."""
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "token", "create", "--role", role,
         "--name", f"bench-{role}", "--db", str(workdir / "controller.db")],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def readings_stored(db: Path) -> int:
    rows = query(db, "SELECT value FROM counters WHERE name = 'readings_stored'")
    return int(rows[0][0]) if rows else 0
