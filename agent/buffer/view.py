"""The buffer file read-only, for ``agent status`` and ``agent doctor``: never writes it.

Opened as ``file:...?mode=ro``, so a running agent keeps the file to itself and a
stopped one finds it as it left it. Where the WAL's shared memory cannot be used (a user
who may read the file but not its ``-shm``), the file is read as ``immutable``: without
the newest commits still in the WAL, which ``stale_wal`` says.

A scan of a large buffer takes a while on a gateway's SD card: ``progress`` (called with
the seconds elapsed, every few thousand SQLite steps) lets a command show that it works.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.buffer.schema import MIGRATIONS
from agent.sqlite_schema import SchemaTooNewError, check_version, schema_version

BUFFER_FILE = "buffer.db"
_PROGRESS_STEPS = 20_000  # SQLite virtual machine steps between progress calls


@dataclass(frozen=True, slots=True)
class LatestValue:
    device: str
    metric: str
    value: float | None
    unit: str
    ts_ms: int
    seq: int


@dataclass
class BufferView:
    path: Path
    rows: int = 0
    unsent_rows: int = 0
    alerts_unsent: int = 0
    oldest_unsent_ts_ms: int | None = None
    last_seq: int = 0
    session: int = 0
    file_bytes: int = 0
    stale_wal: bool = False  # read without the WAL: the newest commits may be missing
    latest_good: list[LatestValue] = field(default_factory=list)

    def oldest_unsent_age_s(self, now_ms: int) -> float:
        if self.oldest_unsent_ts_ms is None:
            return 0.0
        return max(0.0, (now_ms - self.oldest_unsent_ts_ms) / 1000)


class BufferUnreadableError(RuntimeError):
    """The buffer file exists but cannot be read."""


class BufferTooNewError(BufferUnreadableError):
    """The buffer was written by a newer edgewatch (its schema version is beyond ours)."""


def _connect(path: Path, *, immutable: bool) -> sqlite3.Connection:
    query = "immutable=1" if immutable else "mode=ro"
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?{query}"
    conn = sqlite3.connect(uri, uri=True, timeout=5, check_same_thread=False)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails here if unreadable
    return conn


def read_buffer(
    path: Path,
    *,
    latest_values: bool = True,
    progress: Callable[[float], None] | None = None,
) -> BufferView | None:
    """Read ``path``'s counts (and the latest good value per device and metric); None when
    there is no buffer file yet. Raises BufferUnreadableError with the reason."""
    if not path.exists():
        return None
    try:
        try:
            conn = _connect(path, immutable=False)
            stale = False
        except sqlite3.Error:
            conn = _connect(path, immutable=True)
            stale = True
    except sqlite3.Error as exc:
        raise BufferUnreadableError(f"{path}: cannot read: {exc}") from None
    started_s = time.monotonic()
    if progress is not None:
        report = progress
        conn.set_progress_handler(
            lambda: report(time.monotonic() - started_s) or 0, _PROGRESS_STEPS
        )
    try:
        check_version(path, schema_version(conn), MIGRATIONS)
        return _read(conn, path, stale=stale, latest_values=latest_values)
    except SchemaTooNewError as exc:
        raise BufferTooNewError(f"{path}: {exc}") from None
    except sqlite3.Error as exc:
        raise BufferUnreadableError(f"{path}: cannot read: {exc}") from None
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, path: Path, *, stale: bool, latest_values: bool) -> BufferView:
    view = BufferView(path=path, stale_wal=stale)
    wal = path.with_name(path.name + "-wal")
    view.file_bytes = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "readings" not in tables:
        return view
    view.rows, view.unsent_rows = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE acked_at IS NULL) FROM readings"
    ).fetchone()
    oldest = conn.execute(
        "SELECT ts_ms FROM readings WHERE acked_at IS NULL ORDER BY seq LIMIT 1"
    ).fetchone()
    view.oldest_unsent_ts_ms = int(oldest[0]) if oldest else None
    if "alerts" in tables:
        view.alerts_unsent = conn.execute(
            "SELECT count(*) FROM alerts WHERE acked_at IS NULL"
        ).fetchone()[0]
    if "meta" in tables:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        view.session = int(meta.get("session", 0))
        view.last_seq = int(meta.get("next_seq", 1)) - 1
    if latest_values:
        # SQLite: with max(), the bare columns come from the row holding the maximum.
        rows = conn.execute(
            "SELECT device, metric, value, unit, ts_ms, max(seq) FROM readings"
            " WHERE quality IN ('good', 'maintenance') GROUP BY device, metric"
            " ORDER BY device, metric"
        ).fetchall()
        view.latest_good = [LatestValue(*row) for row in rows]
    return view
