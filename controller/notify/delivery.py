"""Delivery of the notification outbox: one dispatcher thread and a pool of senders.

The dispatcher, in one store transaction per round, records what the senders reported
(sent, or failed and queued again after a capped exponential backoff, or given up after
``give_up_after_s``), writes each outcome to the alert's trail (a failure once, when it
starts), cancels what no longer needs saying (an escalation once the alert is
acknowledged, anything about a closed alert) and claims the rows now due. Claimed rows
carry a lease, so a controller that dies mid-send leaves them to be taken again.

A channel that is down delays nobody else: each channel has at most
``in_flight_per_channel`` sends at a time, and after a failure the channel itself backs
off (one probe at a time until it takes a message again) while the rows of every other
channel keep going. The channel's trouble is logged once when it starts and once when it
ends, by the channel's name (its URL holds credentials).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from controller.notify.channels import Message, Sender
from controller.notify.config import NotifyConfig
from controller.store import notify as notify_store
from controller.store.sqlite import Store, StoreError
from wire.clock import Clock
from wire.lifecycle import Lifecycle

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5
CLAIM_BATCH = 200
SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Outcome:
    row: dict[str, Any]
    error: str | None  # None: sent
    at_ms: int


@dataclass(slots=True)
class ChannelState:
    in_flight: int = 0
    failures: int = 0  # consecutive
    retry_at_ms: int = 0
    last_error: str | None = None


def backoff_ms(attempts: int, initial_s: float, max_s: float) -> int:
    """Capped exponential: initial, 2x, 4x... up to max."""
    return int(min(max_s, initial_s * 2 ** max(0, attempts - 1)) * 1000)


class Delivery(Lifecycle):
    def __init__(
        self,
        *,
        store: Store,
        sender: Sender,
        config: NotifyConfig,
        render: Callable[[dict[str, Any]], Message],
        clock: Clock,
    ) -> None:
        self.store = store
        self.sender = sender
        self.config = config
        self.render = render
        self.clock = clock
        self.channels: dict[str, ChannelState] = {}
        self.counts: Counter[str] = Counter()  # sent, failed_attempts, given_up, cancelled
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(self.config.senders, thread_name_prefix="notify-send")
        self._thread = threading.Thread(target=self._run, name="notify-dispatch", daemon=False)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        pool, self._pool = self._pool, None
        self._stopping.set()
        self._wake.set()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("notify dispatcher did not stop within %.1f s", timeout_s)
        # What the senders finished while stopping is recorded; the rest is taken again
        # after its lease.
        self._round(claim=False)

    def wake(self) -> None:
        self._wake.set()

    # -- the dispatcher ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._round(claim=True)
            except (StoreError, TimeoutError):
                log.exception("notify dispatcher: the store failed; trying again")
            self._wake.wait(IDLE_POLL_S)

    def _round(self, *, claim: bool) -> None:
        outcomes: list[Outcome] = []
        while True:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        if not outcomes and not claim:
            return
        now_ms = self.clock.wall_ms()
        for outcome in outcomes:
            self._channel_outcome(outcome)
        blocked = self._blocked(now_ms) if claim else set()
        lease_ms = int(self.config.request_timeout_s * 3 * 1000) + 5000

        def op(db: Database) -> list[dict[str, Any]]:
            for outcome in outcomes:
                self._record(db, outcome, now_ms)
            if not claim:
                return []
            return self._claim(db, now_ms, lease_ms, blocked)

        claimed = self.store.submit(op, urgent=True).result(timeout=30)
        pool = self._pool
        for row in claimed:
            if pool is None:
                break
            with self._lock:
                self.channels.setdefault(row["channel"], ChannelState()).in_flight += 1
            pool.submit(self._send, row)

    def _blocked(self, now_ms: int) -> set[str]:
        """Channels that take nothing more this round: backing off, or at their limit."""
        blocked = set()
        with self._lock:
            for name, state in self.channels.items():
                limit = 1 if state.failures else self.config.in_flight_per_channel
                if state.retry_at_ms > now_ms or state.in_flight >= limit:
                    blocked.add(name)
        return blocked

    def _claim(
        self, db: Database, now_ms: int, lease_ms: int, blocked: set[str]
    ) -> list[dict[str, Any]]:
        conn = db.conn
        rows = notify_store.claim_due(
            conn, now_ms, lease_ms, CLAIM_BATCH, self.config.in_flight_per_channel, blocked
        )
        taken: list[dict[str, Any]] = []
        give_back: list[int] = []
        room: Counter[str] = Counter()
        with self._lock:
            for name, state in self.channels.items():
                limit = 1 if state.failures else self.config.in_flight_per_channel
                room[name] = max(0, limit - state.in_flight)
        for row in rows:
            why = _cancel_reason(row)
            if why is not None:
                notify_store.mark_cancelled(conn, row["id"], why)
                self.counts["cancelled"] += 1
                notify_store.append_trail(
                    conn, row["alert_id"], "duty_not_sent", now_ms, SYSTEM,
                    f"{_who(row)} by {row['channel']}: not sent, {why}",
                )  # fmt: skip
                continue
            channel = row["channel"]
            if channel not in room:
                room[channel] = self.config.in_flight_per_channel
            if channel in blocked or room[channel] <= 0:
                give_back.append(row["id"])
                continue
            room[channel] -= 1
            taken.append(row)
        notify_store.release(conn, give_back)
        return taken

    def _record(self, db: Database, outcome: Outcome, now_ms: int) -> None:
        conn, row = db.conn, outcome.row
        attempts = row["attempts"] + 1
        if outcome.error is None:
            notify_store.mark_sent(conn, row["id"], outcome.at_ms)
            self.counts["sent"] += 1
            after = f" after {attempts} attempts" if attempts > 1 else ""
            note = f"{_who(row)} by {row['channel']}: delivered{after}"
            notify_store.append_trail(conn, row["alert_id"], "duty_notified", now_ms, SYSTEM, note)
            return
        self.counts["failed_attempts"] += 1
        give_up = now_ms - row["enqueued_ms"] >= self.config.give_up_after_s * 1000
        retry_at = (
            None
            if give_up
            else now_ms
            + backoff_ms(attempts, self.config.backoff_initial_s, self.config.backoff_max_s)
        )
        notify_store.mark_failed(conn, row["id"], outcome.error, retry_at)
        if give_up:
            self.counts["given_up"] += 1
            note = f"{_who(row)} by {row['channel']}: given up after {attempts} attempts: "
            notify_store.append_trail(
                conn, row["alert_id"], "duty_not_sent", now_ms, SYSTEM, note + outcome.error
            )
        elif attempts == 1:
            note = f"{_who(row)} by {row['channel']}: {outcome.error}; retrying"
            notify_store.append_trail(
                conn, row["alert_id"], "duty_notify_failed", now_ms, SYSTEM, note
            )

    def _channel_outcome(self, outcome: Outcome) -> None:
        name = outcome.row["channel"]
        with self._lock:
            state = self.channels.setdefault(name, ChannelState())
            state.in_flight = max(0, state.in_flight - 1)
            if outcome.error is None:
                if state.failures:
                    log.info("notify channel %s: delivering again after %d failures", name,
                             state.failures)  # fmt: skip
                state.failures, state.retry_at_ms, state.last_error = 0, 0, None
                return
            if not state.failures:
                log.warning("notify channel %s: %s; backing off", name, outcome.error)
            state.failures += 1
            state.last_error = outcome.error
            state.retry_at_ms = outcome.at_ms + backoff_ms(
                state.failures, self.config.backoff_initial_s, self.config.backoff_max_s
            )

    # -- a sender ---------------------------------------------------------------------------

    def _send(self, row: dict[str, Any]) -> None:
        try:
            error = self.sender.send(row["channel"], row["address"], self.render(row))
        except Exception as exc:  # never lose the outcome of a claimed row
            log.exception("notify: sending to channel %s failed", row["channel"])
            error = f"{type(exc).__name__}"
        self._outcomes.put(Outcome(row, error, self.clock.wall_ms()))
        self._wake.set()


def _cancel_reason(row: dict[str, Any]) -> str | None:
    if not row["alert_open"]:
        return "the alert is closed"
    if row["escalation"] and row["alert_state"] != "raised":
        return f"the alert is {row['alert_state']} meanwhile"
    return None


def _who(row: dict[str, Any]) -> str:
    return f"{row['person_name']} ({row['layer']} {row['place']})"
