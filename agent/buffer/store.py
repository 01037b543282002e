"""The store-and-forward buffer: every reading is written here before it is published.

A reading leaves the "unsent" set only when the broker acknowledged the message that carried
it (``ack``); acked rows stay for a retention window so the controller can ask for a replay
(``rows_between``), then ``purge_acked`` deletes them. Limits (bytes, age) are enforced by
``agent.buffer.eviction``; alerts live in their own table (``agent.buffer.alerts``) and are
never evicted to make room for readings.

Lanes. Unsent rows are split by when they were appended: rows appended within the last
``live_window_s`` seconds (by the monotonic clock) are *live*, older ones (and everything
found in the file at start) are *backlog*. ``take_unsent(limit, lane)`` serves one lane,
oldest first, so the publisher can put live readings ahead of a backlog.

Durability (see docs/store-and-forward.md): WAL with ``synchronous=NORMAL``. A commit costs
no fsync, which spares SD cards and flash; a *power cut* may roll back the newest commits
(never corrupt the file), a *process crash* (SIGKILL, OOM) loses nothing committed. Session
and seq numbering, which must survive even a power cut, live in ``agent.buffer.meta``.

The publisher's hot path works on row tuples (``take_unsent_rows``, ``stored_rows``): the
rows were validated when appended, and ``wire.rows.encode_reading_rows`` writes them as the
same JSON a ``ReadingBatch`` would, without a model object per reading. ``ack`` marks a
message's rows by contiguous seq ranges (``seq BETWEEN``), never beyond the seqs it carried.

In-flight bookkeeping (rows handed to the MQTT session and not yet acked) lives in memory:
after a restart or a disconnect every unacked row is simply unsent again.

One sqlite3 connection, guarded by a lock, serves every thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType

from agent.buffer.meta import SEQ_BLOCK, Numbering, current_boot_id, set_meta, transaction
from agent.buffer.schema import MIGRATIONS
from agent.sqlite_schema import migrate
from drivers.base import Measurement
from wire import Reading
from wire.clock import wall_ms
from wire.rows import ReadingRow, row_to_reading

__all__ = ["SEQ_BLOCK", "Buffer", "BufferStats", "Lane", "ReadingRow", "chunks", "seq_runs"]

SQL_CHUNK = 500  # keep "IN (...)" lists under SQLite's variable limit
DEFAULT_LIVE_WINDOW_S = 10.0
# SQLite's page cache for the buffer (default 2 MiB): the drain reads and acks in seq order,
# so a small cache costs it nothing, and a gateway's RAM is tight (issue 4: <= 40 MB RSS).
PAGE_CACHE_KIB = 512
_COLUMNS = "seq, ts_ms, device, metric, value, unit, quality"


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
        now_ms: Callable[[], int] = wall_ms,
        monotonic_s: Callable[[], float] = time.monotonic,
        live_window_s: float = DEFAULT_LIVE_WINDOW_S,
        boot_id: int | None = None,
    ) -> None:
        self.path = path
        self._now_ms = now_ms
        self._monotonic_s = monotonic_s
        self.live_window_s = live_window_s
        self._numbering = Numbering(current_boot_id() if boot_id is None else boot_id)
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        # (monotonic time, first seq) of each append within the live window.
        self._appends: deque[tuple[float, int]] = deque()
        # Rows handed out by take_unsent and not acked yet. Invariant per lane: every
        # unacked row of the lane with seq <= its cursor is in flight.
        self.inflight: set[int] = set()
        self._cursor = {Lane.LIVE: 0, Lane.BACKLOG: 0}

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> Buffer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path), check_same_thread=False, timeout=10, isolation_level=None
        )
        self._conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        try:
            with self.lock:
                migrate(conn, self.path, MIGRATIONS)
        except sqlite3.Error:
            conn.close()
            self._conn = None
            raise
        self._numbering.load(conn)
        return self

    def close(self) -> None:
        with self.lock:
            if self._conn is None:
                return
            try:
                self._numbering.save_clean_close(self._conn)
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
        with self.lock, transaction(self.conn) as conn:
            yield conn

    # -- session and seq ------------------------------------------------------------------

    @property
    def session(self) -> int:
        return self._numbering.session

    @property
    def last_seq(self) -> int:
        return self._numbering.next_seq - 1

    def bump_session(self) -> int:
        """Persist and return the next MQTT session number (one per connect)."""
        with self.lock:
            return self._numbering.bump_session(self.conn)

    # -- readings -------------------------------------------------------------------------

    def append(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> list[Reading]:
        """Assign seqs to one read's measurements and store them; returns what was stored.

        Raises pydantic.ValidationError (nothing stored) if a reading breaks the contract,
        sqlite3.Error / OSError (nothing stored, no seq used) if the file cannot be written.
        """
        if not measurements:
            return []
        with self.lock:
            numbering = self._numbering
            first = numbering.next_seq
            readings = [
                Reading(
                    seq=first + i,
                    ts_ms=ts_ms,
                    device=device,
                    metric=m.metric,
                    value=m.value if m.quality.carries_value else None,
                    unit=m.unit,
                    quality=m.quality,
                )
                for i, m in enumerate(measurements)
            ]
            last = readings[-1].seq
            numbering.reserve_through(self.conn, last)
            with self.atomic() as conn:
                conn.executemany(
                    f"INSERT INTO readings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                    [
                        (r.seq, r.ts_ms, r.device, r.metric, r.value, r.unit, r.quality.value)
                        for r in readings
                    ],
                )
                set_meta(conn, {"next_seq": last + 1})
            numbering.next_seq = last + 1
            self._appends.append((self._monotonic_s(), first))
            return readings

    def live_floor_seq(self) -> int:
        """The first seq of the live lane: rows from here on were appended recently."""
        with self.lock:
            horizon_s = self._monotonic_s() - self.live_window_s
            while self._appends and self._appends[0][0] < horizon_s:
                self._appends.popleft()
            return self._appends[0][1] if self._appends else self._numbering.next_seq

    def take_unsent(self, limit: int, lane: Lane | None = None) -> list[Reading]:
        """``take_unsent_rows`` as ``Reading`` objects."""
        return [row_to_reading(row) for row in self.take_unsent_rows(limit, lane)]

    def take_unsent_rows(self, limit: int, lane: Lane | None = None) -> list[ReadingRow]:
        """The oldest unsent rows of ``lane`` (both lanes when None) not in flight, up to
        ``limit``; they are in flight from now on."""
        with self.lock:
            floor = self.live_floor_seq()
            below = self._numbering.next_seq
            if lane is None:
                taken, covered = self._scan(self._cursor[Lane.BACKLOG], below, limit)
            elif lane is Lane.LIVE:
                taken, covered = self._scan(max(self._cursor[Lane.LIVE], floor - 1), below, limit)
            else:
                taken, covered = self._scan(self._cursor[Lane.BACKLOG], floor, limit)
            self.inflight.update(row[0] for row in taken)
            for key in (Lane.LIVE, Lane.BACKLOG) if lane is None else (lane,):
                self._cursor[key] = max(self._cursor[key], covered)
            return taken

    def live_waiting(self) -> tuple[float, int] | None:
        """The live rows not taken yet: when (monotonic s) the oldest was appended, and how
        many there are at most (rows in flight after a ``release`` may be counted); None
        when none waits. A row handed back by ``release`` counts from its append, so the
        publisher never holds it past its first deadline (``[buffer] live_linger_s``)."""
        with self.lock:
            start = max(self._cursor[Lane.LIVE] + 1, self.live_floor_seq())
            if start >= self._numbering.next_seq:
                return None
            # The append that holds ``start``: the last one from there on. From the newest
            # back, since ``start`` is near the newest while the publisher keeps up; the
            # window may hold thousands of appends, and the publisher asks on each store.
            since_s = self._appends[0][0]
            for appended_s, first in reversed(self._appends):
                if first <= start:
                    since_s = appended_s
                    break
            return since_s, self._numbering.next_seq - start

    def _scan(self, after: int, below: int, limit: int) -> tuple[list[ReadingRow], int]:
        """Unsent rows not in flight with ``after < seq < below``, up to ``limit``, and the
        seq up to which every unsent row is now in flight (the lane's new cursor): the last
        row taken, or ``below - 1`` once the range is exhausted, so an empty lane costs no
        query on the next call."""
        taken: list[ReadingRow] = []
        inflight = self.inflight
        while len(taken) < limit and after < below - 1:
            ask = limit - len(taken)
            rows: list[ReadingRow] = self.conn.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE acked_at IS NULL "  # noqa: S608
                "AND seq > ? AND seq < ? ORDER BY seq LIMIT ?",
                [after, below, ask],
            ).fetchall()
            if inflight:
                taken.extend(row for row in rows if row[0] not in inflight)
            else:
                taken.extend(rows)
            if len(rows) < ask:
                return taken, below - 1
            after = rows[-1][0]
        return taken, taken[-1][0] if taken else after

    def rows_between(self, from_seq: int, to_seq: int, limit: int) -> list[Reading]:
        """``stored_rows`` as ``Reading`` objects."""
        return [row_to_reading(row) for row in self.stored_rows(from_seq, to_seq, limit)]

    def stored_rows(self, from_seq: int, to_seq: int, limit: int) -> list[ReadingRow]:
        """Stored rows (acked or not) with ``from_seq <= seq <= to_seq``, oldest first."""
        with self.lock:
            rows: list[ReadingRow] = self.conn.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE seq BETWEEN ? AND ? "  # noqa: S608
                "ORDER BY seq LIMIT ?",
                [from_seq, to_seq, limit],
            ).fetchall()
        return rows

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
        """The broker acknowledged the message carrying ``seqs``: they are sent.

        Marked by contiguous runs of ``seqs`` (one ``BETWEEN`` per run): a run never spans
        a seq the message did not carry, so no other message's reading leaves early."""
        now = self._now_ms()
        with self.atomic() as conn:
            conn.executemany(
                "UPDATE readings SET acked_at = ? WHERE seq BETWEEN ? AND ? AND acked_at IS NULL",
                [(now, first, last) for first, last in seq_runs(seqs)],
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
        self._numbering.count_dropped(self.conn, reason, count)

    def dropped(self) -> dict[str, int]:
        with self.lock:
            return dict(self._numbering.dropped)

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


def chunks(seqs: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(seqs), SQL_CHUNK):
        yield seqs[start : start + SQL_CHUNK]


def seq_runs(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous runs of ascending ``seqs`` as (first, last): [1, 2, 3, 7] -> [(1, 3), (7, 7)].

    Any order is accepted; duplicates collapse."""
    ordered = sorted(set(seqs))
    runs: list[tuple[int, int]] = []
    if not ordered:
        return runs
    first = last = ordered[0]
    for seq in ordered[1:]:
        if seq != last + 1:
            runs.append((first, last))
            first = seq
        last = seq
    runs.append((first, last))
    return runs
