"""SL651-2014 framing as pure functions over bytes: CRC, HEX/BCD and ASCII frames.

HEX frame (multi-byte fields high byte first)::

    7E 7E | centre(1) station(5) [uplink] or station(5) centre(1) [downlink] | password(2)
    | function(1) | direction nibble (0 up, 8 down) + 12-bit body length | STX 02 or SYN 16
    | [SYN: total (12 bits) + seq (12 bits)] | body | end code | CRC (2, high byte first)

The length counts the body, and for SYN (M3) the 3-byte packet field too. The CRC is
Modbus arithmetic (0xA001 reflected, init 0xFFFF) over every byte from the first 7E to the
end code, sent high byte first (Modbus sends it low byte first).

ASCII frame: SOH 01, then the header as hex text (centre 2, station 10, password 4,
function 2, "0"/"8" + 3-hex length; downlink: station, then centre), STX (or SYN and a
6-hex-digit packet field), the body as text, the raw end byte and the CRC as 4 hex digits
over every byte from SOH to the end byte.

``decode(buffer)`` takes a frame from the start of a buffer: ``(used, frame, problem)``.
It resynchronises on junk (garbage before a frame start is one problem per run), takes a
frame whose length runs past a later, complete, valid frame as cut short (``truncated``),
refuses lengths beyond ``max_frame_bytes`` without buffering them, and answers ``used = 0``
when a frame has begun and needs more bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from drivers.stations import Problem, ProblemKind

SOH = 0x01
STX = 0x02
ETX = 0x03
EOT = 0x04
ENQ = 0x05
ACK = 0x06
NAK = 0x15
SYN = 0x16
ETB = 0x17
ESC = 0x1B
START = b"\x7e\x7e"
HEX_HEADER_BYTES = 14  # 7E7E + addresses (6) + password (2) + function + length (2) + STX
ASCII_HEADER_BYTES = 24  # SOH + 22 hex characters + STX
UPLINK_END_CODES = frozenset({ETX, ETB, ENQ})
DOWNLINK_END_CODES = frozenset({ENQ, ACK, EOT, ESC, NAK, ETX, ETB})
MAX_BODY = 0xFFF  # the length field has 12 bits
DEFAULT_MAX_FRAME_BYTES = 4096 + 24
NO_PACKET_FIELD = "an M3 frame without its packet field"


def crc16(data: bytes) -> int:
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF) of ``data``."""
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def bcd(digits: str) -> bytes:
    """Decimal (or hex) digits as packed BCD: ``bcd("250618") == b"\\x25\\x06\\x18"``."""
    if len(digits) % 2:
        digits = "0" + digits
    return bytes.fromhex(digits)


def bcd_time(moment: datetime, *, seconds: bool = True) -> bytes:
    """YYMMDDhhmm[ss] as BCD: the send time (6 bytes) or an observation time (5)."""
    return bcd(moment.strftime("%y%m%d%H%M%S" if seconds else "%y%m%d%H%M"))


def parse_time(digits: str) -> datetime:
    """``YYMMDDhhmm[ss]`` (hex text of BCD bytes) as a naive local time; ValueError if bad."""
    if len(digits) not in (10, 12) or not digits.isdigit():
        raise ValueError(f"time {digits!r} is not BCD YYMMDDhhmm[ss]")
    return datetime.strptime("20" + digits + ("00" if len(digits) == 10 else ""), "%Y%m%d%H%M%S")


@dataclass(frozen=True, slots=True)
class Frame:
    """One SL651 frame; ``body`` is bytes (HEX frames) or the body's text (ASCII frames)."""

    uplink: bool
    centre: int
    station: str  # 10 hex digits, upper case: the key of a station
    password: str  # 4 hex digits
    function: int
    body: bytes
    end: int
    ascii: bool = False
    packet: tuple[int, int] | None = None  # M3 (SYN): (total, seq)

    @property
    def multi_packet(self) -> bool:
        return self.packet is not None


def encode(frame: Frame, *, lowercase_crc: bool = False) -> bytes:
    """The frame on the wire (HEX or ASCII, as ``frame.ascii`` says)."""
    length = len(frame.body) + (3 if frame.packet is not None and not frame.ascii else 0)
    if frame.ascii and frame.packet is not None:
        length += 6
    if length > MAX_BODY:
        raise ValueError(f"body of {length} bytes does not fit the 12-bit length")
    word = (0 if frame.uplink else 0x8000) | length
    start = SYN if frame.packet is not None else STX
    if frame.ascii:
        addresses = (
            f"{frame.centre:02X}{frame.station}"
            if frame.uplink
            else f"{frame.station}{frame.centre:02X}"
        )
        header = f"{addresses}{frame.password}{frame.function:02X}{word >> 12:X}{length:03X}"
        field = b""
        if frame.packet is not None:
            field = f"{frame.packet[0]:03X}{frame.packet[1]:03X}".encode()
        data = bytes([SOH]) + header.encode() + bytes([start]) + field + frame.body
        data += bytes([frame.end])
        check = f"{crc16(data):04X}"
        return data + (check.lower() if lowercase_crc else check).encode()
    centre, station = bytes([frame.centre]), bytes.fromhex(frame.station)
    raw_addresses = centre + station if frame.uplink else station + centre
    packet = b""
    if frame.packet is not None:
        total, seq = frame.packet
        packet = ((total << 12) | seq).to_bytes(3, "big")
    data = (
        START
        + raw_addresses
        + bytes.fromhex(frame.password)
        + bytes([frame.function])
        + word.to_bytes(2, "big")
        + bytes([start])
        + packet
        + frame.body
        + bytes([frame.end])
    )
    return data + crc16(data).to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class Decoded:
    """``used`` bytes from the buffer's start made ``frame`` or ``problem`` (or neither:
    CR/LF between frames); ``used == 0``: a frame has begun, wait for more bytes."""

    used: int
    frame: Frame | None = None
    problem: Problem | None = None
    refused: Refused | None = None  # what a frame with a wrong CRC still tells


