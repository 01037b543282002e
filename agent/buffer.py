"""The store-and-forward buffer: every reading is written here before it is published.

A reading leaves the "unsent" set only when the broker acknowledged the message that carried
it (``ack``); acked rows stay for a retention window so the controller can ask for a replay
(``rows_between``), then ``purge_acked`` deletes them. Limits (bytes, age) are enforced by
``agent.eviction``; alerts live in their own table (``agent.alerts``) and are never evicted
to make room for readings.

Lanes. Unsent rows are split by when they were appended: rows appended within the last
``live_window_s`` seconds (by the monotonic clock) are *live*, older ones (and everything
found in the file at start) are *backlog*. ``take_unsent(limit, lane)`` serves one lane,
oldest first, so the publisher can put live readings ahead of a backlog.

Durability (see docs/store-and-forward.md): WAL with ``synchronous=NORMAL``. A commit costs
no fsync, which spares SD cards and flash; a *power cut* may roll back the newest commits
(never corrupt the file), a *process crash* (SIGKILL, OOM) loses nothing committed. What
must survive even a power cut is that a ``seq`` or ``session`` is never reused:

- ``session`` bumps are committed with ``synchronous=FULL`` (they are rare);
- seqs are handed out from a reserved block whose upper end is committed with
  ``synchronous=FULL`` before any seq of it is used. After an unclean stop numbering
  resumes exactly where it was if the machine did not reboot (same kernel boot id: the OS
  still had every committed page), and after the reserved block if it did (a power cut),
  leaving a gap the controller sees rather than reusing a published seq.

In-flight bookkeeping (rows handed to the MQTT session and not yet acked) lives in memory:
after a restart or a disconnect every unacked row is simply unsent again.

One sqlite3 connection, guarded by a lock, serves every thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType

from drivers.base import Measurement
from wire import Quality, Reading

SEQ_BLOCK = 1000  # seqs reserved per durable write
SQL_CHUNK = 500  # keep "IN (...)" lists under SQLite's variable limit
DEFAULT_LIVE_WINDOW_S = 10.0
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_COLUMNS = "seq, ts_ms, device, metric, value, unit, quality"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    unit TEXT NOT NULL,
    quality TEXT NOT NULL,
    acked_at INTEGER
);
-- Partial index: the unsent rows in seq order, whatever the backlog size.
CREATE INDEX IF NOT EXISTS readings_unsent ON readings(seq) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS readings_acked_at ON readings(acked_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    acked_at INTEGER
);
"""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def current_boot_id() -> int:
    """The kernel's boot id as an int (0 where there is none): it changes on every boot."""
    try:
        return uuid.UUID(_BOOT_ID_PATH.read_text().strip()).int >> 65  # fits SQLite's int64
    except (OSError, ValueError):
        return 0


class Lane(StrEnum):
    LIVE = "live"
    BACKLOG = "backlog"


@dataclass(frozen=True, slots=True)
class BufferStats:
    rows: int  # every row still stored (unsent and acked-but-retained)
    unsent_rows: int
    bytes: int  # database file plus its WAL, on disk
    used_bytes: int  # pages holding data (what [buffer] max_bytes bounds)
    oldest_unsent_age_s: float  # 0.0 when nothing is waiting
    first_unsent_seq: int  # every seq below is acked or evicted (last_seq + 1 if none unsent)
    last_seq: int  # the highest seq handed out so far (0 before the first)
    alerts_unsent: int


