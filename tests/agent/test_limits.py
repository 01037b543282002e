"""Buffer lanes and limits, on real SQLite files: live vs backlog, eviction order, counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.buffer.alerts import AlertQueue
from agent.buffer.eviction import ACKED_EVICTED, BUFFER_FULL, MAX_AGE, enforce_limits
from agent.buffer.store import Buffer, Lane
from drivers.base import Measurement
from tests.clock import FakeClock


def one(value: float) -> list[Measurement]:
    return [Measurement("level_cm", value, "cm")]


@pytest.fixture
def clocks() -> FakeClock:
    return FakeClock(now_s=100.0)


@pytest.fixture
def buffer(tmp_path: Path, clocks: FakeClock) -> Iterator[Buffer]:
    with Buffer(
        tmp_path / "buffer.db",
        now_ms=clocks.wall_ms,
        monotonic_s=clocks.monotonic_s,
        live_window_s=10.0,
    ) as opened:
        yield opened


def test_rows_older_than_the_live_window_are_backlog(buffer: Buffer, clocks: FakeClock) -> None:
    for i in range(3):
        buffer.append("g", clocks.wall_ms(), one(i))  # seqs 1-3
    clocks.advance(11)
    for i in range(2):
        buffer.append("g", clocks.wall_ms(), one(i))  # seqs 4-5: live

    assert [r.seq for r in buffer.take_unsent(10, Lane.LIVE)] == [4, 5]
    assert [r.seq for r in buffer.take_unsent(10, Lane.LIVE)] == []
    assert [r.seq for r in buffer.take_unsent(2, Lane.BACKLOG)] == [1, 2]
    assert [r.seq for r in buffer.take_unsent(2, Lane.BACKLOG)] == [3]
    clocks.advance(11)  # 4 and 5 are old now, but in flight: never taken twice
    assert buffer.take_unsent(10, Lane.BACKLOG) == []
    buffer.release([4])
    assert [r.seq for r in buffer.take_unsent(10, Lane.BACKLOG)] == [4]


def test_everything_found_at_start_is_backlog(tmp_path: Path, clocks: FakeClock) -> None:
    path = tmp_path / "buffer.db"
    with Buffer(path, now_ms=clocks.wall_ms, monotonic_s=clocks.monotonic_s) as first:
        first.append("g", 1, one(1.0))
    with Buffer(path, now_ms=clocks.wall_ms, monotonic_s=clocks.monotonic_s) as second:
        assert second.take_unsent(10, Lane.LIVE) == []
        assert [r.seq for r in second.take_unsent(10, Lane.BACKLOG)] == [1]


def test_replay_serves_acked_rows_of_a_range(buffer: Buffer, clocks: FakeClock) -> None:
    for i in range(5):
        buffer.append("g", clocks.wall_ms() + i, one(i))
    buffer.ack([1, 2, 3, 4, 5])
    buffer.purge_acked(retention_s=3600)  # within retention: kept

    assert [r.seq for r in buffer.rows_between(2, 4, 100)] == [2, 3, 4]
    assert buffer.rows_between(2, 4, 100)[0].ts_ms == clocks.wall_ms() + 1


def fill(buffer: Buffer, clocks: FakeClock, count: int) -> None:
    for i in range(count):
        buffer.append("gauge-with-a-long-name", clocks.wall_ms(), one(float(i)))


def test_over_max_bytes_acked_rows_go_first_then_the_oldest_unsent(
    buffer: Buffer, clocks: FakeClock
) -> None:
    fill(buffer, clocks, 3000)
    buffer.ack(list(range(1, 501)))  # 500 acked rows kept for replays
    used = buffer.used_bytes()

    report = enforce_limits(buffer, max_bytes=used * 3 // 4, max_age_s=0, now_ms=clocks.wall_ms())

    assert report.counts[ACKED_EVICTED] == 500
    dropped = report.counts[BUFFER_FULL]
    assert dropped > 0
    assert buffer.dropped() == {ACKED_EVICTED: 500, BUFFER_FULL: dropped}
    remaining = [r.seq for r in buffer.take_unsent(10_000)]
    # Oldest first: what is left is exactly the newest rows, nothing else missing.
    assert remaining == list(range(501 + dropped, 3001))
    assert buffer.used_bytes() <= used * 3 // 4


def test_rows_in_flight_and_alerts_are_never_evicted(buffer: Buffer, clocks: FakeClock) -> None:
    alerts = AlertQueue(buffer)
    alert_id = alerts.append(clocks.wall_ms(), b'{"alert": 1}')
    fill(buffer, clocks, 2000)
    in_flight = [r.seq for r in buffer.take_unsent(100)]  # 1..100 handed to the session

    enforce_limits(buffer, max_bytes=buffer.used_bytes() // 2, max_age_s=0, now_ms=clocks.wall_ms())

    assert [r.seq for r in buffer.rows_between(1, 100, 1000)] == in_flight
    assert buffer.rows_between(101, 101, 1) == []  # the oldest unsent row went first
    assert alerts.take(10) == [(alert_id, b'{"alert": 1}')]


def test_unsent_rows_older_than_max_age_are_dropped_and_counted(
    buffer: Buffer, clocks: FakeClock
) -> None:
    buffer.append("g", clocks.wall_ms() - 7200_000, one(1.0))
    buffer.append("g", clocks.wall_ms() - 10_000, one(2.0))

    report = enforce_limits(buffer, max_bytes=0, max_age_s=3600, now_ms=clocks.wall_ms())

    assert report.counts == {MAX_AGE: 1}
    assert [r.seq for r in buffer.take_unsent(10)] == [2]


def test_drop_counts_survive_a_restart(tmp_path: Path, clocks: FakeClock) -> None:
    path = tmp_path / "buffer.db"
    with Buffer(path, now_ms=clocks.wall_ms) as buffer:
        buffer.append("g", clocks.wall_ms() - 7200_000, one(1.0))
        enforce_limits(buffer, max_bytes=0, max_age_s=60, now_ms=clocks.wall_ms())
    with Buffer(path, now_ms=clocks.wall_ms) as reopened:
        assert reopened.dropped() == {MAX_AGE: 1}


def queries_during(buffer: Buffer, action: Callable[[], object]) -> list[str]:
    """The SQL statements ``action`` sends to the buffer's SQLite connection."""
    statements: list[str] = []
    buffer.conn.set_trace_callback(statements.append)
    try:
        action()
    finally:
        buffer.conn.set_trace_callback(None)
    return statements