@dataclass(frozen=True, slots=True)
class Refused:
    """The header of a frame refused for its CRC: an M3 answer NAKs its packet."""

    station: str
    function: int
    packet: tuple[int, int] | None


_NEED_MORE = Decoded(0)


def decode(buffer: bytes, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Decoded:
    """Take one frame (or one problem) from the start of ``buffer``; see the module doc."""
    start = _next_start(buffer, 0)
    if start < 0:
        junk = len(buffer) - (1 if buffer.endswith(b"\x7e") else 0)
        return _junk(buffer[:junk]) if junk else _NEED_MORE
    if start > 0:
        return _junk(buffer[:start])
    result = _at_start(buffer, max_frame_bytes)
    if result.used == 0:
        # A frame begun but not complete: if a complete, valid frame starts inside it, this
        # one was cut short, and waiting would only hold up the good one behind it.
        later = _next_start(buffer, 1)
        while 0 < later < len(buffer):
            if _at_start(buffer[later:], max_frame_bytes).frame is not None:
                return Decoded(later, problem=_cut(buffer[:later]))
            later = _next_start(buffer, later + 1)
    return result


def _junk(data: bytes) -> Decoded:
    noise = data.strip(b"\r\n\x00")
    if not noise:
        return Decoded(len(data))
    return Decoded(
        len(data),
        problem=Problem(ProblemKind.GARBAGE, f"{len(noise)} bytes that start no frame"),
    )


def _cut(data: bytes) -> Problem:
    return Problem(
        ProblemKind.TRUNCATED,
        f"a frame cut short after {len(data)} bytes (a new frame began inside it)",
        station=_claimed_station(data),
    )


def _next_start(buffer: bytes, offset: int) -> int:
    """Where the next 7E7E or SOH is, at or after ``offset``; -1 if none."""
    hex_at = buffer.find(START, offset)
    soh_at = buffer.find(bytes([SOH]), offset)
    found = [at for at in (hex_at, soh_at) if at >= 0]
    return min(found) if found else -1


def _at_start(buffer: bytes, max_frame_bytes: int) -> Decoded:
    if buffer[0] == SOH:
        return _ascii_at_start(buffer, max_frame_bytes)
    return _hex_at_start(buffer, max_frame_bytes)


def _not_a_start(buffer: bytes, skip: int) -> Decoded:
    """The bytes at the start looked like a frame start but are not one: skip them."""
    return Decoded(skip, problem=Problem(ProblemKind.GARBAGE, f"{skip} bytes that start no frame"))


def _hex_at_start(buffer: bytes, max_frame_bytes: int) -> Decoded:
    if len(buffer) < HEX_HEADER_BYTES:
        return _NEED_MORE
    word = int.from_bytes(buffer[11:13], "big")
    direction, length = word >> 12, word & 0xFFF
    start = buffer[13]
    if direction not in (0, 8) or start not in (STX, SYN):
        return _not_a_start(buffer, 1)  # one byte: a 7E7E may begin at the next
    uplink = direction == 0
    if uplink:
        centre, station = buffer[2], buffer[3:8].hex().upper()
    else:
        station, centre = buffer[2:7].hex().upper(), buffer[7]
    total_bytes = HEX_HEADER_BYTES + length + 3
    if total_bytes > max_frame_bytes:
        return _oversized(total_bytes, max_frame_bytes, station)
    if len(buffer) < total_bytes:
        return _NEED_MORE
    data = buffer[: total_bytes - 2]
    password, function = buffer[8:10].hex().upper(), buffer[10]
    packet: tuple[int, int] | None = None
    body_from = HEX_HEADER_BYTES
    if start == SYN:
        if length < 3:
            return _bad(buffer, total_bytes, max_frame_bytes, NO_PACKET_FIELD, station)
        field = int.from_bytes(buffer[14:17], "big")
        packet, body_from = (field >> 12, field & 0xFFF), HEX_HEADER_BYTES + 3
    good = int.from_bytes(buffer[total_bytes - 2 : total_bytes], "big") == crc16(data)
    frame = Frame(uplink, centre, station, password, function, data[body_from:-1], data[-1])
    return _checked(buffer, total_bytes, max_frame_bytes, replace(frame, packet=packet), good)


_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


def _ascii_at_start(buffer: bytes, max_frame_bytes: int) -> Decoded:
    available = buffer[1 : min(len(buffer), ASCII_HEADER_BYTES - 1)]
    if any(byte not in _HEX_DIGITS for byte in available):
        return _not_a_start(buffer, 1)
    if len(buffer) < ASCII_HEADER_BYTES:
        return _NEED_MORE
    text = buffer[1:23].decode("ascii").upper()
    start = buffer[23]
    direction, length = text[18], int(text[19:22], 16)
    if direction not in "08" or start not in (STX, SYN):
        return _not_a_start(buffer, 1)
    uplink = direction == "0"
    if uplink:
        centre, station = int(text[0:2], 16), text[2:12]
    else:
        station, centre = text[0:10], int(text[10:12], 16)
    total_bytes = ASCII_HEADER_BYTES + length + 1 + 4
    if total_bytes > max_frame_bytes:
        return _oversized(total_bytes, max_frame_bytes, station)
    if len(buffer) < total_bytes:
        return _NEED_MORE
    data = buffer[: total_bytes - 4]
    function = int(text[16:18], 16)
    packet: tuple[int, int] | None = None
    body_from = ASCII_HEADER_BYTES
    if start == SYN:
        field = data[ASCII_HEADER_BYTES : ASCII_HEADER_BYTES + 6]
        if length < 6 or any(byte not in _HEX_DIGITS for byte in field):
            return _bad(buffer, total_bytes, max_frame_bytes, NO_PACKET_FIELD, station)
        packet = (int(field[:3], 16), int(field[3:], 16))
        body_from += 6
    check = buffer[total_bytes - 4 : total_bytes]
    try:
        good = int(check, 16) == crc16(data) and all(b in _HEX_DIGITS for b in check)
    except ValueError:
        good = False
    frame = Frame(
        uplink, centre, station, text[12:16], function, data[body_from:-1], data[-1], True, packet
    )
    return _checked(buffer, total_bytes, max_frame_bytes, frame, good)


def _checked(
    buffer: bytes, total_bytes: int, max_frame_bytes: int, frame: Frame, crc_good: bool
) -> Decoded:
    """A frame whose bytes have all come: refused for its CRC or its end code, or taken."""
    if not crc_good:
        refused = Refused(frame.station, frame.function, frame.packet)
        return _crc_problem(buffer, total_bytes, refused, max_frame_bytes)
    if frame.end not in (UPLINK_END_CODES if frame.uplink else DOWNLINK_END_CODES):
        detail = f"end code {frame.end:02X}H where an end code belongs"
        return _bad(buffer, total_bytes, max_frame_bytes, detail, frame.station)
    return Decoded(total_bytes, frame=frame)


def _cut_before(buffer: bytes, total_bytes: int, max_frame_bytes: int) -> Decoded | None:
    """A frame refused once all its claimed bytes came: if a valid frame starts inside
    it, it was cut short, and framing resumes there (else the good one would be lost)."""
    later = _next_start(buffer, 1)
    while 0 < later < total_bytes:
        if _at_start(buffer[later:], max_frame_bytes).frame is not None:
            return Decoded(later, problem=_cut(buffer[:later]))
        later = _next_start(buffer, later + 1)
    return None


def _crc_problem(
    buffer: bytes, total_bytes: int, refused: Refused, max_frame_bytes: int
) -> Decoded:
    cut = _cut_before(buffer, total_bytes, max_frame_bytes)
    if cut is not None:
        return cut
    packet = refused.packet
    where = f" (packet {packet[1]} of {packet[0]})" if packet else ""
    problem = Problem(
        ProblemKind.CRC, f"function {refused.function:02X}H{where}: wrong CRC", refused.station
    )
    return Decoded(total_bytes, problem=problem, refused=refused)


def _oversized(total_bytes: int, max_frame_bytes: int, station: str) -> Decoded:
    """A length beyond the bound: refused at its first byte, never buffered."""
    detail = f"frame of {total_bytes} bytes > {max_frame_bytes}"
    return Decoded(1, problem=Problem(ProblemKind.OVERSIZED, detail, station=station))


def _bad(
    buffer: bytes, total_bytes: int, max_frame_bytes: int, detail: str, station: str
) -> Decoded:
    cut = _cut_before(buffer, total_bytes, max_frame_bytes)
    if cut is not None:
        return cut
    return Decoded(total_bytes, problem=Problem(ProblemKind.MALFORMED, detail, station=station))


def _claimed_station(data: bytes) -> str | None:
    if data[:2] == START and len(data) >= 8:
        return data[3:8].hex().upper()
    if data[:1] == bytes([SOH]) and len(data) >= 13:
        try:
            return data[3:13].decode("ascii").upper()
        except UnicodeDecodeError:
            return None
    return None


def with_body(frame: Frame, body: bytes) -> Frame:
    """``frame`` carrying ``body`` instead (an M3 message reassembled whole)."""
    return replace(frame, body=body, packet=None)
