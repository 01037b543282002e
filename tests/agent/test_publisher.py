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
from agent.bus.outlook import BusOutlook
from agent.config import BufferConfig
from agent.uplink.publisher import Publisher
from drivers.base import Measurement
from tests.clock import FakeClock
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
    outlook: BusOutlook | None = None,
) -> tuple[Publisher, Callable[[], None]]:
    publisher = Publisher(
        buffer=buffer,
        alerts=alerts or AlertQueue(buffer),
        session=session,  # type: ignore[arg-type]
        config=config or BufferConfig(backlog_max_readings_per_s=0),
        clock=clock,
        batch_max_readings=batch,
        outlook=outlook,
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


# -- the live lane: held only while another reading is due before its deadline ------------

PORT = "bus1"
READ_S = 0.029  # a two-register Modbus read at 9600 baud


@pytest.fixture
def live_buffer(tmp_path: Path, held_clock: FakeClock) -> Iterator[Buffer]:
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
def live_publisher(
    buffer: Buffer,
    clock: FakeClock,
    live_linger_s: float,
    *,
    outlook: BusOutlook | None = None,
    batch: int = 500,
    alerts: AlertQueue | None = None,
) -> Iterator[tuple[FakeSession, Publisher]]:
    """A running publisher on ``buffer`` whose live batches may be held ``live_linger_s``
    of ``clock`` while ``outlook`` expects a reading; stopped on the way out."""
    session = FakeSession()
    config = BufferConfig(backlog_max_readings_per_s=0, live_linger_s=live_linger_s)
    publisher, stop = run_publisher(
        buffer, session, batch, config=config, clock=clock, alerts=alerts, outlook=outlook
    )
    try:
        yield session, publisher
    finally:
        stop()


def test_a_batch_is_held_while_the_bus_has_a_read_due_before_its_deadline(
    live_buffer: Buffer, held_clock: FakeClock
) -> None:
    outlook = BusOutlook()
    with live_publisher(live_buffer, held_clock, 0.05, outlook=outlook) as (session, publisher):
        # Time never moves by itself: only what the outlook says decides.
        for device in ("gauge-1", "gauge-2"):
            outlook.expect(PORT, held_clock.now_s + READ_S)  # the next read is on the wire
            store_read(publisher, live_buffer, device)
        outlook.expect(PORT, held_clock.now_s + 0.7)  # the round ended: next in 0.7 s
        store_read(publisher, live_buffer, "gauge-3")
        (sent,) = session.wait_for(1)
        assert sent.topic.endswith("/readings")
        assert readings_of(sent) == [(1, "gauge-1"), (2, "gauge-2"), (3, "gauge-3")]

        # The next round: a read due past the deadline (0.05 s) sends at once.
        held_clock.now_s += 1.0
        outlook.expect(PORT, held_clock.now_s + 2 * READ_S)
        store_read(publisher, live_buffer, "gauge-1")
        second = session.wait_for(2)[1]
    assert readings_of(second) == [(4, "gauge-1")]


def test_a_lone_reading_is_not_held(live_buffer: Buffer, held_clock: FakeClock) -> None:
    outlook = BusOutlook()
    outlook.expect(PORT, held_clock.now_s + 60.0)  # a device read once a minute
    with live_publisher(live_buffer, held_clock, 5.0, outlook=outlook) as (session, publisher):
        store_read(publisher, live_buffer, "gauge-1")
        (sent,) = session.wait_for(1)  # time never moved: the 5 s deadline did not send it
    assert readings_of(sent) == [(1, "gauge-1")]


def test_without_port_owners_a_live_reading_goes_at_once(
    live_buffer: Buffer, held_clock: FakeClock
) -> None:
    with live_publisher(live_buffer, held_clock, 5.0) as (session, publisher):
        store_read(publisher, live_buffer, "gauge-1")
        (sent,) = session.wait_for(1)
    assert readings_of(sent) == [(1, "gauge-1")]


def test_a_held_batch_goes_at_its_deadline_when_the_expected_read_is_late(
    live_buffer: Buffer, held_clock: FakeClock
) -> None:
    outlook = BusOutlook()
    outlook.expect(PORT, held_clock.now_s + READ_S)  # then the slave never answers
    with live_publisher(live_buffer, held_clock, 0.05, outlook=outlook) as (session, publisher):
        store_read(publisher, live_buffer, "gauge-1")
        held_clock.now_s += 0.04
        publisher.wake.set()  # the publisher looks again, as its own timer would
        held_clock.now_s += 0.01  # the deadline
        publisher.wake.set()
        (sent,) = session.wait_for(1)
    assert readings_of(sent) == [(1, "gauge-1")]


def test_a_full_live_batch_goes_without_waiting_for_the_next_read(
    live_buffer: Buffer, held_clock: FakeClock
) -> None:
    outlook = BusOutlook()
    outlook.expect(PORT, held_clock.now_s)  # always another read due: only size sends
    with live_publisher(live_buffer, held_clock, 5.0, outlook=outlook, batch=3) as (
        session,
        publisher,
    ):
        for device in ("gauge-1", "gauge-2", "gauge-3", "gauge-4"):
            store_read(publisher, live_buffer, device)
        (sent,) = session.wait_for(1)
    assert readings_of(sent) == [(1, "gauge-1"), (2, "gauge-2"), (3, "gauge-3")]
    assert live_buffer.stats().unsent_rows == 4  # the fourth waits for company


def test_an_alert_never_waits_for_a_held_live_batch(
    live_buffer: Buffer, held_clock: FakeClock
) -> None:
    alerts = AlertQueue(live_buffer)
    outlook = BusOutlook()
    outlook.expect(PORT, held_clock.now_s)
    with live_publisher(live_buffer, held_clock, 5.0, outlook=outlook, alerts=alerts) as (
        session,
        publisher,
    ):
        store_read(publisher, live_buffer, "gauge-1")
        alerts.append(NOW_MS, b'{"alert": 1}')
        publisher.wake.set()  # as the agent does when it stores an alert
        (sent,) = session.wait_for(1)
    assert sent.topic.endswith("/alerts")
    assert sent.payload == b'{"alert": 1}'


def test_a_refused_live_batch_goes_again_at_once(
    live_buffer: Buffer, held_clock: FakeClock
) -> None:
    outlook = BusOutlook()
    outlook.expect(PORT, held_clock.now_s)  # another read always due: held to the deadline
    with live_publisher(live_buffer, held_clock, 0.2, outlook=outlook) as (session, publisher):
        store_read(publisher, live_buffer, "gauge-1")
        held_clock.now_s += 0.2
        publisher.wake.set()
        (sent,) = session.wait_for(1)
        assert sent.on_refused is not None
        sent.on_refused()  # time is unchanged: a reading's deadline counts from its append
        resent = session.wait_for(2)[1]
    assert readings_of(resent) == readings_of(sent) == [(1, "gauge-1")]


def test_without_a_linger_every_read_goes_as_it_is_stored(
    live_buffer: Buffer, held_clock: FakeClock
) -> None:
    outlook = BusOutlook()
    outlook.expect(PORT, held_clock.now_s)  # another read always due: no matter
    with live_publisher(live_buffer, held_clock, 0.0, outlook=outlook) as (session, publisher):
        store_read(publisher, live_buffer, "gauge-1")
        session.wait_for(1)
        store_read(publisher, live_buffer, "gauge-2")
        first, second = session.wait_for(2)
    assert readings_of(first) == [(1, "gauge-1")]
    assert readings_of(second) == [(2, "gauge-2")]
