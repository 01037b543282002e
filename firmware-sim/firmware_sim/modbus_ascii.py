"""Modbus ASCII framing as pure functions: ``:`` + hex(slave, PDU, LRC) + CRLF.

The slave's side, written apart from drivers/ and minimalmodbus, like ``modbus``.
"""

from __future__ import annotations

from firmware_sim.modbus import Request

MAX_FRAME_CHARS = 513  # ':' + 2 x 255 hex + CRLF


def lrc(data: bytes) -> int:
    """Longitudinal redundancy check: the two's complement of the byte sum."""
    return -sum(data) & 0xFF


def encode(body: bytes, *, corrupt: bool = False) -> bytes:
    """The ASCII frame of ``body`` (slave, function, data); ``corrupt`` spoils the LRC."""
    check = lrc(body) ^ (0xFF if corrupt else 0)
    return b":" + (body + bytes([check])).hex().upper().encode() + b"\r\n"


def decode_request(buffer: bytes) -> tuple[int, Request | None]:
    """``(bytes used, request or None)`` for the frame at the start of ``buffer``.

    Bytes before a ``:`` are noise and used up; a frame with a bad LRC, odd length or
    non-hex characters is used up and yields None; ``(0, None)`` asks for more bytes.
    """
    start = buffer.find(b":")
    if start < 0:
        return len(buffer), None
    if start > 0:
        return start, None
    end = buffer.find(b"\r\n")
    restart = buffer.find(b":", 1, end if end >= 0 else len(buffer))
    if restart > 0:  # a new frame began before this one ended: this one was a runt
        return restart, None
    if end < 0:
        return (len(buffer), None) if len(buffer) > MAX_FRAME_CHARS else (0, None)
    text = buffer[1:end]
    used = end + 2
    try:
        frame = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return used, None
    if len(frame) < 3 or lrc(frame[:-1]) != frame[-1]:
        return used, None
    return used, Request(slave=frame[0], function=frame[1], data=frame[2:-1])
