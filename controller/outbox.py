"""Forwarding to the tier centers: a durable outbox and a delivery thread per center.

The store's writer puts every newly stored reading in the outbox of each center that
receives it (same transaction). A center's delivery thread takes the oldest rows in
batches, POSTs them as JSON with an ``Idempotency-Key`` and retries (tenacity, capped
exponential backoff) until a 2xx; only then are the rows deleted. A slow or absent center
delays nobody else, and a center that comes back gets everything it missed.

Body: ``{"kind": "readings", "center": NAME, "batch_id": ID, "readings": [{"gateway",
"device", "metric", "value", "unit", "quality", "seq", "ts_ms"}, ...]}``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlite_utils import Database
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from controller.config import CenterConfig, ForwardingConfig
from controller.store import Store, StoreError, wall_ms

log = logging.getLogger(__name__)

_PENDING = """
SELECT o.id AS outbox_id, r.gateway, r.device, r.metric, r.value, r.unit, r.quality, r.seq,
       r.ts_ms
FROM outbox o JOIN readings r ON r.id = o.reading_id
WHERE o.center = ? ORDER BY o.id LIMIT ?
"""
IDLE_POLL_S = 1.0


class DeliveryError(RuntimeError):
    """One delivery attempt failed (connection error or a non-2xx answer)."""


@dataclass(frozen=True, slots=True)
class CenterStats:
    name: str
    tier: str
    place: str
    url: str
    delivered: int
    queued: int
    lag_s: float  # age of the oldest undelivered reading in the outbox
    failed_attempts: int
    last_error: str | None
    last_delivered_ms: int | None


class CenterOutbox:
    """The delivery loop of one center; ``start()``/``stop()`` or use as a context manager."""

    def __init__(self, center: CenterConfig, store: Store, config: ForwardingConfig) -> None:
        self.center = center
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
            target=self._supervise, name=f"outbox-{self.center.name}", daemon=False
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
                "center %s: delivery thread did not stop in %.1f s", self.center.name, timeout_s
            )

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def notify(self) -> None:
        """New rows are in the outbox: deliver without waiting for the idle poll."""
        self._wake.set()

    # -- the delivery thread --------------------------------------------------------------

    def _supervise(self) -> None:
        backoff_s = self.config.backoff_initial_s
        while not self._stopping.is_set():
            try:
                self._run()
            except Exception:
                log.exception("center %s: delivery loop failed; restarting", self.center.name)
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, self.config.backoff_max_s)

    def _run(self) -> None:
        conn = self.store.connect()
        client = httpx.Client(timeout=self.config.request_timeout_s, trust_env=False)
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                rows = conn.execute(
                    _PENDING, (self.center.name, self.config.batch_max_readings)
                ).fetchall()
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
        # Deterministic: the same rows give the same key, even after a restart.
        batch_id = f"{self.center.name}-{first_id}-{last_id}"
        body = json.dumps(
            {
                "kind": "readings",
                "center": self.center.name,
                "batch_id": batch_id,
                "readings": [_reading(row) for row in rows],
            },
            separators=(",", ":"),
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

        def receipt(db: Database) -> None:
            db.conn.execute(
                "DELETE FROM outbox WHERE center = ? AND id BETWEEN ? AND ?",
                (self.center.name, first_id, last_id),
            )
            db.conn.execute(
                "INSERT INTO center_stats (center, delivered, last_delivered_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (center) DO UPDATE SET delivered = delivered + excluded.delivered,"
                " last_delivered_ms = excluded.last_delivered_ms",
                (self.center.name, count, wall_ms()),
            )

        try:
            self.store.call(receipt)
        except (StoreError, TimeoutError):
            return False
        return True

    def _post(self, client: httpx.Client, body: bytes, batch_id: str) -> None:
        try:
            response = client.post(
                self.center.url,
                content=body,
                headers={"Content-Type": "application/json", "Idempotency-Key": batch_id},
            )
        except httpx.HTTPError as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            raise DeliveryError(str(exc)) from exc
        if not response.is_success:
            self._failed(f"HTTP {response.status_code}: {response.text[:200]}")
            raise DeliveryError(f"HTTP {response.status_code}")
        if self.last_error is not None:
            log.info(
                "center %s: delivering again after %d failed attempts",
                self.center.name,
                self.failed_attempts,
            )
            self.last_error = None

    def _failed(self, error: str) -> None:
        self.failed_attempts += 1
        if self.last_error is None:
            log.warning(
                "center %s (%s): delivery failed: %s; retrying with backoff",
                self.center.name,
                self.center.url,
                error,
            )
        self.last_error = error

    def _stop_retrying(self, state: RetryCallState) -> bool:
        return self._stopping.is_set()

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _reading(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "gateway": row["gateway"],
        "device": row["device"],
        "metric": row["metric"],
        "value": row["value"],
        "unit": row["unit"],
        "quality": row["quality"],
        "seq": row["seq"],
        "ts_ms": row["ts_ms"],
    }


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

    def start(self) -> None:
        for outbox in self.centers.values():
            outbox.start()

    def stop(self) -> None:
        for outbox in self.centers.values():
            outbox.request_stop()  # all at once, then wait for each
        for outbox in self.centers.values():
            outbox.stop()

    def stats(self) -> list[CenterStats]:
        def query(conn: sqlite3.Connection) -> tuple[dict[str, Any], dict[str, Any]]:
            queued = {
                row["center"]: row
                for row in conn.execute(
                    "SELECT center, count(*) AS queued, min(enqueued_ms) AS oldest_ms"
                    " FROM outbox GROUP BY center"
                )
            }
            delivered = {row["center"]: row for row in conn.execute("SELECT * FROM center_stats")}
            return queued, delivered

        queued, delivered = self.store.read(query)
        now_ms = wall_ms()
        result = []
        for name, outbox in self.centers.items():
            center = outbox.center
            q, d = queued.get(name), delivered.get(name)
            oldest_ms = q["oldest_ms"] if q else None
            result.append(
                CenterStats(
                    name=name,
                    tier=center.tier.value,
                    place=center.place,
                    url=center.url,
                    delivered=d["delivered"] if d else 0,
                    queued=q["queued"] if q else 0,
                    lag_s=max(0.0, (now_ms - oldest_ms) / 1000) if oldest_ms else 0.0,
                    failed_attempts=outbox.failed_attempts,
                    last_error=outbox.last_error,
                    last_delivered_ms=d["last_delivered_ms"] if d else None,
                )
            )
        return result
