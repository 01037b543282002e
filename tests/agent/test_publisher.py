"""The publisher's drain path against a fake MQTT session: what it sends and when rows leave."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.alerts import AlertQueue
from agent.buffer import Buffer
from agent.clock import SYSTEM_CLOCK
from agent.config import BufferConfig
from agent.publisher import Publisher
from drivers.base import Measurement
from wire import ReadingBatch, TopicKind, encode, topic_for

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


def run_publisher(buffer: Buffer, session: FakeSession, batch: int) -> Callable[[], None]:
    publisher = Publisher(
        buffer=buffer,
        alerts=AlertQueue(buffer),
        session=session,  # type: ignore[arg-type]
        config=BufferConfig(backlog_max_readings_per_s=0),
        clock=SYSTEM_CLOCK,
        batch_max_readings=batch,
    )
    stopping = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(stopping,))
    thread.start()

    def stop() -> None:
        stopping.set()
        publisher.wake.set()
        thread.join(5)

    return stop


def test_rows_leave_the_buffer_only_on_their_messages_puback(buffer: Buffer) -> None:
    for i in range(5):
        buffer.append(f"gauge-{i}", NOW_MS + i, [Measurement("level_cm", 250.5, "cm")])
    session = FakeSession()
    stop = run_publisher(buffer, session, batch=3)
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
    stop = run_publisher(buffer, session, batch=10)
    try:
        (sent,) = session.wait_for(1)
        assert sent.on_refused is not None
        sent.on_refused()
        resent = session.wait_for(2)[1]
    finally:
        stop()
    assert resent.payload == sent.payload
    assert buffer.stats().unsent_rows == 1