class Buffer:
    """SQLite store-and-forward buffer of readings; a context manager.

    ``now_ms`` is the wall clock (UTC epoch ms) used for ``acked_at`` and ages; ``monotonic_s``
    decides which rows are live. ``boot_id`` is the machine's boot identity (see above).
    """

    def __init__(
        self,
        path: Path,
        *,
        now_ms: Callable[[], int] = wall_clock_ms,
        monotonic_s: Callable[[], float] = time.monotonic,
        live_window_s: float = DEFAULT_LIVE_WINDOW_S,
        boot_id: int | None = None,
    ) -> None:
        self.path = path
        self._now_ms = now_ms
        self._monotonic_s = monotonic_s
        self.live_window_s = live_window_s
        self._boot_id = current_boot_id() if boot_id is None else boot_id
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._next_seq = 1
        self._reserved_until = 0
        self._session = 0
        # (monotonic time, first seq) of each append within the live window.
        self._appends: deque[tuple[float, int]] = deque()
        # Rows handed out by take_unsent and not acked yet. Invariant per lane: every
        # unacked row of the lane with seq <= its cursor is in flight.
        self.inflight: set[int] = set()
        self._cursor = {Lane.LIVE: 0, Lane.BACKLOG: 0}
        self._dropped: Counter[str] = Counter()

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> Buffer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path), check_same_thread=False, timeout=10, isolation_level=None
        )
        self._conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with self.atomic():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self._session = int(meta.get("session", 0))
        self._reserved_until = int(meta.get("seq_reserved_until", 0))
        stored_next = int(meta.get("next_seq", 1))
        clean = bool(meta.get("clean_close", 1 if not meta else 0))
        same_boot = self._boot_id != 0 and meta.get("boot_id") == self._boot_id
        if clean or same_boot:
            self._next_seq = stored_next
        else:
            self._next_seq = max(stored_next, self._reserved_until + 1)
        self._dropped = Counter(
            {
                k.removeprefix("dropped."): int(v)
                for k, v in meta.items()
                if k.startswith("dropped.")
            }
        )
        self._write_meta(
            {"clean_close": 0, "next_seq": self._next_seq, "boot_id": self._boot_id}, durable=True
        )
        return self

    def close(self) -> None:
        with self.lock:
            if self._conn is None:
                return
            try:
                self._write_meta({"clean_close": 1, "next_seq": self._next_seq}, durable=True)
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Buffer:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the buffer is not open")
        return self._conn

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock: committed on success, rolled back on error."""
        with self.lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back by itself on e.g. SQLITE_FULL
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- session and seq ------------------------------------------------------------------

    @property
    def session(self) -> int:
        return self._session

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def bump_session(self) -> int:
        """Persist and return the next MQTT session number (one per connect)."""
        with self.lock:
            self._write_meta({"session": self._session + 1}, durable=True)
            self._session += 1
            return self._session

    # -- readings -------------------------------------------------------------------------

    def append(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> list[Reading]:
        """Assign seqs to one read's measurements and store them; returns what was stored.

        Raises pydantic.ValidationError (nothing stored) if a reading breaks the contract,
        sqlite3.Error / OSError (nothing stored, no seq used) if the file cannot be written.
        """
        if not measurements:
            return []
        with self.lock:
            first = self._next_seq
            readings = [
                Reading(
                    seq=first + i,
                    ts_ms=ts_ms,
                    device=device,
                    metric=m.metric,
                    value=m.value if m.quality is Quality.GOOD else None,
                    unit=m.unit,
                    quality=m.quality,
                )
                for i, m in enumerate(measurements)
            ]
            last = readings[-1].seq
            if last > self._reserved_until:
                self._write_meta({"seq_reserved_until": last + SEQ_BLOCK}, durable=True)
                self._reserved_until = last + SEQ_BLOCK
            with self.atomic() as conn:
                conn.executemany(
                    f"INSERT INTO readings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                    [
                        (r.seq, r.ts_ms, r.device, r.metric, r.value, r.unit, r.quality.value)
                        for r in readings
                    ],
                )
                self._set_meta({"next_seq": last + 1})
            self._next_seq = last + 1
            self._appends.append((self._monotonic_s(), first))
            return readings

    def live_floor_seq(self) -> int:
        """The first seq of the live lane: rows from here on were appended recently."""
        with self.lock:
            horizon_s = self._monotonic_s() - self.live_window_s
            while self._appends and self._appends[0][0] < horizon_s:
                self._appends.popleft()
            return self._appends[0][1] if self._appends else self._next_seq

    def take_unsent(self, limit: int, lane: Lane | None = None) -> list[Reading]:
        """The oldest unsent rows of ``lane`` (both lanes when None) not in flight, up to
        ``limit``; they are in flight from now on."""
        with self.lock:
            floor = self.live_floor_seq()
            if lane is None:
                taken = self._scan(self._cursor[Lane.BACKLOG], self._next_seq, limit)
            elif lane is Lane.LIVE:
                after = max(self._cursor[Lane.LIVE], floor - 1)
                taken = self._scan(after, self._next_seq, limit)
            else:
                taken = self._scan(self._cursor[Lane.BACKLOG], floor, limit)
            if taken:
                self.inflight.update(r.seq for r in taken)
                for key in (Lane.LIVE, Lane.BACKLOG) if lane is None else (lane,):
                    self._cursor[key] = max(self._cursor[key], taken[-1].seq)
            return taken

    def _scan(self, after: int, below: int, limit: int) -> list[Reading]:
        taken: list[Reading] = []
        while len(taken) < limit and after < below - 1:
            ask = limit - len(taken)
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE acked_at IS NULL "  # noqa: S608
                "AND seq > ? AND seq < ? ORDER BY seq LIMIT ?",
                [after, below, ask],
            ).fetchall()
            taken.extend(_reading(row) for row in rows if row[0] not in self.inflight)
            if len(rows) < ask:
                break
            after = rows[-1][0]
        return taken

    def rows_between(self, from_seq: int, to_seq: int, limit: int) -> list[Reading]:
        """Stored rows (acked or not) with ``from_seq <= seq <= to_seq``, oldest first."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE seq BETWEEN ? AND ? "  # noqa: S608
                "ORDER BY seq LIMIT ?",
                [from_seq, to_seq, limit],
            ).fetchall()
        return [_reading(row) for row in rows]

    def release(self, seqs: Iterable[int]) -> None:
        """Rows whose message will never be acked: unsent again (taken again next)."""
        with self.lock:
            released = [s for s in seqs if s in self.inflight]
            self.inflight.difference_update(released)
            if released:
                lowest = min(released) - 1
                for key in self._cursor:
                    self._cursor[key] = min(self._cursor[key], lowest)

    def release_all(self) -> None:
        """Forget everything in flight (the connection that carried it is gone)."""
        with self.lock:
            self.inflight.clear()
            self._cursor = {Lane.LIVE: 0, Lane.BACKLOG: 0}

    def ack(self, seqs: Sequence[int]) -> None:
        """The broker acknowledged the message carrying ``seqs``: they are sent."""
        now = self._now_ms()
        with self.atomic() as conn:
            for chunk in chunks(seqs):
                marks = ",".join("?" * len(chunk))
                conn.execute(
                    f"UPDATE readings SET acked_at = ? WHERE seq IN ({marks}) "  # noqa: S608
                    "AND acked_at IS NULL",
                    [now, *chunk],
                )
            self.inflight.difference_update(seqs)

    def purge_acked(self, retention_s: float) -> int:
        """Delete rows acked more than ``retention_s`` ago; returns how many."""
        cutoff = self._now_ms() - int(retention_s * 1000)
        with self.atomic() as conn:
            cursor = conn.execute(
                "DELETE FROM readings WHERE acked_at IS NOT NULL AND acked_at < ?", [cutoff]
            )
            return int(cursor.rowcount)

    def inflight_count(self) -> int:
        with self.lock:
            return len(self.inflight)

    # -- drops (persisted, so a heartbeat after a restart still tells) ---------------------

    def count_dropped(self, reason: str, count: int) -> None:
        """Add to the persisted drop counter ``reason`` (call inside ``atomic``)."""
        if count:
            self._dropped[reason] += count
            self._set_meta({f"dropped.{reason}": self._dropped[reason]})

    def dropped(self) -> dict[str, int]:
        with self.lock:
            return dict(self._dropped)

    def used_bytes(self) -> int:
        with self.lock:
            pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
            free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
            size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def stats(self) -> BufferStats:
        with self.lock:
            conn = self.conn
            rows, unsent = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE acked_at IS NULL) FROM readings"
            ).fetchone()
            oldest = conn.execute(
                "SELECT seq, ts_ms FROM readings WHERE acked_at IS NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            alerts = conn.execute("SELECT count(*) FROM alerts WHERE acked_at IS NULL").fetchone()
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            used = self.used_bytes()
            last_seq = self.last_seq
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            wal_bytes = wal.stat().st_size
        except OSError:
            wal_bytes = 0
        age_s = max(0.0, (self._now_ms() - oldest[1]) / 1000) if oldest else 0.0
        return BufferStats(
            rows=int(rows),
            unsent_rows=int(unsent),
            bytes=int(pages * page_size + wal_bytes),
            used_bytes=used,
            oldest_unsent_age_s=age_s,
            first_unsent_seq=int(oldest[0]) if oldest else last_seq + 1,
            last_seq=last_seq,
            alerts_unsent=int(alerts[0]),
        )

    # -- meta -----------------------------------------------------------------------------

    def _set_meta(self, values: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def _write_meta(self, values: dict[str, int], *, durable: bool) -> None:
        with self.lock, self._synchronous("FULL" if durable else "NORMAL"), self.atomic():
            self._set_meta(values)

    @contextmanager
    def _synchronous(self, level: str) -> Iterator[None]:
        self.conn.execute(f"PRAGMA synchronous={level}")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA synchronous=NORMAL")


def _reading(row: tuple[int, int, str, str, float | None, str, str]) -> Reading:
    seq, ts_ms, device, metric, value, unit, quality = row
    # Validated when appended: rebuilding without validation keeps a drain cheap.
    return Reading.model_construct(
        seq=seq,
        ts_ms=ts_ms,
        device=device,
        metric=metric,
        value=value,
        unit=unit,
        quality=Quality(quality),
    )


def chunks(seqs: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(seqs), SQL_CHUNK):
        yield seqs[start : start + SQL_CHUNK]
