"""The centre side of an SL651 link, fed bytes: matching, answers, M3, values to metrics."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from drivers.registry import parse_device_config
from drivers.sl651 import Sl651StationConfig, link_factory
from drivers.sl651 import body as bodies
from drivers.sl651.codec import ACK, EOT, ESC, ETB, ETX, NAK, Frame, decode, encode
from drivers.sl651.driver import Sl651Link
from drivers.stations import LinkOptions, ProblemKind
from wire import Quality

from .test_sl651_codec import ACK_32H, ALARM_33H, KEEP_ALIVE_ASCII, KEEP_ALIVE_HEX, TIMED_32H, h

# 2025-06-18 08:00:07 in the station's zone (UTC+8): the doc's ACK carries this time.
NOW_MS = int(datetime(2025, 6, 18, 0, 0, 7, tzinfo=UTC).timestamp() * 1000)


def station(**overrides: Any) -> Sl651StationConfig:
    raw: dict[str, Any] = {
        "name": "river-1",
        "driver": "sl651",
        "port": "sl651-tcp",
        "station": "0012345678",
        "password": "1234",
        "elements": [
            {"element": "Z", "metric": "level_m", "unit": "m"},
            {"element": "PT", "metric": "rain_total_mm", "counter": True},
            {"element": "PJ", "metric": "rain_mm"},
            {"element": "02", "metric": "air_c"},
            {"element": "DRZ1", "metric": "level_5min_m"},
        ],
    }
    raw.update(overrides)
    config = parse_device_config(raw)
    assert isinstance(config, Sl651StationConfig)
    return config


def link(*configs: Sl651StationConfig, **options: Any) -> Sl651Link:
    made = link_factory(list(configs) or [station()], LinkOptions(**options))()
    assert isinstance(made, Sl651Link)
    return made


def test_a_timed_report_is_answered_with_the_docs_ack_and_read_at_its_time() -> None:
    out = link().receive(TIMED_32H, NOW_MS)
    assert out.replies == [ACK_32H]
    assert out.problems == []
    (report,) = out.reports
    assert (report.device, report.station, report.kind) == ("river-1", "0012345678", "32H timed")
    (observation,) = report.observations
    # 08:00 in the station's zone is 00:00 UTC: the observation time, not the arrival
    assert observation.ts_ms == int(datetime(2025, 6, 18, 0, 0, tzinfo=UTC).timestamp() * 1000)
    values = {m.metric: m.value for m in observation.measurements}
    assert values == {"rain_total_mm": 123.5, "rain_mm": 10.5, "level_m": 12.345}
    assert report.unmapped == ("VT (38H)",)
    assert report.sent_ms is not None
    assert report.sent_ms - NOW_MS == -2000  # sent 08:00:05, received 08:00:07


def test_the_counter_carries_its_raw_count_and_modulus() -> None:
    (report,) = link().receive(TIMED_32H, NOW_MS).reports
    pt = next(m for m in report.observations[0].measurements if m.metric == "rain_total_mm")
    assert pt.counter is not None
    assert (pt.counter.raw, pt.counter.modulus, pt.counter.scale) == (1235, 10**6, 0.1)


def test_an_alarm_names_its_trigger_and_its_missing_and_negative_values() -> None:
    out = link().receive(ALARM_33H, NOW_MS)
    (report,) = out.reports
    assert report.alarm is not None
    assert (report.alarm.metric, report.alarm.element, report.alarm.value) == (
        "level_m",
        "Z (39H)",
        15.8,
    )
    by_metric = {m.metric: m for m in report.observations[0].measurements}
    assert by_metric["air_c"].value == -2.5
    assert by_metric["rain_mm"].quality is Quality.BAD
    assert by_metric["rain_mm"].value is None
    assert "missing" in (by_metric["rain_mm"].error or "")
    assert "'rain_mm'" in (by_metric["rain_mm"].error or "")
    assert len(out.replies) == 1


@pytest.mark.parametrize("frame", [KEEP_ALIVE_HEX, KEEP_ALIVE_ASCII])
def test_a_keep_alive_is_heard_and_never_answered(frame: bytes) -> None:
    out = link().receive(frame, NOW_MS)
    assert out.replies == []
    (report,) = out.reports
    assert report.kind == "2FH keep-alive"
    assert report.observations == ()


def test_keep_online_answers_esc() -> None:
    (reply,) = link(station(), keep_online=True).receive(TIMED_32H, NOW_MS).replies
    answer = decode(reply).frame
    assert answer is not None
    assert answer.end == ESC


def test_an_ascii_report_is_answered_in_ascii() -> None:
    body = b"0021250618080005ST 0012345678 H TT 2506180800 Z 12.345 "
    frame = Frame(True, 1, "0012345678", "1234", 0x32, body, ETX, ascii=True)
    out = link().receive(encode(frame), NOW_MS)
    (reply,) = out.replies
    answer = decode(reply).frame
    assert answer is not None
    assert (answer.ascii, answer.uplink, answer.end, answer.body) == (
        True,
        False,
        EOT,
        b"0021250618080007",
    )
    assert out.reports[0].observations[0].measurements[0].value == 12.345


def test_etb_is_answered_ack() -> None:
    frame = decode(TIMED_32H).frame
    assert frame is not None
    again = Frame(True, 1, "0012345678", "1234", 0x32, frame.body, ETB)
    (reply,) = link().receive(encode(again), NOW_MS).replies
    answered = decode(reply).frame
    assert answered is not None
    assert answered.end == ACK


def test_an_m1_station_gets_no_answer() -> None:
    out = link(station(acknowledge=False)).receive(TIMED_32H, NOW_MS)
    assert out.replies == []
    assert len(out.reports) == 1


def test_an_unknown_station_and_a_wrong_password_get_nothing() -> None:
    other = station(station="0012345679", name="other")
    out = link(other).receive(TIMED_32H, NOW_MS)
    assert (out.replies, out.reports) == ([], [])
    assert [p.kind for p in out.problems] == [ProblemKind.UNKNOWN_STATION]
    assert out.problems[0].station == "0012345678"
    wrong = link(station(password="4321")).receive(TIMED_32H, NOW_MS)
    assert (wrong.replies, wrong.reports) == ([], [])
    assert [(p.kind, p.device) for p in wrong.problems] == [(ProblemKind.WRONG_PASSWORD, "river-1")]


def test_a_wrong_crc_is_counted_against_its_station_and_never_answered() -> None:
    broken = TIMED_32H[:-1] + b"\x00"
    out = link().receive(broken, NOW_MS)
    assert (out.replies, out.reports) == ([], [])
    assert [(p.kind, p.device) for p in out.problems] == [(ProblemKind.CRC, "river-1")]


def test_bytes_split_anywhere_make_the_same_reports() -> None:
    stream = b"\xffjunk" + TIMED_32H + ALARM_33H + KEEP_ALIVE_ASCII
    whole = link().receive(stream, NOW_MS)
    split = link()
    replies: list[bytes] = []
    kinds: list[str] = []
    for i in range(0, len(stream), 7):
        out = split.receive(stream[i : i + 7], NOW_MS)
        replies += out.replies
        kinds += [r.kind for r in out.reports]
    assert replies == whole.replies
    assert kinds == [r.kind for r in whole.reports]


def test_closing_inside_a_frame_is_a_truncated_frame() -> None:
    conn = link()
    assert conn.receive(TIMED_32H[:20], NOW_MS).problems == []
    assert conn.buffered_bytes == 20
    assert [p.kind for p in conn.close(NOW_MS).problems] == [ProblemKind.TRUNCATED]


def test_a_level_meter_fault_makes_the_level_bad() -> None:
    body = bodies.encode_hex(
        0x30, datetime(2025, 6, 18, 8, 0, 5), "0012345678", 0x48,
        [(datetime(2025, 6, 18, 8, 0), [h("3923 00012345"), h("4520 00000040")])],
    )  # fmt: skip
    frame = Frame(True, 1, "0012345678", "1234", 0x32, body, ETX)
    (report,) = link().receive(encode(frame), NOW_MS).reports
    (level,) = report.observations[0].measurements
    assert level.quality is Quality.BAD
    assert "level-meter fault" in (level.error or "")


@pytest.mark.parametrize(("function", "first_offset_min"), [(0x34, 0), (0x32, -55)])
def test_a_level_series_gives_twelve_readings_five_minutes_apart(
    function: int, first_offset_min: int
) -> None:
    drz = h("F5C0") + b"".join((1200 + i).to_bytes(2, "big") for i in range(12))
    body = bodies.encode_hex(
        0x30, datetime(2025, 6, 18, 9, 0, 5), "0012345678", 0x48,
        [(datetime(2025, 6, 18, 9, 0), [drz])],
    )  # fmt: skip
    frame = Frame(True, 1, "0012345678", "1234", function, body, ETX)
    (report,) = link().receive(encode(frame), NOW_MS).reports
    assert len(report.observations) == 12
    base = int(datetime(2025, 6, 18, 1, 0, tzinfo=UTC).timestamp() * 1000)
    assert report.observations[0].ts_ms == base + first_offset_min * 60_000
    assert [o.ts_ms - report.observations[0].ts_ms for o in report.observations][:3] == [
        0,
        300_000,
        600_000,
    ]
    assert report.observations[0].measurements[0].value == 12.0


# -- M3 -------------------------------------------------------------------------------------


def m3_packets(body: bytes, size: int, function: int = 0x32) -> list[Frame]:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    total = len(chunks)
    return [
        Frame(
            True,
            1,
            "0012345678",
            "1234",
            function,
            chunk,
            ETX if n == total else ETB,
            packet=(total, n),
        )
        for n, chunk in enumerate(chunks, start=1)
    ]


def test_an_m3_message_is_reassembled_and_answered_once_at_the_end() -> None:
    frame = decode(TIMED_32H).frame
    assert frame is not None
    packets = m3_packets(frame.body, 10)
    conn = link()
    outs = [conn.receive(encode(p), NOW_MS) for p in packets]
    assert all(o.replies == [] for o in outs[:-1])
    (reply,) = outs[-1].replies
    answer = decode(reply).frame
    assert answer is not None
    assert (answer.end, answer.packet) == (EOT, (len(packets), len(packets)))
    (report,) = outs[-1].reports
    assert {m.metric for m in report.observations[0].measurements} == {
        "rain_total_mm",
        "rain_mm",
        "level_m",
    }


def test_an_m3_packet_refused_is_naked_and_resent() -> None:
    frame = decode(TIMED_32H).frame
    assert frame is not None
    packets = m3_packets(frame.body, 10)
    conn = link()
    for packet in packets[:-1]:
        wire = encode(packet)
        if packet.packet == (len(packets), 2):
            wire = wire[:-1] + bytes([wire[-1] ^ 0xFF])  # packet 2 arrives with a bad CRC
        conn.receive(wire, NOW_MS)
    (nak,) = conn.receive(encode(packets[-1]), NOW_MS).replies
    answer = decode(nak).frame
    assert answer is not None
    assert (answer.end, answer.packet) == (NAK, (len(packets), 2))
    out = conn.receive(encode(replace(packets[1], end=ETX)), NOW_MS)  # resent, ending ETX
    (reply,) = out.replies
    done = decode(reply).frame
    assert done is not None
    assert done.end == EOT
    assert len(out.reports) == 1


def test_an_m3_message_beyond_its_bound_is_dropped() -> None:
    packets = m3_packets(b"\x00" * 300, 100, function=0x36)
    conn = link(station(), max_message_bytes=150)
    problems = [p.kind for packet in packets for p in conn.receive(encode(packet), NOW_MS).problems]
    assert ProblemKind.OVERSIZED in problems


def test_two_stations_with_one_address_are_a_config_error() -> None:
    with pytest.raises(ValueError, match="both are station 0012345678"):
        link_factory([station(), station(name="twin")], LinkOptions())


def test_config_errors_name_the_device_and_the_key() -> None:
    with pytest.raises(ValueError, match=r"device 'river-1' \(sl651, station 0012345678\)"):
        station(elements=[{"element": "Z", "metric": "a"}, {"element": "39", "metric": "b"}])
    with pytest.raises(ValueError, match="not a known name"):
        station(elements=[{"element": "QQ", "metric": "a"}])
    with pytest.raises(ValueError, match="station"):
        station(station="12345")
