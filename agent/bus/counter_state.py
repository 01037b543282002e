"""The last raw count of every counter metric, kept across gateway restarts.

A rain gauge's tip count is turned into increments (``drivers.counters.counter_increment``)
between two reads. The previous raw count must survive a restart of the gateway, or the
first read after it would either lose the rain that fell meanwhile (no baseline) or, worse,
count it twice. ``SqliteCounterStore`` keeps it in a small table in ``counters.db`` beside
the buffer (its own file, so it never contends with the buffer's writes).

Order of writes: the new raw count is stored before the increment is handed to the buffer.
A crash between the two loses that one increment rather than counting it twice: the rule of
``drivers.counters`` is to undercount rather than invent rain.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from agent.sqlite_schema import Migration, migrate

# counters.db's schema (agent.sqlite_schema): version 1 is 0.1.0's unversioned table.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "counter_state (the schema of 0.1.0)",
        (
            "CREATE TABLE IF NOT EXISTS counter_state (device TEXT NOT NULL,"
            " metric TEXT NOT NULL, raw INTEGER NOT NULL, modulus INTEGER NOT NULL,"
            " PRIMARY KEY (device, metric))",
        ),
    ),
)


class CounterStore(Protocol):
    def previous(self, device: str, metric: str, modulus: int) -> int | None:
        """The last raw count stored for (device, metric) with this modulus, else None."""
        ...

    def remember(self, device: str, metric: str, raw: int, modulus: int) -> None: ...


class MemoryCounterStore:
    """Counts kept in memory only: tests, and tools that do not restart."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}

    def previous(self, device: str, metric: str, modulus: int) -> int | None:
        stored = self._counts.get((device, metric))
        return stored[0] if stored is not None and stored[1] == modulus else None

    def remember(self, device: str, metric: str, raw: int, modulus: int) -> None:
        self._counts[device, metric] = (raw, modulus)


class SqliteCounterStore:
    """Counts in SQLite (``path``), opened on first use; ``close()`` when done.

    A stored count with another modulus (the register's type changed in config) is no
    baseline: the next read starts afresh.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path), check_same_thread=False, timeout=10, isolation_level=None
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                migrate(conn, self.path, MIGRATIONS)
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def previous(self, device: str, metric: str, modulus: int) -> int | None:
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT raw FROM counter_state WHERE device = ? AND metric = ? AND modulus = ?",
                    (device, metric, modulus),
                )
                .fetchone()
            )
        return None if row is None else int(row[0])

    def remember(self, device: str, metric: str, raw: int, modulus: int) -> None:
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT INTO counter_state (device, metric, raw, modulus) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (device, metric) DO UPDATE SET raw = excluded.raw,"
                " modulus = excluded.modulus",
                (device, metric, raw, modulus),
            )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
