"""SL651 framing and bodies: every worked frame of the shared doc byte for byte, round
trips, and junk, cut frames and wrong CRCs that never cost the next good frame."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sl651 import body as bodies
from drivers.sl651.codec import (
    EOT,
    ESC,
    ETB,
    ETX,
    SYN,
    Frame,
    crc16,
    decode,
    encode,
)
from drivers.sl651.elements import parse_element_key
from drivers.stations import ProblemKind

from .framing import take_all


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# The shared doc's examples (centre 01, station 0012345678, password 1234).
TIMED_32H = h(
    "7E7E 01 0012345678 1234 32 002B 02 0021 250618080005 F1F1 0012345678 48 F0F0 2506180800"
    " 2619 001235 2019 000105 3923 00012345 3812 1256 03 D602"
)
ACK_32H = h("7E7E 0012345678 01 1234 32 8008 02 0021 250618080007 04 7494")
ALARM_33H = h(
    "7E7E 01 0012345678 1234 33 0031 02 0022 250618081230 F1F1 0012345678 48 F0F0 2506180812"
    " 3923 00015800 4520 00000004 2019 FFFFFF 0219 FF0025 3812 1198 03 FF20"
)
KEEP_ALIVE_ASCII = b"\x0101001234567812342F0010\x020022250618081310\x03AF35"
KEEP_ALIVE_HEX = h("7E7E 01 0012345678 1234 2F 0008 02 0022 250618081310 03 67CD")


@pytest.mark.parametrize(
    ("frame", "crc"),
    [
        (TIMED_32H, 0xD602),
        (ACK_32H, 0x7494),
        (ALARM_33H, 0xFF20),
        (KEEP_ALIVE_HEX, 0x67CD),
    ],
)
def test_crc_of_every_worked_hex_frame(frame: bytes, crc: int) -> None:
    assert crc16(frame[:-2]) == crc
    assert frame[-2:] == crc.to_bytes(2, "big")  # high byte first, unlike Modbus


def test_crc_of_the_ascii_keep_alive_covers_soh_to_etx() -> None:
    assert f"{crc16(KEEP_ALIVE_ASCII[:-4]):04X}".encode() == KEEP_ALIVE_ASCII[-4:] == b"AF35"


def test_the_timed_report_decodes_byte_for_byte() -> None:
    decoded = decode(TIMED_32H)
    assert decoded.used == len(TIMED_32H)
    frame = decoded.frame
    assert frame is not None
    assert (frame.uplink, frame.centre, frame.station, frame.password) == (
        True,
        1,
        "0012345678",
        "1234",
    )
    assert (frame.function, frame.end, len(frame.body)) == (0x32, ETX, 0x2B)
    assert encode(frame) == TIMED_32H
    body = bodies.parse_hex(frame.body)
    assert (body.serial, body.sent) == (0x21, datetime(2025, 6, 18, 8, 0, 5))
    assert (body.station, body.category) == ("0012345678", 0x48)  # H: river
    (group,) = body.groups
    assert group.observed == datetime(2025, 6, 18, 8, 0)
    values = {e.label: e.value for e in group.elements}
    assert values == {"PT (26H)": 123.5, "PJ (20H)": 10.5, "Z (39H)": 12.345, "VT (38H)": 12.56}


def test_the_answer_to_the_timed_report_is_the_docs_ack() -> None:
    frame = decode(TIMED_32H).frame
    assert frame is not None
    ack = Frame(
        uplink=False,
        centre=1,
        station="0012345678",
        password="1234",
        function=0x32,
        body=h("0021 250618080007"),
        end=EOT,
    )
    assert encode(ack) == ACK_32H
    assert decode(ACK_32H).frame == ack


def test_the_alarm_report_decodes_with_missing_and_negative_values() -> None:
    frame = decode(ALARM_33H).frame
    assert frame is not None
    assert frame.function == 0x33
    (group,) = bodies.parse_hex(frame.body).groups
    z, zt, pj, temp, vt = group.elements
    assert (z.label, z.value) == ("Z (39H)", 15.8)  # the trigger comes first
    assert (zt.label, zt.raw) == ("ZT (45H)", 0b100)  # bit 2: level alarm
    assert pj.value is None
    assert pj.problem == "missing (all F)"
    assert (temp.ident, temp.value) == (0x02, -2.5)
    assert vt.value == 11.98


@pytest.mark.parametrize("frame", [KEEP_ALIVE_ASCII, KEEP_ALIVE_HEX])
def test_the_keep_alive_in_ascii_and_hex(frame: bytes) -> None:
    decoded = decode(frame)
    assert decoded.used == len(frame)
    assert decoded.frame is not None
    assert decoded.frame.function == 0x2F
    assert encode(decoded.frame) == frame
    body = decoded.frame.body
    parsed = bodies.parse_ascii(body) if decoded.frame.ascii else bodies.parse_hex(body)
    assert (parsed.serial, parsed.sent, parsed.groups) == (
        0x22,
        datetime(2025, 6, 18, 8, 13, 10),
        (),
    )


def test_an_ascii_report_body() -> None:
    body = bodies.parse_ascii(b"0021250618080005ST 0012345678 H TT 2506180800 Z 12.345 PJ M ")
    assert (body.serial, body.station, body.category) == (0x21, "0012345678", ord("H"))
    (group,) = body.groups
    assert group.observed == datetime(2025, 6, 18, 8, 0)
    z, pj = group.elements
    assert (z.ident, z.value, z.decimals) == (0x39, 12.345, 3)
    assert (pj.ident, pj.value, pj.problem) == (0x20, None, "missing (M)")


# -- junk, cut frames, wrong CRCs -----------------------------------------------------------


def frames_of(stream: bytes) -> tuple[list[Frame], list[ProblemKind]]:
    return take_all(decode, stream, "frame")


def test_garbage_between_frames_costs_no_frame() -> None:
    frames, problems = frames_of(b"\x00\xff\x7e\x01noise" + TIMED_32H + b"\r\n\x7e" + ALARM_33H)
    assert [f.function for f in frames] == [0x32, 0x33]
    assert set(problems) == {ProblemKind.GARBAGE}


def test_a_frame_cut_short_by_the_next_one_is_truncated_and_the_next_read() -> None:
    frames, problems = frames_of(TIMED_32H[:30] + ALARM_33H)
    assert [f.function for f in frames] == [0x33]
    assert problems == [ProblemKind.TRUNCATED]


def test_a_cut_frame_does_not_hold_up_a_good_one_behind_it() -> None:
    """The cut frame claims more bytes than have come: the good frame is not kept waiting."""
    frames, problems = frames_of(ALARM_33H[:20] + KEEP_ALIVE_HEX)
    assert [f.function for f in frames] == [0x2F]
    assert problems == [ProblemKind.TRUNCATED]


def test_a_wrong_crc_is_refused_and_the_next_frame_read() -> None:
    broken = TIMED_32H[:-1] + bytes([TIMED_32H[-1] ^ 0x01])
    frames, problems = frames_of(broken + KEEP_ALIVE_ASCII)
    assert [f.function for f in frames] == [0x2F]
    assert problems == [ProblemKind.CRC]
    refused = decode(broken).refused
    assert refused is not None
    assert (refused.station, refused.function) == ("0012345678", 0x32)


def test_lowercase_ascii_crc_is_accepted() -> None:
    frame = KEEP_ALIVE_ASCII[:-4] + b"af35"
    assert decode(frame).frame is not None


def test_a_length_beyond_the_bound_is_refused_without_buffering() -> None:
    huge = bytearray(TIMED_32H)
    huge[11:13] = (0x0FFF).to_bytes(2, "big")
    decoded = decode(bytes(huge[:20]), max_frame_bytes=1024)
    assert decoded.problem is not None
    assert decoded.problem.kind is ProblemKind.OVERSIZED
    assert decoded.used > 0


def test_a_begun_frame_waits_for_more() -> None:
    assert decode(TIMED_32H[:-1]).used == 0
    assert decode(b"\x7e").used == 0


# -- vendor quirks --------------------------------------------------------------------------


def report_body(*elements: bytes, extra_after_category: bytes = b"") -> bytes:
    return (
        h("0021 250618080005 F1F1 0012345678 48")
        + extra_after_category
        + h("F0F0 2506180800")
        + b"".join(elements)
    )


def test_unknown_and_extended_identifiers_are_skipped_and_the_frame_kept() -> None:
    body = report_body(h("7A 08 29"), h("FF A0 11 0288"), h("3923 00012345"))
    (group,) = bodies.parse_hex(body).groups
    signal, board, z = group.elements
    assert (signal.ident, signal.value) == (0x7A, 29)
    assert (board.ident, board.value) == (0xFFA0, 28.8)
    assert (z.ident, z.value) == (0x39, 12.345)


def test_a_zero_after_the_category_is_skipped() -> None:
    body = report_body(h("3923 00012345"), extra_after_category=b"\x00")
    assert bodies.parse_hex(body).groups[0].elements[0].value == 12.345


def test_a_negative_value_whose_sign_is_not_counted() -> None:
    body = report_body(h("0211 FF0025"), h("3812 1198"))
    (group,) = bodies.parse_hex(body, negative_counted=False).groups
    assert [e.value for e in group.elements] == [-2.5, 11.98]


def test_a_leading_aa_aa_is_a_missing_value() -> None:
    (group,) = bodies.parse_hex(report_body(h("3923 AAAA0000"))).groups
    assert group.elements[0].value is None


def test_the_definition_byte_decides_the_decimals() -> None:
    """Guangdong sends Z with 2 decimals (39 1A): the table's 3 never apply."""
    (group,) = bodies.parse_hex(report_body(h("391A 001234"))).groups
    assert group.elements[0].value == 12.34


