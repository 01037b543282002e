"""Modbus RTU framing as pure functions over bytes: CRC, request decoding, responses.

This is the slave's side of the protocol, written independently of drivers/ (and of
minimalmodbus) so that each side checks the other: a CRC bug shared by both would hide.

``decode_request`` follows pymodbus' shape: it looks at the bytes gathered so far and says
how many it used and which request (if any) they held, so a caller can feed it partial reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

# Function codes whose request length is fixed at 8 bytes: slave, fc, 2 x u16, CRC.
_FIXED_LENGTH_FUNCTIONS = frozenset({1, 2, 3, 4, 5, 6})
# Function codes whose request carries a byte count at offset 6 (write multiple).
_BYTE_COUNT_FUNCTIONS = frozenset({15, 16})
_FIXED_REQUEST_LENGTH = 8
_BYTE_COUNT_HEADER_LENGTH = 7  # slave, fc, address, quantity, byte count
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
MIN_FRAME_LENGTH = 4  # slave, fc, CRC


class FunctionCode(IntEnum):
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4
    WRITE_SINGLE_COIL = 5
    WRITE_SINGLE_REGISTER = 6
    WRITE_MULTIPLE_REGISTERS = 16


class ExceptionCode(IntEnum):
    ILLEGAL_FUNCTION = 1
    ILLEGAL_DATA_ADDRESS = 2
    ILLEGAL_DATA_VALUE = 3
    SERVER_DEVICE_FAILURE = 4
    SERVER_DEVICE_BUSY = 6


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body: bytes) -> bytes:
    """``body`` followed by its CRC, low byte first as Modbus RTU sends it."""
    return body + crc16_modbus(body).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    """Whether the last two bytes of ``frame`` are the CRC of the rest."""
    return len(frame) >= MIN_FRAME_LENGTH and with_crc(frame[:-2]) == frame


@dataclass(frozen=True, slots=True)
class Request:
    """A request frame whose CRC checked out. ``data`` is what lies between fc and CRC."""

    slave: int
    function: int
    data: bytes

    @property
    def frame(self) -> bytes:
        return with_crc(bytes([self.slave, self.function]) + self.data)


def request_length(buffer: bytes) -> int | None:
    """Length of the request frame that starts ``buffer``.

    Returns 0 when more bytes are needed to tell, and None when the function code is not
    one whose length is known: only an inter-frame gap can end such a frame.
    """
    if len(buffer) < 2:
        return 0
    function = buffer[1]
    if function in _FIXED_LENGTH_FUNCTIONS:
        return _FIXED_REQUEST_LENGTH
    if function in _BYTE_COUNT_FUNCTIONS:
        if len(buffer) < _BYTE_COUNT_HEADER_LENGTH:
            return 0
        return _BYTE_COUNT_HEADER_LENGTH + buffer[6] + 2
    return None


def decode_request(buffer: bytes, *, at_gap: bool = False) -> tuple[int, Request | None]:
    """Decode the request at the start of ``buffer``: ``(bytes used, request or None)``.

    - ``(0, None)``: not a whole frame yet, keep the bytes and read more;
    - ``(n, None)``: ``n`` bytes that are no valid frame (bad CRC, runt): drop them silently,
      as a real slave does;
    - ``(n, request)``: a frame with a good CRC.

    ``at_gap`` says the line has gone quiet (an inter-frame gap): whatever is buffered is all
    there is, so an incomplete frame is dropped and a frame of unknown length ends here.
    """
    length = request_length(buffer)
    if length is None:
        if not at_gap:
            return 0, None
        length = len(buffer)
    elif length == 0 or len(buffer) < length:
        return (len(buffer), None) if at_gap else (0, None)
    frame = buffer[:length]
    if not crc_ok(frame):
        return length, None
    return length, Request(slave=frame[0], function=frame[1], data=frame[2:-2])


def u16_pair(data: bytes) -> tuple[int, int]:
    """The two big-endian u16 fields (address, quantity or value) that start ``data``."""
    return int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")


def read_request(slave: int, function: int, address: int, count: int) -> bytes:
    """A read request frame (fc 03/04): for tests and masters built on this module."""
    return with_crc(
        bytes([slave, function]) + address.to_bytes(2, "big") + count.to_bytes(2, "big")
    )


def write_single_request(slave: int, address: int, value: int) -> bytes:
    return with_crc(bytes([slave, 6]) + address.to_bytes(2, "big") + value.to_bytes(2, "big"))


def write_coil_request(slave: int, address: int, on: bool) -> bytes:
    """A fc 05 request: 0xFF00 sets the coil, 0x0000 clears it."""
    value = 0xFF00 if on else 0x0000
    return with_crc(bytes([slave, 5]) + address.to_bytes(2, "big") + value.to_bytes(2, "big"))


def write_multiple_request(slave: int, address: int, values: list[int]) -> bytes:
    words = b"".join(v.to_bytes(2, "big") for v in values)
    header = address.to_bytes(2, "big") + len(values).to_bytes(2, "big")
    return with_crc(bytes([slave, 16]) + header + bytes([len(words)]) + words)


def read_response(slave: int, function: int, values: list[int]) -> bytes:
    """Response to fc 03/04: byte count, then each register big-endian."""
    words = b"".join(v.to_bytes(2, "big") for v in values)
    return with_crc(bytes([slave, function, len(words)]) + words)


def write_single_response(slave: int, address: int, value: int) -> bytes:
    """Response to fc 06: an echo of the request."""
    return write_single_request(slave, address, value)


def write_multiple_response(slave: int, address: int, count: int) -> bytes:
    """Response to fc 16: address and quantity written."""
    return with_crc(bytes([slave, 16]) + address.to_bytes(2, "big") + count.to_bytes(2, "big"))


def exception_response(slave: int, function: int, code: ExceptionCode) -> bytes:
    """Exception response: the function code with its high bit set, then the code."""
    return with_crc(bytes([slave, (function | 0x80) & 0xFF, int(code)]))
