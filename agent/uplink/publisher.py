"""The publisher: takes from the buffer and publishes, in a fixed priority order.

    alerts  (edgewatch/v1/<gw>/alerts)    every unsent alert, first
    live    (edgewatch/v1/<gw>/readings)  rows appended within [buffer] live_window_s,
                                          a batch held for more readings only while
                                          one is due within live_linger_s
    backlog (edgewatch/v1/<gw>/backlog)   older rows and replays asked for by the controller

Backlog never delays live readings or alerts: it is sent only when nothing of a higher lane
waits, it may fill at most ``MAX_INFLIGHT - LIVE_RESERVE`` of the in-flight window (so a
live batch always finds a free slot), and it is capped at ``backlog_max_readings_per_s``
(a token bucket; 0 = no cap). Nothing is published while the session is down or, with
``hold_while_controller_offline``, while the controller's retained status is not online:
the readings stay in the buffer instead of a broker queue that may drop them.

The live lane holds a batch only while waiting buys something: it goes as soon as no port
owner expects to store another reading before the batch's deadline (its oldest row's
append plus ``live_linger_s``; ``agent.bus.outlook``), when it is full, or at that
deadline. So a lone reading (the last of a poll round, a device read once a minute) goes at
once, and a busy bus still sends several reads per message: at 9600 baud, with the default
0.05 s, every second read. The decision is taken on the port owner's thread as it stores a
reading (``readings_stored``), which then wakes this loop only to send or to start a
batch's deadline timer: two wake-ups per message at most, as with a fixed linger.

The same loop does the housekeeping that must go on during an outage: buffer limits
(``agent.buffer.eviction``) every second, retries of a buffer that could not be written
(``agent.buffer.intake``), and the purge of acked rows past their retention.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from agent.buffer.alerts import AlertQueue
from agent.buffer.eviction import enforce_limits
from agent.buffer.store import Buffer, Lane
from agent.bus.outlook import BusOutlook
from agent.config import BufferConfig
from agent.uplink.replay_progress import ReplayProgress
from agent.uplink.session import MqttSession
from wire import TopicKind
from wire.clock import Clock
from wire.rows import ReadingRow, encode_reading_rows

log = logging.getLogger(__name__)

BATCH_MAX_READINGS = 500
MAX_INFLIGHT = 10  # messages awaiting PUBACK before the publisher waits
LIVE_RESERVE = 2  # in-flight slots backlog may never take
HOUSEKEEPING_EVERY_S = 1.0
PURGE_EVERY_S = 60.0
IDLE_WAIT_S = 0.5


@dataclass
class ReplayJob:
    from_seq: int
    to_seq: int
    next_seq: int
    started_ms: int
    replayed: int = 0
    finished_ms: int | None = None

    def __post_init__(self) -> None:
        self.future: Future[str] = Future()

    def progress(self) -> ReplayProgress:
        done = self.to_seq + 1 if self.finished_ms is not None else self.next_seq
        return ReplayProgress(
            from_seq=self.from_seq,
            to_seq=self.to_seq,
            seqs_done=done - self.from_seq,
            replayed=self.replayed,
            started_ms=self.started_ms,
            finished_ms=self.finished_ms,
        )


class Publisher:
    def __init__(
        self,
        *,
        buffer: Buffer,
        alerts: AlertQueue,
        session: MqttSession,
        config: BufferConfig,
        clock: Clock,
        batch_max_readings: int = BATCH_MAX_READINGS,
        housekeeping: Callable[[], None] | None = None,
        outlook: BusOutlook | None = None,
    ) -> None:
        self._buffer = buffer
        # The port owners' next expected stores; without any, a live reading goes at once.
        self._outlook = outlook if outlook is not None else BusOutlook()
        self._alerts = alerts
        self._session = session
        self._config = config
        self._clock = clock
        self._batch_max_readings = batch_max_readings
        self._housekeeping_extra = housekeeping
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._backlog_inflight = 0
        self._tokens = 0.0
        self._tokens_at_s = clock.monotonic_s()
        self._replays: deque[ReplayJob] = deque()
        # While a live batch is held: its deadline (monotonic s). A new reading then wakes
        # the loop only if the batch should go now; see readings_stored.
        self._live_due_s: float | None = None
        self._last_replay: ReplayJob | None = None
        self._topics = {kind: session.topic(kind) for kind in TopicKind if kind.value[:3] != "cmd"}

    # -- requests from other threads ------------------------------------------------------

    def readings_stored(self) -> None:
        """The intake stored readings (on a port owner's thread): wake the loop when no
        batch is held yet (it then sends, or starts the batch's deadline) or when the held
        batch should go now; otherwise the reading joins the held batch without a wake-up
        (one costs a gateway more than the read's own bookkeeping)."""
        due_s = self._live_due_s
        if due_s is None or self._live_goes_now(self._buffer.live_waiting(), due_s):
            self.wake.set()

    def replay(self, from_seq: int, to_seq: int) -> Future[str]:
        """Re-publish stored rows ``from_seq..to_seq`` on the backlog lane; the future's
        result is a JSON summary ``{"replayed": n, "unavailable": m}``."""
        job = ReplayJob(from_seq, to_seq, from_seq, started_ms=self._clock.wall_ms())
        with self._lock:
            self._replays.append(job)
        self.wake.set()
        return job.future

    def replay_progress(self) -> ReplayProgress | None:
        """The replay being served, else the last one finished; None before any."""
        with self._lock:
            job = self._replays[0] if self._replays else self._last_replay
            return job.progress() if job is not None else None

    def connection_closed(self) -> None:
        with self._lock:
            self._backlog_inflight = 0

    # -- the loop -------------------------------------------------------------------------

    def run(self, stopping: threading.Event) -> None:
        next_housekeeping_s = next_purge_s = self._clock.monotonic_s()
        while not stopping.is_set():
            now_s = self._clock.monotonic_s()
            if now_s >= next_housekeeping_s:
                self._housekeeping(purge=now_s >= next_purge_s)
                next_purge_s = now_s + PURGE_EVERY_S if now_s >= next_purge_s else next_purge_s
                next_housekeeping_s = now_s + HOUSEKEEPING_EVERY_S
            if not self._may_publish():
                self._sleep(IDLE_WAIT_S)
                continue
            if not self._session.wait_for_capacity(MAX_INFLIGHT, IDLE_WAIT_S):
                continue
            self.wake.clear()
            if self._send_alerts():
                continue
            live_wait_s = self._live_wait_s()
            if live_wait_s == 0.0 and self._send_live():
                continue
            wait_s = self._send_backlog()
            if wait_s > 0:
                self._sleep(min(wait_s, live_wait_s or HOUSEKEEPING_EVERY_S, HOUSEKEEPING_EVERY_S))

    def _sleep(self, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()

    def _may_publish(self) -> bool:
        if not self._session.connected:
            return False
        return self._session.controller_online or not self._config.hold_while_controller_offline

    def _housekeeping(self, *, purge: bool) -> None:
        if self._housekeeping_extra is not None:
            self._housekeeping_extra()
        enforce_limits(
            self._buffer,
            max_bytes=self._config.max_bytes,
            max_age_s=self._config.max_age_s,
            now_ms=self._clock.wall_ms(),
        )
        if purge:
            self._buffer.purge_acked(self._config.acked_retention_s)
            retention_ms = int(self._config.acked_retention_s * 1000)
            self._alerts.purge_acked(self._clock.wall_ms() - retention_ms)

    # -- lanes ----------------------------------------------------------------------------

    def _send_alerts(self) -> bool:
        taken = self._alerts.take(MAX_INFLIGHT)
        for alert_id, payload in taken:
            now_ms = self._clock.wall_ms()
            if not self._session.publish(
                self._topics[TopicKind.ALERTS],
                payload,
                on_acked=functools.partial(self._alerts.ack, alert_id, now_ms),
                on_refused=functools.partial(self._alerts.release, alert_id),
            ):
                self._alerts.release(alert_id)
        return bool(taken)

    def _live_wait_s(self) -> float | None:
        """How long the live batch is held before it goes: 0.0 now, None when no live row
        waits. Its deadline is its oldest row's append plus ``live_linger_s``."""
        # Cleared before the rows are looked at: a reading stored from here on either is
        # seen below or wakes the loop (readings_stored).
        self._live_due_s = None
        waiting = self._buffer.live_waiting()
        if waiting is None:
            return None
        due_s = waiting[0] + self._config.live_linger_s
        if self._live_goes_now(waiting, due_s):
            return 0.0
        self._live_due_s = due_s
        return due_s - self._clock.monotonic_s()

    def _live_goes_now(self, waiting: tuple[float, int] | None, due_s: float) -> bool:
        """Whether the live batch should go now: it is full, its deadline has come, or
        holding it buys nothing because no port owner expects to store another reading
        before the deadline."""
        if waiting is None:
            return False
        if waiting[1] >= self._batch_max_readings:
            return True
        return self._clock.monotonic_s() >= due_s or self._outlook.next_store_s() > due_s

    def _send_live(self) -> bool:
        rows = self._buffer.take_unsent_rows(self._batch_max_readings, Lane.LIVE)
        if rows:
            self._publish_rows(TopicKind.READINGS, rows)
        return bool(rows)

    def _send_backlog(self) -> float:
        """Send one backlog batch if the lane may; returns how long to wait (0: go on)."""
        with self._lock:
            if self._backlog_inflight >= MAX_INFLIGHT - LIVE_RESERVE:
                return IDLE_WAIT_S  # woken by a PUBACK through wake
            job = self._replays[0] if self._replays else None
        allowed = self._allowance()
        if allowed < 1:
            return (1 - self._tokens) / self._config.backlog_max_readings_per_s
        if job is not None:
            self._serve_replay(job, allowed)
            return 0.0
        rows = self._buffer.take_unsent_rows(allowed, Lane.BACKLOG)
        if not rows:
            return IDLE_WAIT_S
        self._spend(len(rows))
        self._publish_rows(TopicKind.BACKLOG, rows)
        return 0.0

    def _allowance(self) -> int:
        rate = self._config.backlog_max_readings_per_s
        if rate <= 0:
            return self._batch_max_readings
        now_s = self._clock.monotonic_s()
        self._tokens = min(rate, self._tokens + (now_s - self._tokens_at_s) * rate)
        self._tokens_at_s = now_s
        return min(self._batch_max_readings, int(self._tokens))

    def _spend(self, count: int) -> None:
        if self._config.backlog_max_readings_per_s > 0:
            self._tokens -= count

    def _serve_replay(self, job: ReplayJob, allowed: int) -> None:
        rows = self._buffer.stored_rows(job.next_seq, job.to_seq, allowed)
        if rows:
            self._spend(len(rows))
            if not self._publish_rows(TopicKind.BACKLOG, rows, replay=True):
                return  # the connection went: try again on the next one
            with self._lock:
                job.replayed += len(rows)
                job.next_seq = rows[-1][0] + 1
        if not rows or job.next_seq > job.to_seq:
            with self._lock:
                self._replays.popleft()
                job.finished_ms = self._clock.wall_ms()
                self._last_replay = job
            total = job.to_seq - job.from_seq + 1
            summary = {"replayed": job.replayed, "unavailable": total - job.replayed}
            job.future.set_result(json.dumps(summary))

    def _publish_rows(
        self, kind: TopicKind, rows: list[ReadingRow], *, replay: bool = False
    ) -> bool:
        seqs = [row[0] for row in rows]
        # The rows were validated when appended: the same JSON as a ReadingBatch, no models.
        payload = encode_reading_rows(self._session.session, rows)
        backlog = kind is TopicKind.BACKLOG
        if backlog:
            with self._lock:
                self._backlog_inflight += 1
        if replay:  # already acked rows: nothing to mark, nothing to release
            on_acked: Callable[[], None] = self._backlog_done
            on_refused: Callable[[], None] = self._backlog_done
        else:
            on_acked = functools.partial(self._acked, seqs, backlog)
            on_refused = functools.partial(self._refused, seqs, backlog)
        if self._session.publish(
            self._topics[kind], payload, on_acked=on_acked, on_refused=on_refused
        ):
            return True
        if backlog:
            self._backlog_done()
        if not replay:
            self._buffer.release(seqs)
        return False

    def _acked(self, seqs: list[int], backlog: bool) -> None:
        self._buffer.ack(seqs)
        if backlog:
            self._backlog_done()

    def _refused(self, seqs: list[int], backlog: bool) -> None:
        self._buffer.release(seqs)
        if backlog:
            self._backlog_done()  # wakes the loop
        else:
            self.wake.set()  # handed back: its deadline counts from its append, so it
            # goes again at once unless it is still young enough to be held

    def _backlog_done(self) -> None:
        with self._lock:
            self._backlog_inflight = max(0, self._backlog_inflight - 1)
        self.wake.set()
