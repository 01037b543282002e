"""The station book on its own, with an injected clock: states, and heartbeats that stay
under the payload bound however many stations push to the gateway."""

from __future__ import annotations

from collections.abc import Sequence

from agent.stations.book import StationBook
from drivers.base import Measurement
from drivers.stations import Observation, Problem, ProblemKind, StationReport
from tests.agent.station_rig import river_config
from tests.clock import FakeClock
from wire import Health, encode
from wire.payloads import MAX_PAYLOAD_BYTES


def book_of(count: int, clock: FakeClock) -> StationBook:
    stations = [river_config(f"st-{i:04d}", f"{i:010d}") for i in range(count)]

    def sink(device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        return None

    return StationBook(stations, sink=sink, alarm=lambda *_: None, clock=clock)


def report(device: str, ts_ms: int) -> StationReport:
    reading = Measurement("level_m", 12.0, "m")
    return StationReport(device, "0", "32H timed", ts_ms, (Observation(ts_ms, (reading,)),))


def test_states_from_starting_to_ok_to_stale_and_failing() -> None:
    clock = FakeClock()
    book = book_of(1, clock)
    assert book.state("st-0000") == "starting"
    book.take("l", report("st-0000", clock.wall_ms()))
    assert book.state("st-0000") == "ok"
    clock.advance(3 * 60 + 1)  # three report intervals (60 s) without a report
    assert book.state("st-0000") == "stale"
    for _ in range(3):
        book.refuse("l", Problem(ProblemKind.CRC, "wrong CRC", "0", "st-0000"), "peer")
    assert book.state("st-0000") == "failing"
    book.take("l", report("st-0000", clock.wall_ms()))
    assert book.state("st-0000") == "ok"


def test_a_heartbeat_of_two_thousand_stations_stays_under_the_payload_bound() -> None:
    clock = FakeClock()
    book = book_of(2000, clock)
    for i in range(2000):
        book.take("l", report(f"st-{i:04d}", clock.wall_ms()))
    seen: set[str] = set()
    for _ in range(4):
        devices = book.heartbeat_health()
        health = Health(
            session=1, ts_ms=clock.wall_ms(), uptime_s=1, heartbeat_interval_s=5,
            buffer_rows=0, buffer_bytes=0, oldest_unsent_age_s=0, last_seq=0,
            devices=devices, station_clock_offsets_ms=book.clock_offsets_ms(),
        )  # fmt: skip
        assert len(encode(health)) < MAX_PAYLOAD_BYTES
        seen |= set(devices)
    assert len(seen) == 2000  # every station reported within a few heartbeats


def test_a_station_in_trouble_is_in_every_heartbeat() -> None:
    clock = FakeClock()
    book = book_of(1200, clock)
    for i in range(1200):
        book.take("l", report(f"st-{i:04d}", clock.wall_ms()))
    for _ in range(3):
        book.refuse("l", Problem(ProblemKind.CRC, "wrong CRC", "0", "st-0777"), "peer")
    for _ in range(5):
        devices = book.heartbeat_health()
        assert devices["st-0777"].state == "failing"
        assert devices["st-0777"].errors == {"crc": 3}
