"""Forwarding to the tier centers: a durable outbox and a delivery thread per center.

The store's writer puts every newly stored reading in the outbox of each center that
receives it (same transaction). A center's delivery thread takes the oldest rows in
batches, POSTs them as JSON with an ``Idempotency-Key`` and retries (tenacity, capped
exponential backoff) until a 2xx; only then are the rows deleted. A slow or absent center
delays nobody else, and a center that comes back gets everything it missed.

Each center has two lanes, each with its own thread: *readings* (table ``outbox``) and
*priority* (table ``priority_outbox``: alerts and health summaries), so an alert never waits
behind a readings backlog. Both lanes keep their order.

Bodies: ``{"kind": "readings", "center", "batch_id", "readings": [{"gateway", "device",
"metric", "value", "unit", "quality", "seq", "ts_ms"}, ...]}``; ``{"kind": "alerts",
"center", "batch_id", "alerts": [...]}``; ``{"kind": "health", "center", "batch_id",
"health": [...]}``. With a ``secret`` the center gets ``X-Edgewatch-Signature``
(wire.webhook) on every attempt.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlite_utils import Database
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from controller.config import CenterConfig, ForwardingConfig
from controller.forwarding.lanes import PRIORITY_LANE, READINGS_LANE, Lane
from controller.store.sqlite import Store, StoreError
from wire.clock import wall_ms
from wire.supervision import Backoff, FailureLog, supervise
from wire.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0


class DeliveryError(RuntimeError):
    """One delivery attempt failed (connection error or a non-2xx answer)."""


@dataclass(frozen=True, slots=True)
class LaneStats:
    """One lane of one center: what waits, what went, how it fails."""

    lane: str  # "readings" or "priority"
    queued: int
    delivered: int
    failed_attempts: int
    oldest_undelivered_age_s: float


@dataclass(frozen=True, slots=True)
class CenterStats:
    name: str
    tier: str
    place: str
    url: str
    delivered: int
    queued: int
    lag_s: float  # age of the oldest undelivered reading in the outbox
    priority_queued: int  # alerts and health summaries
    priority_delivered: int
    oldest_undelivered_age_s: float  # of either lane
    failed_attempts: int
    last_error: str | None
    last_delivered_ms: int | None
    lanes: tuple[LaneStats, ...]  # readings, then priority


class LaneWorker:
    """The delivery loop of one lane of one center; ``start()``/``stop()``."""

    def __init__(
        self, center: CenterConfig, lane: Lane, store: Store, config: ForwardingConfig
    ) -> None:
        self.center = center
        self.lane = lane
        self.store = store
        self.config = config
        self.failed_attempts = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._supervise,
            name=f"outbox-{self.center.name}-{self.lane.name}",
            daemon=False,
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.request_stop()
        thread.join(timeout_s)
        if thread.is_alive():
            log.error(
                "center %s: %s delivery thread did not stop in %.1f s",
                self.center.name,
                self.lane.name,
                timeout_s,
            )

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def notify(self) -> None:
        """New rows are in the outbox: deliver without waiting for the idle poll."""
        self._wake.set()

    # -- the delivery thread --------------------------------------------------------------

    def _supervise(self) -> None:
        supervise(
            self._run,
            failures=FailureLog(log, f"center {self.center.name}: delivery loop"),
            stopped=self._stopping.is_set,
            wait=self._stopping.wait,
            backoff=Backoff(self.config.backoff_initial_s, self.config.backoff_max_s),
        )

    def _run(self) -> None:
        conn = self.store.connect()
        client = httpx.Client(timeout=self.config.request_timeout_s, trust_env=False)
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                rows = self.lane.fetch(conn, self.center.name, self.config.batch_max_readings)
                if not rows:
                    self._wake.wait(IDLE_POLL_S)
                    continue
                if not self._deliver(client, rows):
                    return  # stopping
        finally:
            client.close()
            conn.close()

    def _deliver(self, client: httpx.Client, rows: list[sqlite3.Row]) -> bool:
        first_id, last_id = rows[0]["outbox_id"], rows[-1]["outbox_id"]
        # Deterministic: the same rows give the same key, even after a restart; and never
        # reused: outbox ids may come back once the table empties, reading ids do not.
        if self.lane is READINGS_LANE:
            key_first, key_last = rows[0]["reading_id"], rows[-1]["reading_id"]
            batch_id = f"{self.center.name}-{key_first}-{key_last}"
        else:  # priority_outbox ids are AUTOINCREMENT
            batch_id = f"{self.center.name}-p{first_id}-{last_id}"
        body = json.dumps(
            self.lane.body(self.center.name, batch_id, rows), separators=(",", ":")
        ).encode()
        retrying = Retrying(
            retry=retry_if_exception_type(DeliveryError),
            wait=wait_exponential(
                multiplier=self.config.backoff_initial_s,
                min=self.config.backoff_initial_s,
                max=self.config.backoff_max_s,
            ),
            stop=self._stop_retrying,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            retrying(self._post, client, body, batch_id)
        except DeliveryError:
            return False  # only when stopping
        count = len(rows)
        table, column = self.lane.table, self.lane.delivered_column

        def receipt(db: Database) -> None:
            db.conn.execute(
                f"DELETE FROM {table} WHERE center = ? AND id BETWEEN ? AND ?",  # noqa: S608
                (self.center.name, first_id, last_id),
            )
            db.conn.execute(
                f"INSERT INTO center_stats (center, {column}, last_delivered_ms)"  # noqa: S608
                f" VALUES (?, ?, ?) ON CONFLICT (center) DO UPDATE SET"
                f" {column} = {column} + excluded.{column},"
                " last_delivered_ms = excluded.last_delivered_ms",
                (self.center.name, count, wall_ms()),
            )

        try:
            self.store.call(receipt)
        except (StoreError, TimeoutError):
            return False
        return True

    def _post(self, client: httpx.Client, body: bytes, batch_id: str) -> None:
        # The key is the body's batch_id, which the signature covers (wire.webhook.dedup_key).
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: batch_id}
        if self.center.secret is not None:  # signed afresh on every attempt
            headers[SIGNATURE_HEADER] = sign(self.center.secret, body, int(time.time()))
        try:
            response = client.post(self.center.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            raise DeliveryError(str(exc)) from exc
        if not response.is_success:
            self._failed(f"HTTP {response.status_code}: {response.text[:200]}")
            raise DeliveryError(f"HTTP {response.status_code}")
        if self.last_error is not None:
            log.info(
                "center %s: delivering %s again after %d failed attempts",
                self.center.name,
                self.lane.name,
                self.failed_attempts,
            )
            self.last_error = None

    def _failed(self, error: str) -> None:
        self.failed_attempts += 1
        if self.last_error is None:
            log.warning(
                "center %s (%s): %s delivery failed: %s; retrying with backoff",
                self.center.name,
                self.center.url,
                self.lane.name,
                error,
            )
        self.last_error = error

    def _stop_retrying(self, state: RetryCallState) -> bool:
        return self._stopping.is_set()

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class CenterOutbox:
    """Both lanes of one center."""

    def __init__(self, center: CenterConfig, store: Store, config: ForwardingConfig) -> None:
        self.center = center
        self.readings = LaneWorker(center, READINGS_LANE, store, config)
        self.priority = LaneWorker(center, PRIORITY_LANE, store, config)
        self.lanes = (self.priority, self.readings)

    @property
    def failed_attempts(self) -> int:
        return sum(lane.failed_attempts for lane in self.lanes)

    @property
    def last_error(self) -> str | None:
        return self.priority.last_error or self.readings.last_error

    def start(self) -> None:
        for lane in self.lanes:
            lane.start()

    def request_stop(self) -> None:
        for lane in self.lanes:
            lane.request_stop()

    def stop(self) -> None:
        for lane in self.lanes:
            lane.stop()

    def notify(self) -> None:
        self.readings.notify()


class Outboxes:
    """All centers' outboxes: started and stopped together, woken by the store's commits."""

    def __init__(self, centers: Iterable[CenterConfig], store: Store, config: ForwardingConfig):
        self.store = store
        self.centers = {c.name: CenterOutbox(c, store, config) for c in centers}
        store.on_readings_committed(self.notify)

    def notify(self, names: Iterable[str]) -> None:
        for name in names:
            outbox = self.centers.get(name)
            if outbox is not None:
                outbox.notify()

    def notify_priority(self, names: Iterable[str]) -> None:
        for name in names:
            outbox = self.centers.get(name)
            if outbox is not None:
                outbox.priority.notify()

    def start(self) -> None:
        for outbox in self.centers.values():
            outbox.start()

    def stop(self) -> None:
        for outbox in self.centers.values():
            outbox.request_stop()  # all at once, then wait for each
        for outbox in self.centers.values():
            outbox.stop()

    def stats(self) -> list[CenterStats]:
        def query(
            conn: sqlite3.Connection,
        ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            def pending(table: str) -> dict[str, Any]:
                return {
                    row["center"]: row
                    for row in conn.execute(
                        "SELECT center, count(*) AS queued, min(enqueued_ms) AS oldest_ms"  # noqa: S608
                        f" FROM {table} GROUP BY center"
                    )
                }

            delivered = {row["center"]: row for row in conn.execute("SELECT * FROM center_stats")}
            return pending("outbox"), pending("priority_outbox"), delivered

        queued, priority, delivered = self.store.read(query)
        now_ms = wall_ms()

        def age_s(oldest_ms: int | None) -> float:
            return max(0.0, (now_ms - oldest_ms) / 1000) if oldest_ms else 0.0

        result = []
        for name, outbox in self.centers.items():
            center = outbox.center
            q, p, d = queued.get(name), priority.get(name), delivered.get(name)
            oldest_ms = q["oldest_ms"] if q else None
            oldest_any = min((r["oldest_ms"] for r in (q, p) if r is not None), default=None)
            lanes = tuple(
                LaneStats(
                    lane=worker.lane.name,
                    queued=row["queued"] if row else 0,
                    delivered=d[worker.lane.delivered_column] if d else 0,
                    failed_attempts=worker.failed_attempts,
                    oldest_undelivered_age_s=age_s(row["oldest_ms"] if row else None),
                )
                for worker, row in ((outbox.readings, q), (outbox.priority, p))
            )
            result.append(
                CenterStats(
                    name=name,
                    tier=center.tier.value,
                    place=center.place,
                    url=center.url,
                    delivered=d["delivered"] if d else 0,
                    queued=q["queued"] if q else 0,
                    lag_s=age_s(oldest_ms),
                    priority_queued=p["queued"] if p else 0,
                    priority_delivered=d["priority_delivered"] if d else 0,
                    oldest_undelivered_age_s=age_s(oldest_any),
                    failed_attempts=outbox.failed_attempts,
                    last_error=outbox.last_error,
                    last_delivered_ms=d["last_delivered_ms"] if d else None,
                    lanes=lanes,
                )
            )
        return result
