"""The framed inclinometer wire, device side: ``STX text ETB CS $`` frames and ENQ polls.

A frame is STX (0x02), the text (X angle, a space, Y angle), ETB (0x17), one checksum
byte, then ``$``. The checksum is the XOR of the text's bytes: every byte after STX and
before ETB (not STX, ETB, the checksum itself nor ``$``). ``+00.430 -00.084`` sums to
0x2D. It is a binary byte: it may be 0x02, 0x17 or ``$`` like any other.

On a shared line the master asks one device by the byte 0xB0 + id followed by ENQ (0x05);
commands (``#DATA``, ``#READ``, ``#STOP``) are lines ending in ``\\r\\n``. Written apart
from drivers/ (each side checks the other).
"""

from __future__ import annotations

from dataclasses import dataclass

STX = 0x02
ETB = 0x17
FRAME_END = ord("$")
ENQ = 0x05
ENQ_ADDRESS_BASE = 0xB0
CORRUPT_MASK = 0x5A  # what a corrupt_crc fault XORs into a checksum


def xor_checksum(data: bytes) -> int:
    """XOR of every byte of ``data``: the checksum of STX frames and of NMEA sentences."""
    check = 0
    for byte in data:
        check ^= byte
    return check


def stx_checksum(text: bytes) -> int:
    """The frame's checksum: XOR of ``text``, what lies between STX and ETB."""
    return xor_checksum(text)


def stx_frame(text: str, *, corrupt: bool = False) -> bytes:
    """``STX text ETB CS $``; ``corrupt`` sends a wrong checksum byte."""
    raw = text.encode("ascii")
    check = stx_checksum(raw) ^ (CORRUPT_MASK if corrupt else 0)
    return bytes([STX]) + raw + bytes([ETB, check, FRAME_END])


def parse_stx_frame(frame: bytes) -> str | None:
    """The text of one whole frame whose checksum is right, else None."""
    if len(frame) < 4 or frame[0] != STX or frame[-3] != ETB or frame[-1] != FRAME_END:
        return None
    text = frame[1:-3]
    if frame[-2] != stx_checksum(text) or ETB in text or STX in text:
        return None
    try:
        return text.decode("ascii")
    except UnicodeDecodeError:
        return None


def enquiry(device_id: int) -> bytes:
    """What the master sends to ask device ``device_id`` on a shared line."""
    return bytes([ENQ_ADDRESS_BASE + device_id, ENQ])


@dataclass(frozen=True, slots=True)
class Enquiry:
    """An ENQ poll heard on the line: the device with this id answers one frame."""

    device_id: int


def split_requests(buffer: bytes) -> tuple[list[bytes | Enquiry], bytes]:
    """The whole requests at the start of ``buffer``, and what is left of it.

    A request is a line (without its ``\\n``) or an ENQ poll: an address byte (0xB0 and
    above) followed by ENQ. Bytes before an ENQ poll that end no line come out as a line
    of their own (the line counts it as junk).
    """
    requests: list[bytes | Enquiry] = []
    start = 0
    for index, byte in enumerate(buffer):
        if byte == 0x0A:
            requests.append(buffer[start:index])
            start = index + 1
        elif byte == ENQ and index > start and buffer[index - 1] >= ENQ_ADDRESS_BASE:
            if index - 1 > start:
                requests.append(buffer[start : index - 1])
            requests.append(Enquiry(buffer[index - 1] - ENQ_ADDRESS_BASE))
            start = index + 1
    return requests, buffer[start:]


__all__ = [
    "CORRUPT_MASK",
    "ENQ",
    "ETB",
    "STX",
    "Enquiry",
    "enquiry",
    "parse_stx_frame",
    "split_requests",
    "stx_checksum",
    "stx_frame",
    "xor_checksum",
]
