"""The platform side of an HJ212 link, fed bytes: matching, answers, flags to qualities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from drivers.hj212 import Hj212StationConfig, link_factory
from drivers.hj212.codec import build_segment, decode, encode, parse_segment
from drivers.hj212.driver import Hj212Link
from drivers.registry import parse_device_config
from drivers.stations import LinkOptions, ProblemKind
from wire import Quality

from .test_hj212_codec import AIR_2011, ANSWER_9014, WATER_2061

MN = "5001000000000000000000A1"
NOW_MS = int(datetime(2025, 6, 18, 0, 0, 1, tzinfo=UTC).timestamp() * 1000)


def logger(**overrides: Any) -> Hj212StationConfig:
    raw: dict[str, Any] = {
        "name": "air-1",
        "driver": "hj212",
        "port": "hj212-tcp",
        "mn": MN,
        "password": "123456",
        "factors": [
            {"factor": "a34004", "metric": "pm25_ug_m3", "unit": "ug/m3"},
            {"factor": "a21026", "metric": "so2_mg_m3", "unit": "mg/m3"},
            {"factor": "w21003", "field": "Avg", "metric": "nh3n_mg_l"},
            {"factor": "w00000", "field": "Cou", "metric": "flow_m3"},
        ],
    }
    raw.update(overrides)
    config = parse_device_config(raw)
    assert isinstance(config, Hj212StationConfig)
    return config


def link(*configs: Hj212StationConfig, **options: Any) -> Hj212Link:
    made = link_factory(list(configs) or [logger()], LinkOptions(**options))()
    assert isinstance(made, Hj212Link)
    return made


def packet(
    cn: str = "2011", flag: int = 5, cp: str = "", mn: str = MN, pw: str = "123456"
) -> bytes:
    return encode(
        build_segment(qn="20250618080000128", st="22", cn=cn, pw=pw, mn=mn, flag=flag, cp=cp)
    )


def test_the_air_packet_is_answered_9014_and_read_at_its_datatime() -> None:
    out = link().receive(AIR_2011, NOW_MS)
    assert out.replies == [ANSWER_9014]
    (report,) = out.reports
    assert (report.device, report.kind) == ("air-1", "2011 real-time data")
    (observation,) = report.observations
    assert observation.ts_ms == int(datetime(2025, 6, 18, 0, 0, tzinfo=UTC).timestamp() * 1000)
    by_metric = {m.metric: m for m in observation.measurements}
    assert (by_metric["pm25_ug_m3"].value, by_metric["pm25_ug_m3"].quality) == (35.2, Quality.GOOD)
    # SO2 is calibrating: kept, uncertain (never an alert)
    assert (by_metric["so2_mg_m3"].value, by_metric["so2_mg_m3"].quality) == (
        8.1,
        Quality.UNCERTAIN,
    )
    assert "calibration" in (by_metric["so2_mg_m3"].error or "")
    assert report.unmapped == ("a34002-Rtd", "a01001-Rtd")
    assert report.sent_ms == NOW_MS - 872  # QN 08:00:00.128 local, received 08:00:01


def test_the_water_packet_reads_period_fields() -> None:
    (report,) = link().receive(WATER_2061, NOW_MS).reports
    by_metric = {m.metric: m for m in report.observations[0].measurements}
    assert (by_metric["nh3n_mg_l"].value, by_metric["nh3n_mg_l"].quality) == (
        0.51,
        Quality.UNCERTAIN,  # flag M: maintenance
    )
    assert by_metric["flow_m3"].value == 126.40


@pytest.mark.parametrize(
    ("flag", "quality", "value"),
    [
        ("N", Quality.GOOD, 12.0),
        ("T", Quality.GOOD, 12.0),
        ("S", Quality.UNCERTAIN, 12.0),
        ("M", Quality.UNCERTAIN, 12.0),
        ("C", Quality.UNCERTAIN, 12.0),
        ("Q", Quality.UNCERTAIN, 12.0),
        ("F", Quality.BAD, None),
        ("D", Quality.BAD, None),
        ("B", Quality.BAD, None),
    ],
)
def test_flags_become_qualities(flag: str, quality: Quality, value: float | None) -> None:
    cp = f"DataTime=20250618080000;a34004-Rtd=12.0,a34004-Flag={flag}"
    (report,) = link().receive(packet(cp=cp), NOW_MS).reports
    (measurement,) = report.observations[0].measurements
    assert (measurement.quality, measurement.value) == (quality, value)
    assert report.over_limit == (1 if flag == "T" else 0)


def test_a_value_that_is_no_number_is_bad_and_named() -> None:
    cp = "DataTime=20250618080000;a34004-Rtd=abc"
    (report,) = link().receive(packet(cp=cp), NOW_MS).reports
    (measurement,) = report.observations[0].measurements
    assert measurement.quality is Quality.BAD
    assert "a34004-Rtd" in (measurement.error or "")


def test_no_answer_unless_flag_asks() -> None:
    out = link().receive(packet(flag=4, cp="DataTime=20250618080000;a34004-Rtd=1"), NOW_MS)
    assert out.replies == []
    assert len(out.reports) == 1


def test_an_unknown_mn_and_a_wrong_password_get_nothing() -> None:
    stranger = link().receive(packet(mn="5001000000000000000000FF"), NOW_MS)
    assert (stranger.replies, stranger.reports) == ([], [])
    assert [(p.kind, p.station) for p in stranger.problems] == [
        (ProblemKind.UNKNOWN_STATION, "5001000000000000000000FF")
    ]
    wrong = link().receive(packet(pw="000000"), NOW_MS)
    assert (wrong.replies, wrong.reports) == ([], [])
    assert [(p.kind, p.device) for p in wrong.problems] == [(ProblemKind.WRONG_PASSWORD, "air-1")]


def test_a_packet_without_datatime_is_malformed_and_not_answered() -> None:
    out = link().receive(packet(cp="a34004-Rtd=1"), NOW_MS)
    assert out.replies == []
    assert [(p.kind, p.device) for p in out.problems] == [(ProblemKind.MALFORMED, "air-1")]


def test_a_bad_syntax_is_malformed() -> None:
    broken = b"QN=1;ST=22;CN=2011;PW=123456;MN=" + MN.encode() + b";CP=&&a&&"
    out = link().receive(encode(broken), NOW_MS)  # its CRC is right, its CP is not
    assert [p.kind for p in out.problems] == [ProblemKind.MALFORMED]
    assert out.replies == []


def test_a_logger_asking_the_time_is_told_only_by_a_synced_clock() -> None:
    untrusted = link().receive(packet(cn="1013", flag=5), NOW_MS)
    assert [parse_segment(decode(r).segment or b"").cn for r in untrusted.replies] == ["9013"]
    trusted = link(logger(), clock_trusted=True).receive(packet(cn="1013", flag=5), NOW_MS)
    notice, request = (parse_segment(decode(r).segment or b"") for r in trusted.replies)
    assert (notice.cn, request.cn, request.st, request.mn) == ("9013", "1012", "22", MN)
    assert request.cp_value("SystemTime") == "20250618080001"  # our time, the logger's zone


def test_other_commands_are_answered_and_counted() -> None:
    out = link().receive(packet(cn="3020", flag=5), NOW_MS)
    assert [p.kind for p in out.problems] == [ProblemKind.UNSUPPORTED]
    assert len(out.replies) == 1
    assert out.reports[0].observations == ()


def test_answers_of_the_logger_are_taken_silently() -> None:
    out = link().receive(packet(cn="9012", flag=4, cp="ExeRtn=1"), NOW_MS)
    assert (out.replies, out.reports, out.problems) == ([], [], [])


def test_uploads_not_in_data_commands_are_not_readings() -> None:
    out = link(logger(data_commands=["2061"])).receive(AIR_2011, NOW_MS)
    (report,) = out.reports
    assert report.observations == ()
    assert out.replies == [ANSWER_9014]


def test_split_packets_stand_alone() -> None:
    first = build_segment(
        qn="20250618080000128", st="22", cn="2011", pw="123456", mn=MN, flag=7,
        cp="DataTime=20250618080000;a34004-Rtd=1.0",
    ).replace(b"Flag=7;", b"Flag=7;PNUM=2;PNO=1;")  # fmt: skip
    out = link().receive(encode(first), NOW_MS)
    assert out.reports[0].observations[0].measurements[0].value == 1.0
    assert len(out.replies) == 1


def test_closing_inside_a_packet_is_truncated() -> None:
    conn = link()
    conn.receive(AIR_2011[:50], NOW_MS)
    assert [p.kind for p in conn.close(NOW_MS).problems] == [ProblemKind.TRUNCATED]


def test_config_errors_name_the_device() -> None:
    with pytest.raises(ValueError, match=r"device 'air-1' \(hj212, MN 5001"):
        logger(factors=[{"factor": "a34004", "metric": "a"}, {"factor": "a34004", "metric": "b"}])
    with pytest.raises(ValueError, match="data_commands"):
        logger(data_commands=["9999"])
