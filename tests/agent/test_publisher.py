"""The publisher's drain path against a fake MQTT session: what it sends and when rows leave."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.buffer.alerts import AlertQueue
from agent.buffer.store import Buffer
from agent.config import BufferConfig
from agent.uplink.publisher import Publisher
from drivers.base import Measurement
from wire import ReadingBatch, TopicKind, encode, topic_for
from wire.clock import SYSTEM_CLOCK, Clock

NOW_MS = SYSTEM_CLOCK.wall_ms()  # recent: within [buffer] max_age_s


@dataclass
class Sent:
    topic: str
    payload: bytes
    on_acked: Callable[[], None] | None
    on_refused: Callable[[], None] | None


@dataclass
class FakeSession:
    """Takes every publish and holds its PUBACK until the test gives it."""

    session: int = 7
    connected: bool = True
    controller_online: bool = True
    sent: list[Sent] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def topic(self, kind: TopicKind, command_id: str | None = None) -> str:
        return topic_for("gw-test", kind, command_id)

    def wait_for_capacity(self, max_inflight: int, timeout_s: float) -> bool:
        return True

    def publish(self, topic: str, payload: bytes, **callbacks: Any) -> bool:
        with self.changed:
            self.sent.append(Sent(topic, payload, callbacks["on_acked"], callbacks["on_refused"]))
            self.changed.notify_all()
        return True

    def wait_for(self, messages: int) -> list[Sent]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.sent) >= messages, timeout=5)
            return list(self.sent)


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[Buffer]:
    with Buffer(tmp_path / "buffer.db", live_window_s=0.0) as opened:
        yield opened


def run_publisher(
    buffer: Buffer,
    session: FakeSession,
    batch: int,
    *,
    config: BufferConfig | None = None,
    clock: Clock = SYSTEM_CLOCK,
    alerts: AlertQueue | None = None,
) -> tuple[Publisher, Callable[[], None]]:
    publisher = Publisher(
        buffer=buffer,
        alerts=alerts or AlertQueue(buffer),
        session=session,  # type: ignore[arg-type]
        config=config or BufferConfig(backlog_max_readings_per_s=0),
        clock=clock,
        batch_max_readings=batch,
    )
    stopping = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(stopping,))
    thread.start()

    def stop() -> None:
        stopping.set()
        publisher.wake.set()
        thread.join(5)

    return publisher, stop


def test_rows_leave_the_buffer_only_on_their_messages_puback(buffer: Buffer) -> None:
    for i in range(5):
        buffer.append(f"gauge-{i}", NOW_MS + i, [Measurement("level_cm", 250.5, "cm")])
    session = FakeSession()
    _, stop = run_publisher(buffer, session, batch=3)
    try:
        first, second = session.wait_for(2)
    finally:
        stop()

    # Byte for byte what the contract's model writes for the same rows.
    assert first.topic.endswith("/backlog")
    assert first.payload == encode(ReadingBatch(session=7, readings=buffer.rows_between(1, 3, 9)))
    assert second.payload == encode(ReadingBatch(session=7, readings=buffer.rows_between(4, 5, 9)))
    # Published is not sent: everything is unsent until a PUBACK.
    assert buffer.stats().unsent_rows == 5
    assert second.on_acked is not None
    assert first.on_acked is not None
    second.on_acked()
    stats = buffer.stats()
    assert (stats.unsent_rows, stats.first_unsent_seq) == (3, 1)
    first.on_acked()
    assert buffer.stats().unsent_rows == 0
    assert buffer.inflight_count() == 0


def test_a_refused_message_puts_its_rows_back(buffer: Buffer) -> None:
    buffer.append("gauge-1", NOW_MS, [Measurement("level_cm", 1.0, "cm")])
    session = FakeSession()
    _, stop = run_publisher(buffer, session, batch=10)
    try:
        (sent,) = session.wait_for(1)
        assert sent.on_refused is not None
        sent.on_refused()
        resent = session.wait_for(2)[1]
    finally:
        stop()
    assert resent.payload == sent.payload
    assert buffer.stats().unsent_rows == 1


# -- the live lane's linger -----------------------------------------------------------------


@dataclass
class HeldClock:
    """Time that moves only when the test says: a linger never runs out by itself."""

    mono_s: float = 1000.0

    def wall_ms(self) -> int:
        return NOW_MS + int(self.mono_s * 1000)

    def monotonic_s(self) -> float:
        return self.mono_s


@pytest.fixture
def held_clock() -> HeldClock:
    return HeldClock()


@pytest.fixture
def live_buffer(tmp_path: Path, held_clock: HeldClock) -> Iterator[Buffer]:
    with Buffer(tmp_path / "live.db", monotonic_s=held_clock.monotonic_s) as opened:
        yield opened


def store_read(publisher: Publisher, buffer: Buffer, device: str) -> None:
    """One device read as the intake stores it."""
    buffer.append(device, NOW_MS, [Measurement("level_cm", 1.0, "cm")])
    publisher.readings_stored()


def readings_of(sent: Sent) -> list[tuple[int, str]]:
    batch = ReadingBatch.model_validate_json(sent.payload)
    return [(r.seq, r.device) for r in batch.readings]


@contextmanager
def lingering_publisher(
    buffer: Buffer,
    clock: HeldClock,
    live_linger_s: float,
    *,
    batch: int = 500,
    alerts: AlertQueue | None = None,
) -> Iterator[tuple[FakeSession, Publisher]]:
    """A running publisher on ``buffer`` whose live batches linger ``live_linger_s`` of
    ``clock``; stopped on the way out."""
    session = FakeSession()
    config = BufferConfig(backlog_max_readings_per_s=0, live_linger_s=live_linger_s)
    publisher, stop = run_publisher(
        buffer, session, batch, config=config, clock=clock, alerts=alerts
    )
    try:
        yield session, publisher
    finally:
        stop()


def test_the_reads_of_one_poll_round_go_as_one_live_message(
    live_buffer: Buffer, held_clock: HeldClock
) -> None:
    with lingering_publisher(live_buffer, held_clock, 0.2) as (session, publisher):
        for device in ("gauge-1", "gauge-2", "gauge-3"):
            store_read(publisher, live_buffer, device)
            held_clock.mono_s += 0.05  # a read every 50 ms: within the linger
        publisher.wake.set()  # the publisher looks again, as its own timer would
        assert session.sent == []  # the first read has waited 0.15 s of 0.2
        held_clock.mono_s += 0.06
        publisher.wake.set()
        (sent,) = session.wait_for(1)
        store_read(publisher, live_buffer, "gauge-1")  # the next round starts a new batch
        held_clock.mono_s += 0.2
        publisher.wake.set()
        second = session.wait_for(2)[1]
    assert sent.topic.endswith("/readings")
    assert readings_of(sent) == [(1, "gauge-1"), (2, "gauge-2"), (3, "gauge-3")]
    assert readings_of(second) == [(4, "gauge-1")]


def test_a_full_live_batch_goes_without_waiting_out_the_linger(
    live_buffer: Buffer, held_clock: HeldClock
) -> None:
    with lingering_publisher(live_buffer, held_clock, 5.0, batch=3) as (session, publisher):
        for device in ("gauge-1", "gauge-2", "gauge-3", "gauge-4"):
            store_read(publisher, live_buffer, device)
        (sent,) = session.wait_for(1)  # time never moved: only the batch size sent it
    assert readings_of(sent) == [(1, "gauge-1"), (2, "gauge-2"), (3, "gauge-3")]
    assert live_buffer.stats().unsent_rows == 4  # the fourth waits for its own linger


def test_an_alert_never_waits_for_a_lingering_live_batch(
    live_buffer: Buffer, held_clock: HeldClock
) -> None:
    alerts = AlertQueue(live_buffer)
    with lingering_publisher(live_buffer, held_clock, 5.0, alerts=alerts) as (session, publisher):
        store_read(publisher, live_buffer, "gauge-1")
        alerts.append(NOW_MS, b'{"alert": 1}')
        publisher.wake.set()  # as the agent does when it stores an alert
        (sent,) = session.wait_for(1)
    assert sent.topic.endswith("/alerts")
    assert sent.payload == b'{"alert": 1}'


def test_a_refused_live_batch_goes_again_at_once(
    live_buffer: Buffer, held_clock: HeldClock
) -> None:
    with lingering_publisher(live_buffer, held_clock, 0.2) as (session, publisher):
        store_read(publisher, live_buffer, "gauge-1")
        held_clock.mono_s += 0.2
        publisher.wake.set()
        (sent,) = session.wait_for(1)
        assert sent.on_refused is not None
        sent.on_refused()  # the time is unchanged: only "handed back goes at once" sends it
        resent = session.wait_for(2)[1]
    assert readings_of(resent) == readings_of(sent) == [(1, "gauge-1")]


def test_without_a_linger_every_read_goes_as_it_is_stored(
    live_buffer: Buffer, held_clock: HeldClock
) -> None:
    with lingering_publisher(live_buffer, held_clock, 0.0) as (session, publisher):
        store_read(publisher, live_buffer, "gauge-1")
        session.wait_for(1)
        store_read(publisher, live_buffer, "gauge-2")
        first, second = session.wait_for(2)
    assert readings_of(first) == [(1, "gauge-1")]
    assert readings_of(second) == [(2, "gauge-2")]
