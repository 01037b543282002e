"""The station side of SL651-2014, written apart from drivers/: frames a remote station
sends (HEX/BCD or ASCII) and the centre's answers it reads.

HEX frame: ``7E 7E``, centre (1), station (5), password (2), function, ``0`` + 12-bit
length, STX, body, end code, CRC (Modbus arithmetic over 7E..end code, high byte first).
ASCII: SOH, the header as hex text, STX, the body as text, the end byte, 4 hex CRC digits.
The body: serial (2), send time (6 BCD), ``F1 F1`` station category, ``F0 F0``
observation time (5 BCD), then elements: identifier, definition byte (bytes << 3 |
decimals), BCD digits (``FF`` first when negative; all ``F`` when missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from firmware_sim.modbus import crc16_modbus

SOH, STX, ETX, EOT, ACK, NAK, SYN, ETB, ESC = 0x01, 0x02, 0x03, 0x04, 0x06, 0x15, 0x16, 0x17, 0x1B
KEEP_ALIVE = 0x2F
TIMED = 0x32
ADDITIONAL = 0x33  # an alarm report: the trigger element goes first
RIVER, RAIN = 0x48, 0x50  # station categories: H, P

# name -> (identifier, definition byte): the byte count << 3 | the decimals
ELEMENTS: dict[str, tuple[int, int]] = {
    "PJ": (0x20, 0x19),  # current rainfall, mm, 5 digits 1 decimal (3 bytes)
    "P1": (0x1A, 0x19),
    "PD": (0x1F, 0x19),
    "PT": (0x26, 0x19),  # accumulated rainfall, a counter
    "Z": (0x39, 0x23),  # river level, m, 7 digits 3 decimals (4 bytes)
    "Q": (0x27, 0x2B),
    "VT": (0x38, 0x12),  # supply voltage, V (2 bytes, 2 decimals)
    "TA": (0x02, 0x19),  # air temperature, C
    "ZT": (0x45, 0x20),  # status bits, 4 bytes binary
}
ZT_LEVEL_ALARM = 1 << 2


@dataclass(frozen=True, slots=True)
class FrameQuirks:
    """How a station gets its frames wrong (FIELD-PROTOCOLS-CN.md's quirks)."""

    lowercase_crc: bool = False  # ASCII frames: the CRC's hex digits in lower case
    wrong_length: bool = False  # the length field says 6 more than the body has
    corrupt_crc: bool = False  # the CRC is wrong


def bcd_digits(digits: str) -> bytes:
    return bytes.fromhex(digits if len(digits) % 2 == 0 else "0" + digits)


def element_bytes(name: str, value: float | None, *, ascii_frames: bool = False) -> bytes:
    """One element as the body carries it (HEX: id, definition, BCD; ASCII: ``NAME value``)."""
    ident, definition = ELEMENTS[name]
    count, decimals = definition >> 3, definition & 7
    if ascii_frames:
        if value is None:
            return f"{name} M ".encode()
        if name == "ZT":
            return f"{name} {int(value):08X} ".encode()
        return f"{name} {value:.{decimals}f} ".encode()
    head = bytes([ident, definition])
    if value is None:
        return head + b"\xff" * count
    if name == "ZT":
        return head + int(value).to_bytes(count, "big")
    scaled = round(abs(value) * 10**decimals)
    if value < 0:
        return head + b"\xff" + bcd_digits(f"{scaled:0{2 * (count - 1)}d}")
    return head + bcd_digits(f"{scaled:0{2 * count}d}")


class Sl651Encoder:
    """Frames of one station (address, password, its centre's address)."""

    def __init__(
        self, *, station: str, password: str, centre: int = 1, ascii_frames: bool = False
    ) -> None:
        self.station = station.upper()
        self.password = password.upper()
        self.centre = centre
        self.ascii_frames = ascii_frames

    def keep_alive(self, serial: int, sent: datetime, quirks: FrameQuirks = FrameQuirks()) -> bytes:
        return self.frame(KEEP_ALIVE, self._header(serial, sent), ETX, quirks)

    def report(
        self,
        function: int,
        *,
        serial: int,
        sent: datetime,
        observed: datetime,
        elements: Sequence[tuple[str, float | None]],
        category: int = RIVER,
        quirks: FrameQuirks = FrameQuirks(),
    ) -> bytes:
        body = self._header(serial, sent)
        if self.ascii_frames:
            body += f"ST {self.station} {chr(category)} TT {observed:%y%m%d%H%M} ".encode()
        else:
            body += b"\xf1\xf1" + bytes.fromhex(self.station) + bytes([category])
            body += b"\xf0\xf0" + bcd_digits(f"{observed:%y%m%d%H%M}")
        body += b"".join(element_bytes(n, v, ascii_frames=self.ascii_frames) for n, v in elements)
        return self.frame(function, body, ETX, quirks)

    def _header(self, serial: int, sent: datetime) -> bytes:
        if self.ascii_frames:
            return f"{serial:04X}{sent:%y%m%d%H%M%S}".encode()
        return serial.to_bytes(2, "big") + bcd_digits(f"{sent:%y%m%d%H%M%S}")

    def frame(self, function: int, body: bytes, end: int, quirks: FrameQuirks) -> bytes:
        length = len(body) + (6 if quirks.wrong_length else 0)
        if self.ascii_frames:
            header = f"{self.centre:02X}{self.station}{self.password}{function:02X}0{length:03X}"
            data = bytes([SOH]) + header.encode() + bytes([STX]) + body + bytes([end])
            check = crc16_modbus(data) ^ (0x5A5A if quirks.corrupt_crc else 0)
            digits = f"{check:04X}"
            return data + (digits.lower() if quirks.lowercase_crc else digits).encode()
        data = (
            b"\x7e\x7e"
            + bytes([self.centre])
            + bytes.fromhex(self.station)
            + bytes.fromhex(self.password)
            + bytes([function])
            + length.to_bytes(2, "big")
            + bytes([STX])
            + body
            + bytes([end])
        )
        check = crc16_modbus(data) ^ (0x5A5A if quirks.corrupt_crc else 0)
        return data + check.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class Answer:
    """What the centre answered: to which function and serial, and how it ends."""

    function: int
    serial: int
    end: int


def read_answer(buffer: bytes) -> tuple[int, Answer | None]:
    """(bytes used, the answer at the start of ``buffer`` or None); (0, None): need more.

    A station skips what it cannot read (a byte at a time) until a frame checks out.
    """
    if not buffer:
        return 0, None
    if buffer[0] == SOH:
        if len(buffer) < 24:
            return 0, None
        try:
            length = int(buffer[20:23], 16)
        except ValueError:
            return 1, None
        end = 24 + length + 1 + 4
        if len(buffer) < end:
            return 0, None
        try:
            good = int(buffer[end - 4 : end], 16) == crc16_modbus(buffer[: end - 4])
            serial = int(buffer[24:28], 16)
        except ValueError:
            good, serial = False, 0
        if not good:
            return 1, None
        return end, Answer(int(buffer[17:19], 16), serial, buffer[end - 5])
    if buffer[:2] != b"\x7e\x7e":
        return 1, None
    if len(buffer) < 14:
        return 0, None
    length = int.from_bytes(buffer[11:13], "big") & 0xFFF
    start = 17 if buffer[13] == SYN else 14
    end = 14 + length + 3
    if len(buffer) < end:
        return 0, None
    if int.from_bytes(buffer[end - 2 : end], "big") != crc16_modbus(buffer[: end - 2]):
        return 1, None
    serial = int.from_bytes(buffer[start : start + 2], "big")
    return end, Answer(buffer[10], serial, buffer[end - 3])