def test_an_exhausted_lane_costs_no_query_until_a_row_arrives(
    buffer: Buffer, clocks: FakeClock
) -> None:
    buffer.append("g", clocks.wall_ms(), one(1.0))
    clocks.advance(11)  # seq 1 is backlog now
    assert [r.seq for r in buffer.take_unsent(10, Lane.BACKLOG)] == [1]
    assert buffer.take_unsent(10, Lane.BACKLOG) == []
    assert buffer.take_unsent(10, Lane.LIVE) == []

    # The publisher asks both lanes on every round: an empty lane answers from memory.
    assert queries_during(buffer, lambda: buffer.take_unsent(10, Lane.BACKLOG)) == []
    assert queries_during(buffer, lambda: buffer.take_unsent(10, Lane.LIVE)) == []
    buffer.append("g", clocks.wall_ms(), one(2.0))
    assert [r.seq for r in buffer.take_unsent(10, Lane.LIVE)] == [2]
    buffer.release([1])  # seq 1's message was refused: the lane looks again
    assert [r.seq for r in buffer.take_unsent(10, Lane.BACKLOG)] == [1]


def test_the_live_lane_says_how_long_its_oldest_untaken_row_has_waited(
    buffer: Buffer, clocks: FakeClock
) -> None:
    assert buffer.live_waiting() is None
    buffer.append("g", clocks.wall_ms(), [*one(1.0), *one(2.0)])  # seqs 1-2 at t=100
    clocks.advance(0.1)
    buffer.append("g", clocks.wall_ms(), one(3.0))  # seq 3 at t=100.1
    assert buffer.live_waiting() == (100.0, 3)

    taken = buffer.take_unsent(2, Lane.LIVE)  # seqs 1-2 leave: seq 3 waits
    assert buffer.live_waiting() == (100.1, 1)
    buffer.take_unsent(10, Lane.LIVE)
    assert buffer.live_waiting() is None
    buffer.release([r.seq for r in taken])  # handed back: they count from their append
    assert buffer.live_waiting() == (100.0, 3)


def test_an_empty_alerts_lane_costs_no_query_until_an_alert_is_stored(buffer: Buffer) -> None:
    alerts = AlertQueue(buffer)
    assert alerts.take(10) == []
    assert queries_during(buffer, lambda: alerts.take(10)) == []

    alert_id = alerts.append(1, b"a")
    assert alerts.take(10) == [(alert_id, b"a")]
    alerts.release(alert_id)  # its message was refused: taken again
    assert alerts.take(10) == [(alert_id, b"a")]
