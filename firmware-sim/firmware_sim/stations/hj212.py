"""The logger side of HJ212-2017, written apart from drivers/: packets a data logger sends
and the platform's answers and requests it reads.

``##`` + the data segment's length (4 digits) + segment + CRC (4 hex digits) + CRLF. The
CRC: from 0xFFFF, per byte ``reg = (reg >> 8) ^ byte``, then 8 right shifts with 0xA001;
over the segment only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


def hj212_crc(segment: bytes) -> int:
    register = 0xFFFF
    for byte in segment:
        register = (register >> 8) ^ byte
        for _ in range(8):
            lsb = register & 1
            register >>= 1
            if lsb:
                register ^= 0xA001
    return register


@dataclass(frozen=True, slots=True)
class PacketQuirks:
    """How a logger gets its packets wrong (FIELD-PROTOCOLS-CN.md's quirks)."""

    lowercase_crc: bool = False
    no_crlf: bool = False  # the packet ends with its CRC
    wrong_length: bool = False  # the length field says 6 more (one Python client's bug)
    corrupt_crc: bool = False


def packet(segment: bytes, quirks: PacketQuirks = PacketQuirks()) -> bytes:
    length = len(segment) + (6 if quirks.wrong_length else 0)
    check = hj212_crc(segment) ^ (0x0F0F if quirks.corrupt_crc else 0)
    digits = f"{check:04X}"
    crc_text = (digits.lower() if quirks.lowercase_crc else digits).encode()
    return f"##{length:04d}".encode() + segment + crc_text + (b"" if quirks.no_crlf else b"\r\n")


def qn(moment: datetime) -> str:
    return f"{moment:%Y%m%d%H%M%S}{moment.microsecond // 1000:03d}"


class Hj212Encoder:
    """Packets of one logger (MN, password, system code ST)."""

    def __init__(self, *, mn: str, password: str, st: str = "22") -> None:
        self.mn = mn
        self.password = password
        self.st = st

    def segment(self, cn: str, sent: datetime, cp: str, *, flag: int) -> bytes:
        return (
            f"QN={qn(sent)};ST={self.st};CN={cn};PW={self.password};MN={self.mn};"
            f"Flag={flag};CP=&&{cp}&&"
        ).encode()

    def data(
        self,
        cn: str,
        data_time: datetime,
        factors: Mapping[str, tuple[float | None, str]],
        *,
        flag: int = 5,
        sent: datetime | None = None,
        fields: tuple[str, ...] = ("Rtd",),
        quirks: PacketQuirks = PacketQuirks(),
    ) -> bytes:
        """A data upload: ``DataTime`` then each factor's fields and flag."""
        items = [f"DataTime={data_time:%Y%m%d%H%M%S}"]
        for code, (value, data_flag) in factors.items():
            text = "" if value is None else f"{value:.2f}"
            values = [f"{code}-{name}={text}" for name in fields]
            items.append(",".join([*values, f"{code}-Flag={data_flag}"]))
        segment = self.segment(cn, sent or data_time, ";".join(items), flag=flag)
        return packet(segment, quirks)

    def reply(self, request_qn: str, cn: str, cp: str) -> bytes:
        """An answer to a platform request (9011 request answer, 9012 execution result)."""
        segment = (
            f"QN={request_qn};ST={self.st};CN={cn};PW={self.password};MN={self.mn};"
            f"Flag=4;CP=&&{cp}&&"
        ).encode()
        return packet(segment)


_PACKET = re.compile(rb"##(\d{4})")


def read_packet(buffer: bytes) -> tuple[int, dict[str, str] | None]:
    """(bytes used, the fields of the packet at the start of ``buffer`` or None); (0, None):
    need more. Fields: the segment's ``KEY=value`` pairs, CP's included."""
    start = buffer.find(b"##")
    if start < 0:
        return max(0, len(buffer) - 1), None
    if start > 0:
        return start, None
    match = _PACKET.match(buffer)
    if match is None:
        return (0, None) if len(buffer) < 6 else (1, None)
    end = 6 + int(match.group(1))
    if len(buffer) < end + 4:
        return 0, None
    segment = buffer[6:end]
    try:
        good = int(buffer[end : end + 4], 16) == hj212_crc(segment)
    except ValueError:
        good = False
    used = end + 4 + (2 if buffer[end + 4 : end + 6] == b"\r\n" else 0)
    if not good:
        return used, None
    text = segment.decode("utf-8", errors="replace").replace("CP=&&", "").rstrip("&")
    fields = dict(part.split("=", 1) for part in re.split("[;,]", text) if "=" in part)
    return used, fields
