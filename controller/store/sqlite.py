"""The controller's SQLite store: one writer thread, readers on their own connections.

Everything that writes goes through the writer's queue: readings batches (coalesced, many
per transaction, written with executemany) and small operations (``submit``/``call``) such
as a gateway's state change or an outbox delivery receipt. Readers (the API, the outbox
delivery threads) open their own connections; WAL lets them read while the writer writes.

Alert work is *urgent*: ``submit(op, urgent=True)`` jumps the queue and is committed in a
transaction of its own, so an alert never waits behind a readings backlog (at most behind
the one transaction being written).

Readings are keyed (gateway, seq): INSERT OR IGNORE drops a redelivered reading, so a batch
may arrive any number of times. The same transaction puts the newly stored readings in the
outbox of every center that receives them, so nothing is stored without being forwarded.
"""

from __future__ import annotations

import functools
import itertools
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

import wire
from controller.store.sqlite_schema import migrations
from wire.lifecycle import Lifecycle
from wire.rows import ReadingRow

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[Database], Any]

# How much one transaction takes from the queue: big enough to amortise the commit.
MAX_ITEMS_PER_TRANSACTION = 500
# Also bounds how long an urgent operation waits for the transaction ahead of it.
MAX_READINGS_PER_TRANSACTION = 2_000
BUSY_TIMEOUT_S = 10.0


class Lane(StrEnum):
    LIVE = "live"
    BACKLOG = "backlog"


@dataclass(frozen=True, slots=True)
class IncomingReadings:
    """One decoded readings batch on its way to the writer, as compact row tuples
    (``wire.rows.reading_to_row``): a queue of model objects costs far more memory."""

    gateway: str
    lane: Lane
    session: int
    rows: Sequence[ReadingRow]
    received_ms: int
    centers: tuple[str, ...] = ()
    # Called on the writer thread once the batch is committed (e.g. the MQTT PUBACK).
    on_stored: Callable[[], None] | None = None


@dataclass(slots=True)
class _OpItem:
    op: Op
    future: Future[Any]
    urgent: bool = False


class _Stop:
    pass


_STOP = _Stop()
_Item = IncomingReadings | _OpItem | _Stop
# Urgent operations (alerts) first, then live readings and other operations, then the
# replayed backlog, which is history and may wait.
_URGENT, _NORMAL, _BACKLOG, _LAST = 0, 1, 2, 3

