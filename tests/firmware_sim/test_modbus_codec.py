"""Golden byte vectors for the simulator's Modbus RTU codec (independent of drivers/)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim import modbus
from firmware_sim.modbus import ExceptionCode, Request


@pytest.mark.parametrize(
    ("body_hex", "crc_bytes_hex"),
    [
        ("01 03 00 00 00 0A", "C5 CD"),  # the classic read of 10 holding registers
        ("01 03 00 00 00 01", "84 0A"),
        ("01 06 00 01 00 03", "98 0B"),
        ("01 03 02 00 01", "79 84"),  # a response carrying one register = 1
        ("01 83 02", "C0 F1"),  # exception 02 to a read
    ],
)
def test_crc_golden_vectors(body_hex: str, crc_bytes_hex: str) -> None:
    body = bytes.fromhex(body_hex)
    assert modbus.with_crc(body) == body + bytes.fromhex(crc_bytes_hex)


def test_crc_check_value_of_the_catalogue() -> None:
    # CRC-16/MODBUS check value over "123456789" (reveng catalogue).
    assert modbus.crc16_modbus(b"123456789") == 0x4B37
    assert modbus.crc16_modbus(bytes.fromhex("01030000000A")) == 0xCDC5


def test_request_and_response_builders() -> None:
    assert modbus.read_request(1, 3, 0, 10) == bytes.fromhex("01 03 00 00 00 0A C5 CD")
    assert modbus.read_response(1, 3, [1]) == bytes.fromhex("01 03 02 00 01 79 84")
    assert modbus.write_single_response(1, 1, 3) == bytes.fromhex("01 06 00 01 00 03 98 0B")
    assert modbus.exception_response(1, 3, ExceptionCode.ILLEGAL_DATA_ADDRESS) == bytes.fromhex(
        "01 83 02 C0 F1"
    )
    frame = modbus.write_multiple_request(1, 1, [0x000A, 0x0102])
    assert frame[:-2] == bytes.fromhex("01 10 00 01 00 02 04 00 0A 01 02")
    assert modbus.crc_ok(frame)
    assert modbus.write_multiple_response(1, 1, 2)[:-2] == bytes.fromhex("01 10 00 01 00 02")


def test_decode_waits_for_the_whole_frame() -> None:
    frame = modbus.read_request(1, 3, 0, 3)
    for cut in range(len(frame)):
        assert modbus.decode_request(frame[:cut]) == (0, None)
    assert modbus.decode_request(frame) == (8, Request(slave=1, function=3, data=frame[2:-2]))


def test_decode_write_multiple_uses_the_byte_count() -> None:
    frame = modbus.write_multiple_request(7, 0x10, [1, 2, 3])
    assert len(frame) == 9 + 6
    assert modbus.decode_request(frame[:-1]) == (0, None)
    used, request = modbus.decode_request(frame + b"\x01")
    assert used == len(frame)
    assert request is not None
    assert (request.slave, request.function, request.frame) == (7, 16, frame)


def test_decode_drops_a_bad_crc_silently() -> None:
    frame = bytearray(modbus.read_request(1, 3, 0, 3))
    frame[-1] ^= 0x01
    assert modbus.decode_request(bytes(frame)) == (8, None)


def test_decode_reads_two_frames_back_to_back() -> None:
    first, second = modbus.read_request(1, 3, 0, 1), modbus.read_request(2, 4, 5, 2)
    used, request = modbus.decode_request(first + second)
    assert used == 8
    assert request is not None
    assert request.slave == 1
    assert modbus.decode_request(second)[1] == Request(2, 4, second[2:-2])


def test_unknown_function_ends_at_the_gap() -> None:
    frame = modbus.with_crc(bytes([1, 0x2B, 0x0E, 0x01, 0x00]))  # read device identification
    assert modbus.decode_request(frame) == (0, None)
    assert modbus.decode_request(frame, at_gap=True) == (len(frame), Request(1, 0x2B, frame[2:-2]))


def test_incomplete_frame_is_dropped_at_the_gap() -> None:
    frame = modbus.read_request(1, 3, 0, 3)
    assert modbus.decode_request(frame[:5], at_gap=True) == (5, None)
    assert modbus.decode_request(frame[:1], at_gap=True) == (1, None)


@given(
    slave=st.integers(1, 247),
    function=st.sampled_from([3, 4]),
    address=st.integers(0, 0xFFFF),
    count=st.integers(1, 125),
)
def test_read_request_round_trips(slave: int, function: int, address: int, count: int) -> None:
    frame = modbus.read_request(slave, function, address, count)
    used, request = modbus.decode_request(frame)
    assert used == 8
    assert request is not None
    assert (request.slave, request.function) == (slave, function)
    assert modbus.u16_pair(request.data) == (address, count)


@given(data=st.binary(min_size=2, max_size=40), bit=st.integers(0, 10_000))
def test_any_single_bit_flip_breaks_the_crc(data: bytes, bit: int) -> None:
    frame = bytearray(modbus.with_crc(data))
    position = bit % (len(frame) * 8)
    frame[position // 8] ^= 1 << (position % 8)
    assert not modbus.crc_ok(bytes(frame))
