"""One contract for every station driver (stations push; the gateway listens).

Fed what firmware-sim's own encoders make (an independent implementation), and then
against live simulated stations on real pseudo-terminals: a report of a configured station
reads, at its own time, and is answered as its standard asks; anything else (a wrong CRC,
a stranger, a wrong password, noise, a cut frame, a link closed mid-frame) is a problem of
the right kind, never a measurement and never an answer, and the next good report reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import serial

from drivers.base import DeviceConfig
from drivers.registry import DRIVERS, link_factory, parse_device_config
from drivers.stations import LinkOptions, LinkOutput, ProblemKind, StationLink, StationReport
from edgewatch.waiting import wait_until
from firmware_sim import Faults
from firmware_sim.stations import (
    SimStation,
    StationQuirks,
    StationRunner,
    StationSpec,
    build_station,
)
from wire import Quality

from .station_cases import STATION_CASES, StationCase, key_of

NOW_MS = 1_750_204_807_000


def config_of(case: StationCase, **overrides: Any) -> DeviceConfig:
    return parse_device_config({"name": "st-1", "port": "listener-1", **case.config, **overrides})


def new_link(case: StationCase, **overrides: Any) -> StationLink:
    config = config_of(case, **overrides)
    return link_factory(config.driver, [config], LinkOptions())()


@pytest.fixture(params=STATION_CASES, ids=[c.id for c in STATION_CASES])
def case(request: pytest.FixtureRequest) -> StationCase:
    found: StationCase = request.param
    return found


def good_report(case: StationCase) -> bytes:
    return case.report(*key_of(case))


def test_a_report_reads_every_metric_at_the_stations_time(case: StationCase) -> None:
    out = new_link(case).receive(good_report(case), NOW_MS)
    assert out.problems == []
    (report,) = out.reports
    assert report.device == "st-1"
    (observation,) = report.observations
    assert sorted(m.metric for m in observation.measurements) == sorted(case.metrics)
    assert all(m.quality is Quality.GOOD for m in observation.measurements)
    assert observation.ts_ms != NOW_MS  # the station's observation time, not the arrival
    assert len(out.replies) == (1 if case.answers else 0)


def test_bytes_split_anywhere_read_the_same(case: StationCase) -> None:
    data = b"\x00noise" + good_report(case) + good_report(case)
    link = new_link(case)
    reports = 0
    for i in range(0, len(data), 5):
        reports += len(link.receive(data[i : i + 5], NOW_MS).reports)
    assert reports == 2


def expect_nothing_but(out: LinkOutput, kind: ProblemKind) -> None:
    assert out.reports == []
    assert out.replies == []
    assert kind in [p.kind for p in out.problems]


def test_a_wrong_crc_is_refused_unanswered(case: StationCase) -> None:
    expect_nothing_but(
        new_link(case).receive(case.corrupt(good_report(case)), NOW_MS), ProblemKind.CRC
    )


def test_a_stranger_is_refused_unanswered(case: StationCase) -> None:
    password, key = key_of(case)
    stranger = key[:-1] + ("1" if key[-1] != "1" else "2")
    out = new_link(case).receive(case.report(password, stranger), NOW_MS)
    expect_nothing_but(out, ProblemKind.UNKNOWN_STATION)
    assert out.problems[0].station == stranger


def test_a_wrong_password_is_refused_unanswered(case: StationCase) -> None:
    password, key = key_of(case)
    wrong = password[:-1] + ("1" if password[-1] != "1" else "2")
    out = new_link(case).receive(case.report(wrong, key), NOW_MS)
    expect_nothing_but(out, ProblemKind.WRONG_PASSWORD)
    assert out.problems[0].device == "st-1"


def test_noise_and_a_cut_frame_never_cost_the_next_report(case: StationCase) -> None:
    good = good_report(case)
    out = new_link(case).receive(b"\xff\x00\x7e junk ##" + good[: len(good) // 2] + good, NOW_MS)
    assert len(out.reports) == 1
    assert {p.kind for p in out.problems} <= {ProblemKind.GARBAGE, ProblemKind.TRUNCATED}
    assert out.problems


def test_a_link_closed_mid_frame_is_a_truncated_frame(case: StationCase) -> None:
    link = new_link(case)
    link.receive(good_report(case)[:12], NOW_MS)
    assert [p.kind for p in link.close(NOW_MS).problems] == [ProblemKind.TRUNCATED]


def test_every_station_driver_has_a_contract_case() -> None:
    pushed = {name for name, spec in DRIVERS.items() if spec.pushed}
    assert {c.config["driver"] for c in STATION_CASES} == pushed


# -- live: simulated stations on real ptys --------------------------------------------------


@dataclass
class LiveCase:
    id: str
    model: str
    config: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


LIVE_CASES = [
    LiveCase(
        "sl651_river-hex",
        "sl651_river",
        {
            "driver": "sl651",
            "station": "0012345678",
            "password": "1234",
            "elements": [{"element": "Z", "metric": "level_m"}, {"element": "VT", "metric": "v"}],
        },
    ),
    LiveCase(
        "sl651_rain-ascii",
        "sl651_rain",
        {
            "driver": "sl651",
            "station": "0012345679",
            "password": "1234",
            "elements": [{"element": "PJ", "metric": "rain_mm"}, {"element": "VT", "metric": "v"}],
        },
        {"ascii_frames": True},
    ),
    LiveCase(
        "hj212_air",
        "hj212_air",
        {
            "driver": "hj212",
            "mn": "5001000000000000000000A1",
            "password": "123456",
            "factors": [
                {"factor": "a34004", "metric": "pm25"},
                {"factor": "a21026", "metric": "so2"},
            ],
        },
    ),
    LiveCase(
        "hj212_water",
        "hj212_water",
        {
            "driver": "hj212",
            "mn": "5001000000000000000000B2",
            "password": "123456",
            "factors": [{"factor": "w01001", "field": "Avg", "metric": "ph"}],
        },
    ),
]


@dataclass
class Live:
    station: SimStation
    port: serial.Serial
    link: StationLink
    reports: list[StationReport] = field(default_factory=list)
    problems: list[ProblemKind] = field(default_factory=list)

    def pump(self) -> None:
        """What the station sent so far, through the link; answers go back on the line."""
        data = self.port.read(self.port.in_waiting or 1)
        if data:
            out = self.link.receive(data, int(time.time() * 1000))
            for reply in out.replies:
                self.port.write(reply)
            self.reports += out.reports
            self.problems += [p.kind for p in out.problems]

    def until(self, check: Any, what: str) -> None:
        def done() -> bool:
            self.pump()
            return bool(check())

        wait_until(done, timeout_s=5, interval_s=0.01, message=what)


@contextmanager
def live(case: LiveCase) -> Iterator[Live]:
    key = case.config.get("station") or case.config["mn"]
    spec = StationSpec(
        "st-1", case.model, key, case.config["password"], transport="pty",
        options={"period_s": 0.2, "phase_s": 0, "answer_timeout_s": 1.0, **case.options},
    )  # fmt: skip
    station = build_station(spec)
    config = parse_device_config({"name": "st-1", "port": "line-1", **case.config})
    with StationRunner([station]), serial.Serial(station.pty, 9600, timeout=0.05) as port:
        yield Live(station, port, link_factory(config.driver, [config], LinkOptions())())


@pytest.fixture(params=LIVE_CASES, ids=[c.id for c in LIVE_CASES])
def live_case(request: pytest.FixtureRequest) -> LiveCase:
    found: LiveCase = request.param
    return found


def test_a_live_station_reports_and_is_answered(live_case: LiveCase) -> None:
    with live(live_case) as rig:
        rig.until(lambda: len(rig.reports) >= 2, "two reports")
        rig.until(lambda: rig.station.stats.answered >= 2, "the station saw its answers")
        assert rig.problems == []
        assert rig.station.stats.retries == 0
        assert all(
            m.quality is Quality.GOOD
            for r in rig.reports
            for o in r.observations
            for m in o.measurements
        )


LIVE_FAULTS = [
    ("corrupt_crc", Faults(corrupt_crc=True), StationQuirks(), ProblemKind.CRC),
    ("garbage", Faults(garbage=True), StationQuirks(), ProblemKind.GARBAGE),
    ("wrong_password", Faults(), StationQuirks(wrong_password=True), ProblemKind.WRONG_PASSWORD),
]


@pytest.mark.parametrize(
    ("fault", "faults", "quirks", "kind"), LIVE_FAULTS, ids=[f[0] for f in LIVE_FAULTS]
)
def test_a_live_fault_is_the_right_kind_and_the_next_report_reads(
    live_case: LiveCase, fault: str, faults: Faults, quirks: StationQuirks, kind: ProblemKind
) -> None:
    with live(live_case) as rig:
        rig.until(lambda: rig.reports, "a first report")
        rig.station.faults, rig.station.quirks = faults, quirks
        rig.until(lambda: kind in rig.problems, f"a {kind} problem")
        rig.station.faults, rig.station.quirks = Faults(), StationQuirks()
        before = len(rig.reports)
        rig.until(lambda: len(rig.reports) > before, "a good report after the fault")


def test_a_clock_ten_minutes_off_shows_in_the_send_time() -> None:
    with live(LIVE_CASES[0]) as rig:
        rig.station.quirks = StationQuirks(clock_offset_s=600)
        rig.until(lambda: any(r.observations for r in rig.reports[1:]), "a report")
        report = next(r for r in rig.reports[::-1] if r.observations)
        assert report.sent_ms is not None
        offset_s = (report.sent_ms - time.time() * 1000) / 1000
        assert 590 < offset_s < 610
