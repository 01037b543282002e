"""The sentence framer: golden checksums, and junk that never costs the next good sentence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.serial_line.codec import (
    KeyValueFramer,
    Sentence,
    SentenceFramer,
    checksum,
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
