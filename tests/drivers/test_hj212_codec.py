"""HJ212 packets: every worked packet of the shared doc byte for byte, the vendor quirks,
round trips, and junk, cut packets and wrong CRCs that never cost the next good packet."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.hj212.codec import (
    Segment,
    SegmentError,
    build_segment,
    crc,
    decode,
    encode,
    parse_segment,
)
from drivers.stations import ProblemKind

from .framing import take_all

AIR_2011 = (
    b"##0229QN=20250618080000128;ST=22;CN=2011;PW=123456;MN=5001000000000000000000A1;Flag=5;"
    b"CP=&&DataTime=20250618080000;a34004-Rtd=35.2,a34004-Flag=N;a34002-Rtd=61.0,"
    b"a34002-Flag=N;a21026-Rtd=8.1,a21026-Flag=C;a01001-Rtd=26.4,a01001-Flag=N&&B381\r\n"
)
ANSWER_9014 = (
    b"##0087QN=20250618080000128;ST=91;CN=9014;PW=123456;MN=5001000000000000000000A1;Flag=4;"
    b"CP=&&&&BDC1\r\n"
)
WATER_2061 = (
    b"##0348QN=20250618090000456;ST=32;CN=2061;PW=123456;MN=5001000000000000000000A1;Flag=5;"
    b"CP=&&DataTime=20250618080000;w00000-Cou=126.40,w00000-Min=30.10,w00000-Avg=35.11,"
    b"w00000-Max=40.02,w00000-Flag=N;w01018-Cou=2.9,w01018-Min=21.7,w01018-Avg=23.0,"
    b"w01018-Max=24.8,w01018-Flag=N;w21003-Cou=0.06,w21003-Min=0.45,w21003-Avg=0.51,"
    b"w21003-Max=0.58,w21003-Flag=M&&5880\r\n"
)
WORKED = [(AIR_2011, 229, 0xB381), (ANSWER_9014, 87, 0xBDC1), (WATER_2061, 348, 0x5880)]


@pytest.mark.parametrize(("packet", "length", "check"), WORKED)
def test_every_worked_packet_byte_for_byte(packet: bytes, length: int, check: int) -> None:
    segment = packet[6:-6]
    assert len(segment) == length == int(packet[2:6])
    assert crc(segment) == check
    assert encode(segment) == packet
    decoded = decode(packet)
    assert (decoded.used, decoded.segment, decoded.problem) == (len(packet), segment, None)


def test_the_crc_is_not_modbus() -> None:
    """The standard's text says 1C08 for its example; its packet's 1C80 is right."""
    segment = (
        b"QN=20250618080000128;ST=91;CN=9014;PW=123456;MN=5001000000000000000000A1;Flag=4;CP=&&&&"
    )
    reg = 0xFFFF
    for byte in segment:  # Modbus XORs the byte into the whole register
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    assert reg != crc(segment) == 0xBDC1


def test_the_air_packet_segment() -> None:
    segment = parse_segment(AIR_2011[6:-6])
    assert (segment.qn, segment.st, segment.cn, segment.pw) == (
        "20250618080000128",
        "22",
        "2011",
        "123456",
    )
    assert (segment.mn, segment.flag, segment.answer_wanted) == (
        "5001000000000000000000A1",
        5,
        True,
    )
    assert segment.cp_value("DataTime") == "20250618080000"
    assert segment.cp_value("a21026-Flag") == "C"
    assert len(segment.cp) == 9


def test_the_answer_is_the_docs_9014() -> None:
    upload = parse_segment(AIR_2011[6:-6])
    reply = build_segment(qn=upload.qn, st="91", cn="9014", pw=upload.pw, mn=upload.mn, flag=4)
    assert encode(reply) == ANSWER_9014


# -- quirks ---------------------------------------------------------------------------------


def test_lowercase_crc_is_accepted() -> None:
    decoded = decode(AIR_2011.replace(b"B381", b"b381"))
    assert decoded.segment is not None


@pytest.mark.parametrize("ending", [b"", b"\r", b"\n"])
def test_a_missing_cr_or_lf_costs_nothing(ending: bytes) -> None:
    stream = AIR_2011[:-2] + ending + WATER_2061
    segments, problems = packets_of(stream)
    assert len(segments) == 2
    assert problems == []


@pytest.mark.parametrize("delta", [6, -6, 100])
def test_a_wrong_length_field_is_found_by_its_terminator(delta: int) -> None:
    wrong = b"##%04d" % (229 + delta) + AIR_2011[6:]
    decoded = decode(wrong + ANSWER_9014)
    assert decoded.segment == AIR_2011[6:-6]
    assert decoded.quirk is not None
    assert "229" in decoded.quirk


def test_heartbeat_lines_are_skipped_silently() -> None:
    segments, problems = packets_of(b"HJ 212-2017[1]\r\n" + AIR_2011 + b"HJ 212-2017[2]\r\n")
    assert len(segments) == 1
    assert problems == []


def test_a_heartbeat_line_still_arriving_waits() -> None:
    assert decode(b"HJ 212-20").used == 0


def test_non_ascii_bytes_in_cp_are_checked_as_raw_bytes() -> None:
    segment = build_segment(
        qn="20250618080000128", st="22", cn="2011", pw="123456",
        mn="5001000000000000000000A1", flag=4,
        cp="DataTime=20250618080000;a99999-Info=\u6c34\u8d28",
    )  # fmt: skip
    decoded = decode(encode(segment))
    assert decoded.segment == segment
    assert parse_segment(segment).cp_value("a99999-Info") == "\u6c34\u8d28"


def test_a_crc_bypass_value_is_just_a_wrong_crc() -> None:
    decoded = decode(AIR_2011.replace(b"B381", b"A55A"))
    assert decoded.problem is not None
    assert decoded.problem.kind is ProblemKind.CRC


# -- junk, cut packets, bounds --------------------------------------------------------------


def packets_of(stream: bytes) -> tuple[list[bytes], list[ProblemKind]]:
    return take_all(decode, stream, "segment")


def test_garbage_between_packets() -> None:
    segments, problems = packets_of(b"\x00\xffjunk#" + AIR_2011 + b"more junk" + WATER_2061)
    assert len(segments) == 2
    assert set(problems) == {ProblemKind.GARBAGE}


def test_a_packet_cut_short_by_the_next_is_truncated_and_the_next_read() -> None:
    segments, problems = packets_of(AIR_2011[:100] + WATER_2061)
    assert segments == [WATER_2061[6:-6]]
    assert problems == [ProblemKind.TRUNCATED]


def test_a_wrong_crc_is_refused_and_the_next_read() -> None:
    segments, problems = packets_of(AIR_2011.replace(b"B381", b"B382") + WATER_2061)
    assert segments == [WATER_2061[6:-6]]
    assert problems == [ProblemKind.CRC]


def test_a_length_beyond_the_bound_is_refused_unbuffered() -> None:
    decoded = decode(b"##9999QN=1", max_segment_bytes=1024)
    assert decoded.problem is not None
    assert decoded.problem.kind is ProblemKind.OVERSIZED
    assert decoded.used == 2


def test_hash_signs_without_digits_are_garbage() -> None:
    segments, problems = packets_of(b"##ab" + AIR_2011)
    assert len(segments) == 1
    assert set(problems) == {ProblemKind.GARBAGE}


@pytest.mark.parametrize(
    "segment",
    [
        b"QN=1;ST=22;CN=2011;PW=1;MN=2;Flag=5;CP=&&DataTime=1",  # no closing &&
        b"ST=22;CN=2011;PW=1;Flag=5;CP=&&&&",  # no MN
        b"QN=1;ST=22;CN=20x1;PW=1;MN=2;CP=&&&&",  # CN not a number
        b"QN=1;ST=22;CN=2011;PW=1;MN=2;Bogus=1;CP=&&&&",  # an unknown field
        b"QN=1;ST=22;CN=2011;PW=1;MN=2;CP=&&a01001-Rtd&&",  # no '=' in CP
        b"QN=1;ST=22;CN=2011;PW=1;MN=2CP=&&&&",  # no ';' before CP
    ],
)
def test_segments_with_wrong_syntax_are_refused(segment: bytes) -> None:
    with pytest.raises(SegmentError):
        parse_segment(segment)


# -- round trips ----------------------------------------------------------------------------

codes = st.text("abwABW0123456789", min_size=6, max_size=6)
numbers = st.decimals(min_value=-10_000, max_value=10_000, places=2).map(str)


@st.composite
def segments(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    values = {f"{c}-Rtd": draw(numbers) for c in draw(st.lists(codes, max_size=10, unique=True))}
    cp = ";".join(["DataTime=20250618080000", *(f"{k}={v}" for k, v in values.items())])
    segment = build_segment(
        qn="20250618080000128",
        st=draw(st.sampled_from(["21", "22", "32"])),
        cn=draw(st.sampled_from(["2011", "2051", "2061"])),
        pw=draw(st.text("0123456789", min_size=6, max_size=6)),
        mn=draw(st.text("0123456789ABCDEF", min_size=24, max_size=24)),
        flag=draw(st.sampled_from([4, 5, 7])),
        cp=cp,
    )
    return segment, values


@given(segments())
def test_any_segment_round_trips(drawn: tuple[bytes, dict[str, str]]) -> None:
    segment, values = drawn
    decoded = decode(encode(segment))
    assert decoded.segment == segment
    parsed: Segment = parse_segment(segment)
    assert {k: v for k, v in parsed.cp if k != "DataTime"} == values


@given(segments(), st.binary(max_size=64), st.integers(0, 400))
def test_noise_and_a_cut_packet_never_lose_the_next(
    drawn: tuple[bytes, dict[str, str]], noise: bytes, cut: int
) -> None:
    segment, _ = drawn
    packet = encode(segment)
    found, _ = packets_of(noise + packet[: min(cut, len(packet) - 1)] + packet)
    assert segment in found
