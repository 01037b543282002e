"""The store-and-forward buffer, on real SQLite files."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.buffer.store import SEQ_BLOCK, Buffer, seq_runs
from drivers.base import Measurement
from tests.clock import FakeClock
from wire import Quality


def level(value: float) -> list[Measurement]:
    return [Measurement("level_cm", value, "cm"), Measurement("status", 0.0)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def buffer(tmp_path: Path, clock: FakeClock) -> Iterator[Buffer]:
    with Buffer(tmp_path / "buffer.db", now_ms=clock.wall_ms) as opened:
        yield opened


def test_append_assigns_increasing_seqs_and_keeps_the_source_time(buffer: Buffer) -> None:
    first = buffer.append("gauge-1", 1000, level(251.5))
    second = buffer.append("gauge-1", 2000, level(251.6))

    assert [r.seq for r in first + second] == [1, 2, 3, 4]
    assert [r.ts_ms for r in first + second] == [1000, 1000, 2000, 2000]
    assert first[0].value == 251.5
    assert first[0].unit == "cm"
    assert buffer.last_seq == 4


def test_a_bad_measurement_is_stored_with_no_value(buffer: Buffer) -> None:
    stored = buffer.append("gauge-1", 1000, [Measurement("level_cm", 3.0, "cm", Quality.BAD)])

    assert stored[0].value is None
    assert stored[0].quality is Quality.BAD
    assert buffer.take_unsent(10) == stored


def test_take_unsent_is_oldest_first_and_skips_rows_in_flight(buffer: Buffer) -> None:
    for i in range(4):
        buffer.append("gauge-1", 1000 + i, level(float(i)))

    first = buffer.take_unsent(4)
    second = buffer.take_unsent(4)
    assert [r.seq for r in first] == [1, 2, 3, 4]
    assert [r.seq for r in second] == [5, 6, 7, 8]
    assert buffer.take_unsent(4) == []
    assert buffer.inflight_count() == 8


def test_released_rows_are_taken_again_and_acked_rows_never(buffer: Buffer) -> None:
    for i in range(3):
        buffer.append("gauge-1", 1000 + i, level(float(i)))
    first = buffer.take_unsent(2)  # seqs 1, 2
    second = buffer.take_unsent(2)  # seqs 3, 4

    buffer.ack([r.seq for r in second])
    buffer.release(r.seq for r in first)

    assert [r.seq for r in buffer.take_unsent(10)] == [1, 2, 5, 6]
    buffer.release_all()
    assert [r.seq for r in buffer.take_unsent(10)] == [1, 2, 5, 6]


def test_seq_runs_split_at_every_hole() -> None:
    assert seq_runs([1, 2, 3, 7, 8, 10]) == [(1, 3), (7, 8), (10, 10)]
    assert seq_runs([5, 3, 4, 4]) == [(3, 5)]
    assert seq_runs([]) == []


def test_a_range_ack_never_acks_a_seq_its_message_did_not_carry(buffer: Buffer) -> None:
    for i in range(3):
        buffer.append("gauge-1", 1000 + i, level(float(i)))  # seqs 1..6
    message_a = buffer.take_unsent_rows(4)  # seqs 1..4
    buffer.release([2])  # 2's message was refused: unsent again...
    message_b = buffer.take_unsent_rows(1)  # ...and in flight in another message
    assert [r[0] for r in message_b] == [2]
    carried_by_a = [r[0] for r in message_a if r[0] != 2]  # [1, 3, 4]: a hole at 2

    buffer.ack(carried_by_a)  # ranges 1..1 and 3..4, never 1..4

    stats = buffer.stats()
    assert stats.first_unsent_seq == 2  # still waiting for its own message's PUBACK
    assert stats.unsent_rows == 3  # 2, 5, 6
    assert buffer.inflight_count() == 1
    buffer.ack([2])
    assert buffer.stats().first_unsent_seq == 5
    assert [r.seq for r in buffer.take_unsent(10)] == [5, 6]


def test_rows_come_out_as_stored_and_as_readings_alike(buffer: Buffer) -> None:
    stored = buffer.append("gauge-1", 1000, level(251.5))
    rows = buffer.stored_rows(1, 2, 10)
    assert rows == [(1, 1000, "gauge-1", "level_cm", 251.5, "cm", "good"),
                    (2, 1000, "gauge-1", "status", 0.0, "", "good")]  # fmt: skip
    assert buffer.rows_between(1, 2, 10) == stored


def test_stats_count_rows_and_the_age_of_the_oldest_unsent(
    buffer: Buffer, clock: FakeClock
) -> None:
    assert buffer.stats().oldest_unsent_age_s == 0.0
    buffer.append("gauge-1", clock.wall_ms() - 30_000, level(1.0))
    buffer.append("gauge-1", clock.wall_ms() - 10_000, level(2.0))
    buffer.ack([1, 2])

    stats = buffer.stats()

    assert stats.rows == 4
    assert stats.unsent_rows == 2
    assert stats.oldest_unsent_age_s == pytest.approx(10.0)
    assert stats.last_seq == 4
    assert stats.bytes > 0


def test_purge_deletes_only_acked_rows_past_retention(buffer: Buffer, clock: FakeClock) -> None:
    buffer.append("gauge-1", clock.wall_ms(), level(1.0))
    buffer.append("gauge-1", clock.wall_ms(), level(2.0))
    buffer.ack([1, 2])
    clock.advance(3600)
    buffer.ack([3])

    assert buffer.purge_acked(retention_s=1800) == 2
    assert buffer.stats().rows == 2
    assert [r.seq for r in buffer.take_unsent(10)] == [4]


def test_seq_and_session_persist_and_are_never_reused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "buffer.db"
    with Buffer(path, now_ms=clock.wall_ms) as buffer:
        assert buffer.bump_session() == 1
        buffer.append("gauge-1", 1, level(1.0))
        buffer.ack([1, 2])
        buffer.purge_acked(retention_s=0)  # even with every row gone...
        clock.advance(0.001)
        buffer.purge_acked(retention_s=0)
        assert buffer.stats().rows == 0

    with Buffer(path, now_ms=clock.wall_ms) as buffer:
        assert buffer.session == 1
        assert buffer.bump_session() == 2
        assert [r.seq for r in buffer.append("gauge-1", 2, level(2.0))] == [3, 4]


def buffer_as_a_crash_left_it(tmp_path: Path) -> Path:
    """A buffer (booted as boot 1) with one append, its files copied as a crash leaves
    them: no clean close. Returns the copy's path."""
    buffer = Buffer(tmp_path / "buffer.db", boot_id=1).open()
    buffer.append("gauge-1", 1, level(1.0))
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for file in tmp_path.glob("buffer.db*"):
        shutil.copy(file, crashed / file.name)
    buffer.close()
    return crashed / "buffer.db"