_INSERT_READING = (
    "INSERT OR IGNORE INTO readings (gateway, seq, ts_ms, device, metric, value, unit, quality,"
    " session, lane, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_DEVICE = """
INSERT INTO devices (gateway, name, last_seq, last_ts_ms, last_metric, last_value, last_unit,
                     last_quality, first_seen_ms, updated_ms, last_good_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (gateway, name) DO UPDATE SET
    last_seq = CASE WHEN excluded.last_seq > coalesce(devices.last_seq, 0)
                    THEN excluded.last_seq ELSE devices.last_seq END,
    last_ts_ms = CASE WHEN excluded.last_seq > coalesce(devices.last_seq, 0)
                      THEN excluded.last_ts_ms ELSE devices.last_ts_ms END,
    last_metric = CASE WHEN excluded.last_seq > coalesce(devices.last_seq, 0)
                       THEN excluded.last_metric ELSE devices.last_metric END,
    last_value = CASE WHEN excluded.last_seq > coalesce(devices.last_seq, 0)
                      THEN excluded.last_value ELSE devices.last_value END,
    last_unit = CASE WHEN excluded.last_seq > coalesce(devices.last_seq, 0)
                     THEN excluded.last_unit ELSE devices.last_unit END,
    last_quality = CASE WHEN excluded.last_seq > coalesce(devices.last_seq, 0)
                        THEN excluded.last_quality ELSE devices.last_quality END,
    updated_ms = excluded.updated_ms,
    last_good_ms = nullif(max(coalesce(devices.last_good_ms, 0),
                              coalesce(excluded.last_good_ms, 0)), 0)
"""


def _shows_better(row: ReadingRow, held: ReadingRow) -> bool:
    """Whether ``row`` rather than ``held`` is the device's "last value" a person sees: the
    newest read, and of its registers the first measured quantity (one with a unit), so a
    gauge shows ``level_cm 250.7 cm``, not the ``status_word 0`` read after it."""
    seq, ts_ms, _, _, _, unit, _ = row
    held_seq, held_ts_ms, _, _, _, held_unit, _ = held
    return (ts_ms, bool(unit), -seq) > (held_ts_ms, bool(held_unit), -held_seq)


class StoreError(RuntimeError):
    """The store is not running, or an operation on it failed."""


class Store(Lifecycle):
    """SQLite at ``path`` (WAL); ``with Store(path) as store:`` migrates and starts the writer."""

    def __init__(self, path: Path, *, queue_max_items: int = 1000) -> None:
        self.path = path
        # (priority, arrival, item): urgent operations first, then arrival order. Only
        # normal items count against the bound, so back-pressure never blocks an alert.
        self._queue: queue.PriorityQueue[tuple[int, int, _Item]] = queue.PriorityQueue()
        self._room = threading.BoundedSemaphore(queue_max_items)
        # A backlog of its own bound: a replay filling the queue never blocks live readings.
        self._backlog_room = threading.BoundedSemaphore(queue_max_items)
        self._arrivals = itertools.count()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[frozenset[str]], None]] = []
        self.write_errors = 0
        # read() keeps one read-only connection per thread (an API request used to open and
        # close one per read); stop() closes them all and bumps the generation.
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._generation = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._open()
        try:
            db.enable_wal()
            migrations.apply(db)
        finally:
            db.close()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=False)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._put(_LAST, _STOP)
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("store writer did not stop within %.1f s", timeout_s)
        with self._readers_lock:
            readers, self._readers = self._readers, []
            self._generation += 1
        for conn in readers:
            conn.close()

    @property
    def writer_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def on_readings_committed(self, listener: Callable[[frozenset[str]], None]) -> None:
        """Call ``listener(center names)`` after a commit put readings in those outboxes."""
        self._listeners.append(listener)

    # -- writing --------------------------------------------------------------------------

    def put_readings(self, batch: IncomingReadings) -> None:
        """Queue a batch for the writer; blocks while the queue is full (back-pressure)."""
        self._require_running()
        if batch.lane is Lane.BACKLOG:
            self._backlog_room.acquire()
            self._put(_BACKLOG, batch)
        else:
            self._room.acquire()
            self._put(_NORMAL, batch)

    def submit(self, op: Callable[[Database], T], *, urgent: bool = False) -> Future[T]:
        """Run ``op(db)`` on the writer thread inside a transaction; the future has its result.

        ``urgent`` operations (alerts) go ahead of everything queued, in their own transaction.
        """
        self._require_running()
        future: Future[T] = Future()
        if urgent:
            self._put(_URGENT, _OpItem(op, future, urgent=True))
        else:
            self._room.acquire()
            self._put(_NORMAL, _OpItem(op, future))
        return future

    def _put(self, priority: int, item: _Item) -> None:
        self._queue.put((priority, next(self._arrivals), item))

    def _get(self, *, block: bool) -> _Item:
        item = self._queue.get(block=block)[2]
        self._release(item)
        return item

    def _release(self, item: _Item) -> None:
        if isinstance(item, IncomingReadings) and item.lane is Lane.BACKLOG:
            self._backlog_room.release()
        elif isinstance(item, IncomingReadings) or (isinstance(item, _OpItem) and not item.urgent):
            self._room.release()

    def call(self, op: Callable[[Database], T], timeout_s: float = 10.0) -> T:
        return self.submit(op).result(timeout=timeout_s)

    # -- reading --------------------------------------------------------------------------

    def connect(self, *, check_same_thread: bool = True) -> sqlite3.Connection:
        """A read-only connection for the calling thread; the caller closes it."""
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=check_same_thread
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = ON")
        return conn

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on this thread's read-only connection (kept until ``stop()``)."""
        return fn(self._reader())

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation == self._generation:
            return conn
        # Closed by stop() from another thread, so not bound to this one; still only ever
        # used by the thread that opened it.
        conn = self.connect(check_same_thread=False)
        with self._readers_lock:
            self._readers.append(conn)
            self._local.conn, self._local.generation = conn, self._generation
        return conn

    # -- the writer thread ----------------------------------------------------------------

    def _open(self) -> Database:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        db = Database(conn)
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _require_running(self) -> None:
        if self._thread is None:
            raise StoreError(f"store {self.path} is not running")

    def _run(self) -> None:
        db = self._open()
        try:
            while True:
                items, stop = self._take()
                if items:
                    self._write(db, items)
                if stop:
                    return
        finally:
            db.close()

    def _take(self) -> tuple[list[IncomingReadings | _OpItem], bool]:
        first = self._get(block=True)
        if isinstance(first, _Stop):
            return [], True
        items: list[IncomingReadings | _OpItem] = [first]
        urgent = isinstance(first, _OpItem) and first.urgent
        readings = len(first.rows) if isinstance(first, IncomingReadings) else 0
        while len(items) < MAX_ITEMS_PER_TRANSACTION and readings < MAX_READINGS_PER_TRANSACTION:
            try:
                priority, arrival, item = self._queue.get_nowait()
            except queue.Empty:
                break
            if urgent and priority != _URGENT:  # urgent work commits on its own
                self._queue.put((priority, arrival, item))
                break
            self._release(item)
            if isinstance(item, _Stop):
                return items, True
            items.append(item)
            if isinstance(item, IncomingReadings):
                readings += len(item.rows)
        return items, False

    def _write(self, db: Database, items: list[IncomingReadings | _OpItem]) -> None:
        centers: set[str] = set()
        try:
            with db.atomic():
                results = [self._apply(db, item, centers) for item in items]
        except Exception:
            if len(items) > 1:  # find the culprit: one transaction per item
                for item in items:
                    self._write(db, [item])
                return
            self.write_errors += 1
            item = items[0]
            if isinstance(item, _OpItem):
                log.exception("store operation %s failed", getattr(item.op, "__name__", item.op))
                item.future.set_exception(StoreError("store operation failed"))
            else:
                log.exception("could not store %d readings of %s", len(item.rows), item.gateway)
            return
        for item, result in zip(items, results, strict=True):
            if isinstance(item, _OpItem):
                item.future.set_result(result)
            elif item.on_stored is not None:
                _safely(item.on_stored)
        if centers:
            touched = frozenset(centers)
            for listener in self._listeners:
                _safely(functools.partial(listener, touched))

    def _apply(self, db: Database, item: IncomingReadings | _OpItem, centers: set[str]) -> Any:
        if isinstance(item, _OpItem):
            return item.op(db)
        stored = store_readings(db.conn, item)
        if stored and item.centers:
            centers.update(item.centers)
        return stored


def store_readings(conn: sqlite3.Connection, batch: IncomingReadings) -> int:
    """Insert a batch (duplicates ignored), enqueue the new readings, update devices."""
    # Only forwarding needs to know which rows are new (ids above the highest before).
    before_id: int = (
        conn.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()[0]
        if batch.centers
        else 0
    )
    extra = (batch.session, batch.lane.value, batch.received_ms)
    gateway = (batch.gateway,)
    stored = conn.executemany(
        _INSERT_READING, [gateway + row + extra for row in batch.rows]
    ).rowcount
    if stored <= 0:
        return 0
    for center in batch.centers:
        conn.execute(
            "INSERT INTO outbox (center, reading_id, enqueued_ms)"
            " SELECT ?, id, ? FROM readings WHERE id > ? ORDER BY id",
            (center, batch.received_ms, before_id),
        )
    latest: dict[str, ReadingRow] = {}
    good_ms: dict[str, int] = {}
    good = wire.Quality.GOOD.value
    for row in batch.rows:
        _, ts_ms, device, _, _, _, quality = row
        held = latest.get(device)
        if held is None or _shows_better(row, held):
            latest[device] = row
        if quality == good and ts_ms > good_ms.get(device, 0):
            good_ms[device] = ts_ms
    conn.executemany(
        _UPSERT_DEVICE,
        [
            (
                batch.gateway,
                device,
                seq,
                ts_ms,
                metric,
                value,
                unit,
                quality,
                batch.received_ms,
                batch.received_ms,
                good_ms.get(device),
            )
            for device, (seq, ts_ms, _, metric, value, unit, quality) in latest.items()
        ],
    )
    conn.execute("INSERT OR IGNORE INTO gateways (id) VALUES (?)", (batch.gateway,))
    conn.execute(
        "INSERT INTO counters (name, value) VALUES ('readings_stored', ?)"
        " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        (stored,),
    )
    return stored


def _safely(callback: Callable[[], object]) -> None:
    try:
        callback()
    except Exception:
        log.exception("store callback %r failed", callback)