def test_rain_and_level_series() -> None:
    drp = h("F460") + bytes([1, 2, 0xFF, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    drz = h("F5C0") + b"".join(w.to_bytes(2, "big") for w in [1200] * 11 + [0xFFFF])
    (group,) = bodies.parse_hex(report_body(drp, drz)).groups
    rain, level = group.elements
    assert rain.series[:4] == (0.1, 0.2, None, 0.4)
    assert level.series[0] == 12.0
    assert level.series[-1] is None


def test_a_body_cut_inside_an_element_does_not_parse() -> None:
    with pytest.raises(bodies.BodyError):
        bodies.parse_hex(report_body(h("3923 0001")))


@pytest.mark.parametrize(("key", "ident"), [("Z", 0x39), ("39", 0x39), ("ffa0", 0xFFA0)])
def test_element_keys(key: str, ident: int) -> None:
    assert parse_element_key(key) == ident


def test_a_bad_element_key_names_the_choices() -> None:
    with pytest.raises(ValueError, match="not a known name"):
        parse_element_key("ZZ")


# -- round trips ----------------------------------------------------------------------------

stations = st.text("0123456789ABCDEF", min_size=10, max_size=10)
passwords = st.text("0123456789ABCDEF", min_size=4, max_size=4)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    ascii_frame = draw(st.booleans())
    uplink = draw(st.booleans())
    body_bytes = draw(st.binary(max_size=200))
    body = body_bytes.hex().upper().encode() if ascii_frame else body_bytes
    packet = None
    if draw(st.booleans()):
        total = draw(st.integers(1, 0xFFF))
        packet = (total, draw(st.integers(1, total)))
    ends = [ETX, ETB] if uplink else [EOT, ESC]
    return Frame(
        uplink=uplink,
        centre=draw(st.integers(1, 255)),
        station=draw(stations),
        password=draw(passwords),
        function=draw(st.sampled_from([0x2F, 0x30, 0x32, 0x33, 0x34])),
        body=body,
        end=draw(st.sampled_from(ends)),
        ascii=ascii_frame,
        packet=packet,
    )


@given(frames())
def test_any_frame_round_trips(frame: Frame) -> None:
    wire = encode(frame)
    decoded = decode(wire)
    assert decoded.used == len(wire)
    assert decoded.frame == frame


@given(frames(), st.binary(max_size=64), st.integers(0, 200))
def test_noise_and_a_cut_frame_before_a_good_one_never_lose_it(
    frame: Frame, noise: bytes, cut: int
) -> None:
    other = encode(frame)
    stream = noise + other[: min(cut, len(other) - 1)] + encode(frame)
    found, _ = frames_of(stream)
    assert frame in found


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0x20, 0x26, 0x39, 0x38, 0x27, 0xFF10]),
            st.integers(1, 6),  # bytes
            st.integers(0, 5),  # decimals
            st.integers(-99_999, 999_999),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_bcd_elements_round_trip(elements: list[tuple[int, int, int, int]]) -> None:
    encoded: list[bytes] = []
    expected: list[float] = []
    for ident, count, decimals, raw in elements:
        width = 2 * (count - 1) if raw < 0 else 2 * count
        if len(str(abs(raw))) > width:
            continue
        value = raw / 10**decimals
        encoded.append(bodies.encode_element(ident, count << 3 | decimals, value))
        expected.append(value)
    body = bodies.encode_hex(
        0x21, datetime(2025, 6, 18, 8, 0, 5), "0012345678", 0x48,
        [(datetime(2025, 6, 18, 8, 0), encoded)],
    )  # fmt: skip
    (group,) = bodies.parse_hex(body).groups
    assert [e.value for e in group.elements] == pytest.approx(expected)


def test_an_m3_frame_carries_its_packet_field() -> None:
    frame = Frame(True, 1, "0012345678", "1234", 0x36, b"\x01\x02", ETB, packet=(3, 2))
    wire = encode(frame)
    assert wire[13] == SYN
    assert wire[14:17] == h("003 002")
    assert decode(wire).frame == frame
