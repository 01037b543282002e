"""The store-and-forward buffer: every reading is written here before it is published.

A reading leaves the "unsent" set only when the broker acknowledged the message that carried
it (``ack``); acked rows stay for a retention window so the controller can ask for a replay,
then ``purge_acked`` deletes them.

Durability on SD cards: the database runs in WAL mode with ``synchronous=NORMAL``. A
commit then costs no fsync (the WAL is synced at checkpoints), which spares the flash and
keeps a 1 Hz x N devices write load cheap; the price is that a power cut may roll back
the last commits (never corrupt the file). Losing the newest few readings on a power cut
is accepted. What must survive is the promise that a ``seq`` or a ``session`` is never
reused, because the controller de-duplicates on (gateway, seq). So:

- ``session`` bumps are committed with ``synchronous=FULL`` (they are rare);
- seqs are handed out from a reserved block whose upper end is committed with
  ``synchronous=FULL`` before any seq of it is used; after an unclean shutdown (the
  ``clean_close`` flag is not set) numbering resumes after the reserved block, leaving a
  gap (which the controller sees as a gap) rather than reusing a published seq.

In-flight bookkeeping (rows handed to the MQTT session and not yet acked) lives in memory:
after a restart or a disconnect every unacked row is simply unsent again.

One sqlite3 connection, guarded by a lock, serves every thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sqlite_utils import Database

from drivers.base import Measurement
from wire import Quality, Reading

SEQ_BLOCK = 1000  # seqs reserved per durable write
_SQL_CHUNK = 500  # keep "IN (...)" lists under SQLite's variable limit


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class BufferStats:
    rows: int  # every row still stored (unsent and acked-but-retained)
    unsent_rows: int
    bytes: int  # database file plus its WAL
    oldest_unsent_age_s: float  # 0.0 when nothing is waiting
    last_seq: int  # the highest seq handed out so far (0 before the first)


class Buffer:
    """SQLite store-and-forward buffer of readings; a context manager.

    ``now_ms`` is the wall clock (UTC epoch ms) used for ``acked_at`` and ages.
    """

    def __init__(self, path: Path, *, now_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.path = path
        self._now_ms = now_ms
        self._lock = threading.RLock()
        self._db: Database | None = None
        self._next_seq = 1
        self._reserved_until = 0
        self._session = 0
        # Rows handed out by take_unsent and not acked yet. Invariant: every unacked
        # row with seq <= _cursor is in flight, so take_unsent can start after it.
        self._inflight: set[int] = set()
        self._cursor = 0

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> Buffer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
        db = Database(conn)
        db.enable_wal()
        db.execute("PRAGMA synchronous=NORMAL")
        with db.atomic():
            if "readings" not in db.table_names():
                db.table("readings").create(
                    {
                        "seq": int,
                        "ts_ms": int,
                        "device": str,
                        "metric": str,
                        "value": float,
                        "unit": str,
                        "quality": str,
                        "acked_at": int,
                    },
                    pk="seq",
                    not_null=["ts_ms", "device", "metric", "unit", "quality"],
                )
                # Partial index: the unsent rows in seq order, whatever the backlog size.
                db.execute("CREATE INDEX readings_unsent ON readings(seq) WHERE acked_at IS NULL")
                db.execute("CREATE INDEX readings_acked_at ON readings(acked_at)")
            if "meta" not in db.table_names():
                db.table("meta").create({"key": str, "value": int}, pk="key")
        meta = {row["key"]: row["value"] for row in db["meta"].rows}
        self._session = int(meta.get("session", 0))
        self._reserved_until = int(meta.get("seq_reserved_until", 0))
        stored_next = int(meta.get("next_seq", 1))
        clean = bool(meta.get("clean_close", 1 if not meta else 0))
        self._next_seq = stored_next if clean else max(stored_next, self._reserved_until + 1)
        self._db = db
        self._write_meta({"clean_close": 0, "next_seq": self._next_seq}, durable=True)
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                self._write_meta({"clean_close": 1, "next_seq": self._next_seq}, durable=True)
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()
                self._db = None

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
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the buffer is not open")
        return self._db

    # -- session and seq ------------------------------------------------------------------

    @property
    def session(self) -> int:
        return self._session

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def bump_session(self) -> int:
        """Persist and return the next MQTT session number (one per connect)."""
        with self._lock:
            self._session += 1
            self._write_meta({"session": self._session}, durable=True)
            return self._session

    # -- readings -------------------------------------------------------------------------

    def append(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> list[Reading]:
        """Assign seqs to one read's measurements and store them; returns what was stored.

        Raises pydantic.ValidationError (nothing stored) if a reading breaks the contract.
        """
        if not measurements:
            return []
        with self._lock:
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
                self._reserved_until = last + SEQ_BLOCK
                self._write_meta({"seq_reserved_until": self._reserved_until}, durable=True)
            with self.db.atomic():
                self.db.table("readings").insert_all(
                    [{**r.model_dump(mode="json"), "acked_at": None} for r in readings],
                    pk="seq",
                )
                self._set_meta({"next_seq": last + 1})
            self._next_seq = last + 1
            return readings

    def take_unsent(self, limit: int) -> list[Reading]:
        """The oldest unsent rows not in flight (up to ``limit``), now marked in flight."""
        with self._lock:
            skip = sum(1 for s in self._inflight if s > self._cursor)
            rows = self.db.execute(
                "SELECT seq, ts_ms, device, metric, value, unit, quality FROM readings "
                "WHERE acked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                [self._cursor, limit + skip],
            ).fetchall()
            taken = [
                Reading(
                    seq=seq,
                    ts_ms=ts_ms,
                    device=device,
                    metric=metric,
                    value=value,
                    unit=unit,
                    quality=Quality(quality),
                )
                for seq, ts_ms, device, metric, value, unit, quality in rows
                if seq not in self._inflight
            ][:limit]
            if taken:
                self._inflight.update(r.seq for r in taken)
                self._cursor = max(self._cursor, taken[-1].seq)
            return taken

    def release(self, seqs: Iterable[int]) -> None:
        """Rows whose message will never be acked: unsent again (taken again next)."""
        with self._lock:
            released = [s for s in seqs if s in self._inflight]
            self._inflight.difference_update(released)
            if released:
                self._cursor = min(self._cursor, min(released) - 1)

    def release_all(self) -> None:
        """Forget everything in flight (the connection that carried it is gone)."""
        with self._lock:
            self._inflight.clear()
            self._cursor = 0

    def ack(self, seqs: Sequence[int]) -> None:
        """The broker acknowledged the message carrying ``seqs``: they are sent."""
        now = self._now_ms()
        with self._lock, self.db.atomic():
            for chunk in _chunks(seqs):
                marks = ",".join("?" * len(chunk))
                self.db.execute(
                    f"UPDATE readings SET acked_at = ? WHERE seq IN ({marks}) "  # noqa: S608
                    "AND acked_at IS NULL",
                    [now, *chunk],
                )
            self._inflight.difference_update(seqs)

    def purge_acked(self, retention_s: float) -> int:
        """Delete rows acked more than ``retention_s`` ago; returns how many."""
        cutoff = self._now_ms() - int(retention_s * 1000)
        with self._lock, self.db.atomic():
            cursor = self.db.execute(
                "DELETE FROM readings WHERE acked_at IS NOT NULL AND acked_at < ?", [cutoff]
            )
            return int(cursor.rowcount)

    def inflight_count(self) -> int:
        with self._lock:
            return len(self._inflight)

    def stats(self) -> BufferStats:
        with self._lock:
            rows, unsent = self.db.execute(
                "SELECT count(*), count(*) FILTER (WHERE acked_at IS NULL) FROM readings"
            ).fetchone()
            oldest = self.db.execute(
                "SELECT ts_ms FROM readings WHERE acked_at IS NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            page_count = self.db.execute("PRAGMA page_count").fetchone()[0]
            page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
            last_seq = self.last_seq
        wal = self.path.with_name(self.path.name + "-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        age_s = max(0.0, (self._now_ms() - oldest[0]) / 1000) if oldest else 0.0
        return BufferStats(
            rows=int(rows),
            unsent_rows=int(unsent),
            bytes=int(page_count * page_size + wal_bytes),
            oldest_unsent_age_s=age_s,
            last_seq=last_seq,
        )

    # -- meta -----------------------------------------------------------------------------

    def _set_meta(self, values: dict[str, int]) -> None:
        self.db.table("meta").upsert_all(
            [{"key": k, "value": v} for k, v in values.items()], pk="key"
        )

    def _write_meta(self, values: dict[str, int], *, durable: bool) -> None:
        with self._lock, self._synchronous("FULL" if durable else "NORMAL"), self.db.atomic():
            self._set_meta(values)

    @contextmanager
    def _synchronous(self, level: str) -> Iterator[None]:
        self.db.execute(f"PRAGMA synchronous={level}")
        try:
            yield
        finally:
            self.db.execute("PRAGMA synchronous=NORMAL")


def _chunks(seqs: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(seqs), _SQL_CHUNK):
        yield seqs[start : start + _SQL_CHUNK]
