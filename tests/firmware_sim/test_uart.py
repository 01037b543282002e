"""The simulator's model of a mismatched line (firmware_sim.uart), as pure functions."""

from __future__ import annotations

import os
import termios
import tty

import pytest
import serial

from firmware_sim.uart import (
    Framing,
    MasterFraming,
    Mismatch,
    MismatchCounts,
    as_the_master_reads,
    check_settings,
    from_termios,
    judge,
    read_pty_framing,
)

DEVICE_8N1 = Framing(9600, "N", 1, 8)


def master(
    baud: int = 9600, parity: str = "N", stop_bits: float = 1, data_bits: int = 8
) -> MasterFraming:
    return MasterFraming.exactly(baud, parity, stop_bits, data_bits, source="rfc2217")


@pytest.mark.parametrize(
    ("the_master", "device", "expected"),
    [
        (master(), DEVICE_8N1, Mismatch.NONE),
        (master(baud=19200), DEVICE_8N1, Mismatch.BAUD),
        (master(parity="E"), DEVICE_8N1, Mismatch.PARITY),
        (master(), Framing(9600, "E"), Mismatch.PARITY),
        (master(parity="O"), Framing(9600, "E"), Mismatch.PARITY),
        (master(data_bits=7, parity="E"), Framing(9600, "E"), Mismatch.DATA_BITS),
        (master(stop_bits=1), Framing(9600, "N", 2), Mismatch.STOP_BITS),
        (master(stop_bits=2), DEVICE_8N1, Mismatch.GARBLED_ANSWER),
        (master(stop_bits=1.5), DEVICE_8N1, Mismatch.GARBLED_ANSWER),
        (master(parity="E", stop_bits=2), Framing(9600, "E", 2), Mismatch.NONE),
        (master(baud=19200, parity="E"), DEVICE_8N1, Mismatch.BAUD),  # the baud shows first
    ],
)
def test_judge(the_master: MasterFraming, device: Framing, expected: Mismatch) -> None:
    assert judge(the_master, device) is expected


def test_only_a_wrong_answer_framing_lets_the_device_speak() -> None:
    speaking = [m for m in Mismatch if not m.silences_the_device]
    assert speaking == [Mismatch.NONE, Mismatch.GARBLED_ANSWER]


def test_nothing_known_of_the_master_is_taken_as_right() -> None:
    assert judge(None, DEVICE_8N1) is Mismatch.NONE
    unknown = MasterFraming(None, frozenset({"N", "E"}), None, None, source="pty")
    assert judge(unknown, Framing(115200, "E", 2, 7)) is Mismatch.NONE


def test_what_the_master_reads() -> None:
    answer = bytes.fromhex("01 03 02 01 02 38 15")
    assert as_the_master_reads(answer, Mismatch.NONE) == answer
    assert as_the_master_reads(answer, Mismatch.STOP_BITS) == answer  # extra stop bit: idle
    # Each byte followed at once by another is a framing error (0x00); the last is read.
    assert as_the_master_reads(answer, Mismatch.GARBLED_ANSWER) == bytes(6) + b"\x15"
    assert as_the_master_reads(answer, Mismatch.PARITY) == bytes(7)
    assert as_the_master_reads(answer, Mismatch.BAUD) == bytes(7)
    assert as_the_master_reads(b"", Mismatch.BAUD) == b""


def test_counts_by_cause() -> None:
    counts = MismatchCounts()
    for mismatch in (Mismatch.PARITY, Mismatch.PARITY, Mismatch.NONE, Mismatch.GARBLED_ANSWER):
        counts.count(mismatch)
    assert (counts.wrong_parity, counts.garbled_answers, counts.wrong_baud) == (2, 1, 0)


def test_what_a_pty_keeps_of_the_settings() -> None:
    """Through a real pty and pyserial: baud, stop bits and odd parity survive; even parity
    is dropped by the kernel, so it reads as none-or-even."""
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(slave_fd)
        with serial.Serial(os.ttyname(slave_fd), 19200, parity="E", stopbits=2) as port:
            seen = read_pty_framing(master_fd)
            assert seen == MasterFraming(19200, frozenset({"N", "E"}), 2, None, source="pty")
            port.parity = "O"
            port.stopbits = 1
            port.baudrate = 9600
            assert read_pty_framing(master_fd) == MasterFraming(
                9600, frozenset({"O"}), 1, None, source="pty"
            )
            port.parity = "M"
            assert (read_pty_framing(master_fd) or master()).parities == {"M"}
            port.parity = "S"
            assert (read_pty_framing(master_fd) or master()).parities == {"S"}
    finally:
        os.close(master_fd)
        os.close(slave_fd)
    assert read_pty_framing(master_fd) is None  # closed: nothing known


def test_a_speed_termios_does_not_name_is_unknown() -> None:
    assert from_termios(termios.CS8, 0o17777).baud is None


def test_settings_a_uart_does_not_have_are_refused() -> None:
    check_settings("bus 'b'", parity="E", stopbits=1.5, bytesize=7)
    with pytest.raises(ValueError, match="bus 'b': parity 'X'"):
        check_settings("bus 'b'", parity="X", stopbits=1, bytesize=8)
    with pytest.raises(ValueError, match="stopbits 3"):
        check_settings("bus 'b'", parity="N", stopbits=3, bytesize=8)
    with pytest.raises(ValueError, match="bytesize 9"):
        check_settings("bus 'b'", parity="N", stopbits=1, bytesize=9)
