"""The framers: golden checksums, and junk that never costs the next good sentence or frame."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.serial_line.codec import (
    ETB,
    FRAME_END,
    STX,
    FramedFramer,
    KeyValueFramer,
    Sentence,
    SentenceFramer,
    checksum,
    enq_request,
    frame_angles,
    frame_checksum,
    frame_sentence,
)

GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,", 0x47),
        (b"GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W", 0x6A),
        (b"POLL,1", 0x02),
        (b"GAS,1,12.5,0", 0x60),
        (b"", 0x00),
    ],
)
def test_checksum_golden_vectors(body: bytes, expected: int) -> None:
    assert checksum(body) == expected


def test_frame_sentence() -> None:
    assert frame_sentence("POLL,1") == b"$POLL,1*02\r\n"
    assert frame_sentence("GAS,1,12.5,0") == b"$GAS,1,12.5,0*60\r\n"


def test_classic_sentences_frame() -> None:
    framer = SentenceFramer()
    gga, rmc = framer.feed(GGA + RMC)
    assert gga.type == "GPGGA"
    assert gga.fields[:3] == ("123519", "4807.038", "N")
    assert len(gga.fields) == 14  # the two empty fields at the end are kept
    assert rmc.type == "GPRMC"
    assert framer.stats.sentences == 2


def test_lowercase_checksum_and_bare_newline_are_accepted() -> None:
    assert (
        SentenceFramer()
        .feed(
            b"$GAS,1,12.5,0*60\n$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6a\r\n"
        )[1]
        .type
        == "GPRMC"
    )


def test_partial_lines_carry_over_between_feeds() -> None:
    framer = SentenceFramer()
    data = frame_sentence("GAS,1,12.5,0")
    seen: list[Sentence] = []
    for byte in data:
        seen += framer.feed(bytes([byte]))
    assert seen == [Sentence("GAS", ("1", "12.5", "0"))]


def test_noise_bad_checksums_and_cut_short_sentences_are_counted() -> None:
    framer = SentenceFramer()
    good = frame_sentence("GAS,1,12.5,0")
    stream = (
        b"\x00\xffnoise"  # 7 noise bytes before any sentence
        + b"$GAS,1,12.5,0*61\r\n"  # wrong checksum
        + b"$GAS,1,12.5,0\r\n"  # no checksum at all
        + b"$GAS,1,1"  # cut short by the next "$"
        + good
    )
    assert framer.feed(stream) == [Sentence("GAS", ("1", "12.5", "0"))]
    stats = framer.stats
    assert (stats.noise_bytes, stats.bad_checksums, stats.cut_short, stats.sentences) == (
        7,
        2,
        1,
        1,
    )


def test_overlong_line_is_dropped_and_the_next_sentence_read() -> None:
    framer = SentenceFramer(max_length=32)
    stream = b"$" + b"A" * 100 + b"\r\n" + frame_sentence("GAS,1,12.5,0")
    assert framer.feed(stream) == [Sentence("GAS", ("1", "12.5", "0"))]
    assert framer.stats.overlong == 1
    assert framer.stats.noise_bytes == 100 - 33  # past the 33rd byte: the rest is noise


@given(noise=st.binary(max_size=400), split=st.integers(0, 500))
def test_any_noise_then_a_good_sentence_reads_it(noise: bytes, split: int) -> None:
    framer = SentenceFramer()
    good = frame_sentence("SMK,3,0,0.10")
    stream = noise + b"\r\n" + good
    cut = split % (len(stream) + 1)
    sentences = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
    assert sentences[-1] == Sentence("SMK", ("3", "0", "0.10"))


def test_key_value_lines() -> None:
    framer = KeyValueFramer()
    assert framer.feed(b"X=+00.430\r\nY=-00.084\r\nbad line\r\nZ=\r\n") == [
        Sentence("X", ("+00.430",)),
        Sentence("Y", ("-00.084",)),
    ]
    assert framer.stats.noise_bytes == len(b"bad line") + len(b"Z=")
    long = KeyValueFramer(max_length=16)
    assert long.feed(b"X=" + b"1" * 50 + b"\r\nY=2\r\n") == [Sentence("Y", ("2",))]
    assert long.stats.overlong == 1


# -- framed inclinometer frames: STX text ETB CS $ --------------------------------------

TILT = Sentence("", ("+00.430", "-00.084"))


def framed(text: bytes) -> bytes:
    """Any text as a frame, built here by hand (not with the code under test)."""
    check = 0
    for byte in text:
        check ^= byte
    return b"\x02" + text + b"\x17" + bytes([check]) + b"$"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"+00.430 -00.084", 0x2D),
        (b"+0.000  -0.004", STX),  # checksum bytes that look like framing bytes
        (b"+0.00 -0.001", ETB),
        (b"+0.000 -0.002", FRAME_END),
        (b"", 0x00),
    ],
)
def test_frame_checksum_golden_vectors(text: bytes, expected: int) -> None:
    assert frame_checksum(text) == expected


def test_frame_angles_and_enq_request_on_the_wire() -> None:
    assert frame_angles("+00.430", "-00.084") == b"\x02+00.430 -00.084\x17\x2d$"
    assert frame_angles("+00.430", "-00.084") == framed(b"+00.430 -00.084")
    assert enq_request(0) == b"\xb0\x05"
    assert enq_request(3) == b"\xb3\x05"
    assert enq_request(79) == b"\xff\x05"
    with pytest.raises(ValueError, match="ENQ id 80 is not 0-79"):
        enq_request(80)


def test_frames_read_whole_and_byte_by_byte() -> None:
    framer = FramedFramer()
    frame = frame_angles("+00.430", "-00.084")
    assert framer.feed(frame + b"\r\n" + frame) == [TILT, TILT]
    seen: list[Sentence] = []
    for byte in frame:
        seen += framer.feed(bytes([byte]))
    assert seen == [TILT]
    assert framer.stats.sentences == 3
    assert framer.stats.noise_bytes == 0  # CRLF between frames is not noise


@pytest.mark.parametrize("text", [b"+0.000  -0.004", b"+0.00 -0.001", b"+0.000 -0.002"])
def test_a_checksum_equal_to_stx_etb_or_dollar_costs_nothing(text: bytes) -> None:
    x, y = text.decode().split()
    frame = framed(text)
    assert frame[-2] in (STX, ETB, FRAME_END)
    framer = FramedFramer()
    good = frame_angles("+00.430", "-00.084")
    assert framer.feed(frame + frame + good) == [Sentence("", (x, y))] * 2 + [TILT]
    for split in range(len(frame) + 1):  # any split of the frame, the checksum included
        framer = FramedFramer()
        assert framer.feed(frame[:split]) + framer.feed(frame[split:] + good) == [
            Sentence("", (x, y)),
            TILT,
        ]
        assert (framer.stats.cut_short, framer.stats.bad_checksums) == (0, 0)


def test_noise_wrong_checksums_and_cut_frames_are_counted() -> None:
    framer = FramedFramer()
    good = frame_angles("+00.430", "-00.084")
    wrong = good[:-2] + bytes([good[-2] ^ 0x5A]) + b"$"
    stream = (
        b"\x00\xffnoise"  # 7 noise bytes before any frame
        + wrong  # wrong checksum
        + good[:9]  # cut short by the next STX
        + good[:-2]  # cut after ETB: the next STX sits where the checksum would
        + good[:-1]  # cut before "$": the checksum byte, then the next STX
        + good
    )
    assert framer.feed(stream) == [TILT]
    stats = framer.stats
    assert (stats.noise_bytes, stats.bad_checksums, stats.cut_short, stats.sentences) == (
        7 + 1,  # ...and the orphaned checksum byte
        1,
        3,
        1,
    )


def test_a_noise_byte_inside_a_frame_breaks_it_and_the_next_reads() -> None:
    framer = FramedFramer()
    good = frame_angles("+00.430", "-00.084")
    assert framer.feed(good[:5] + b"\xfe" + good[5:] + good) == [TILT]
    assert framer.stats.cut_short == 1
    assert framer.stats.noise_bytes == len(good[5:]) + 1  # the rest of the broken frame


def test_overlong_frame_is_dropped_and_the_next_read() -> None:
    framer = FramedFramer(max_length=16)
    long = bytes([STX]) + b"1" * 100 + bytes([ETB, 0x31]) + b"$"
    assert framer.feed(long + frame_angles("+00.430", "-00.084")) == [TILT]
    assert framer.stats.overlong == 1
    assert framer.stats.sentences == 1
    assert framer.stats.noise_bytes == 100 - 16 + 3  # the rest of the text, ETB, CS, $


def test_a_good_frame_with_odd_text_is_still_a_frame() -> None:
    assert FramedFramer().feed(framed(b"  +1.5")) == [
        Sentence("", ("+1.5",))
    ]  # Y missing: the driver says


@given(noise=st.binary(max_size=400), split=st.integers(0, 500))
def test_any_noise_then_a_good_frame_reads_it(noise: bytes, split: int) -> None:
    framer = FramedFramer()
    stream = noise + frame_angles("+00.430", "-00.084")
    cut = split % (len(stream) + 1)
    frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
    assert frames[-1] == TILT


def test_the_readme_worked_frame_is_right() -> None:
    readme = (Path(__file__).parents[2] / "drivers" / "serial_line" / "README.md").read_text()
    wire = frame_angles("+00.430", "-00.084").hex(" ").upper()
    assert wire == "02 2B 30 30 2E 34 33 30 20 2D 30 30 2E 30 38 34 17 2D 24"
    assert f"`{wire}`" in readme
    assert "For `+00.430 -00.084` CS is 0x2D" in readme