def test_after_a_power_cut_seqs_resume_past_the_reserved_block(tmp_path: Path) -> None:
    """A power cut may roll back the newest commits; a published seq must not come back."""
    crashed = buffer_as_a_crash_left_it(tmp_path)

    with Buffer(crashed, boot_id=2) as recovered:  # the machine rebooted
        seqs = [r.seq for r in recovered.append("gauge-1", 2, level(2.0))]

    assert seqs[0] > SEQ_BLOCK
    assert seqs == [seqs[0], seqs[0] + 1]


def test_after_a_process_crash_without_reboot_seqs_resume_exactly(tmp_path: Path) -> None:
    """SIGKILL loses nothing committed (the OS has the pages): no gap for the controller."""
    crashed = buffer_as_a_crash_left_it(tmp_path)

    with Buffer(crashed, boot_id=1) as recovered:
        assert [r.seq for r in recovered.append("gauge-1", 2, level(2.0))] == [3, 4]


def test_appends_from_many_threads_get_unique_seqs(buffer: Buffer) -> None:
    def writer(device: str) -> None:
        for i in range(50):
            buffer.append(device, i, level(float(i)))

    threads = [threading.Thread(target=writer, args=(f"gauge-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    seqs = [r.seq for r in buffer.take_unsent(1000)]
    assert seqs == list(range(1, 401))
