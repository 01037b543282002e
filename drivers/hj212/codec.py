"""HJ212-2017 packets as pure functions over bytes: CRC, framing, the data segment.

A packet is ``##`` + the data segment's length (4 decimal digits) + the segment + its CRC
(4 hex digits) + CRLF. The segment::

    QN=YYYYMMDDhhmmsszzz;ST=22;CN=2011;PW=123456;MN=<24 hex>;Flag=5;[PNUM=..;PNO=..;]CP=&&..&&

Inside CP, ``;`` separates items and ``,`` the values of one item, each ``key=value``.

The CRC is not Modbus's: ``reg = (reg >> 8) ^ byte`` then 8 right shifts with 0xA001,
from 0xFFFF, over the segment's raw bytes only, written as 4 upper-case hex digits (lower
case is accepted). Only 8 bits of state survive each byte, so a segment ending ``&&`` has
256 possible CRCs: the segment's syntax is checked too (``parse_segment``).

``decode(buffer)`` takes a packet from the start of a buffer and survives the vendor
quirks: junk and ``HJ 212-2017[n]`` heartbeat lines before ``##`` (skipped: the lines
silently), a missing CR or LF (packets are framed by ``##`` and the length), a wrong
length field (the segment is then found by its ``&&`` and CRC), lower-case CRC digits, a
packet cut short by the next one (``truncated``) and oversized lengths (refused unbuffered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.stations import Problem, ProblemKind

START = b"##"
DEFAULT_MAX_SEGMENT_BYTES = 1024  # the standard's bound on the data segment
HEARTBEAT_LINE = re.compile(rb"HJ ?212[-0-9\[\]A-Za-z ]*\r?\n")
_TERMINATOR = re.compile(rb"&&([0-9A-Fa-f]{4})")
_HEX = frozenset(b"0123456789ABCDEFabcdef")


def crc(segment: bytes) -> int:
    """The HJ212 CRC-16 of a data segment (see the module docstring)."""
    reg = 0xFFFF
    for byte in segment:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def encode(segment: bytes) -> bytes:
    """A segment as a packet on the wire: ``##LLLL<segment>CRC\\r\\n``."""
    if len(segment) > 9999:
        raise ValueError(f"a segment of {len(segment)} bytes does not fit 4 digits")
    return b"##%04d" % len(segment) + segment + b"%04X\r\n" % crc(segment)


@dataclass(frozen=True, slots=True)
class Decoded:
    """``used`` bytes from the buffer's start made ``segment`` (checked) or ``problem``
    (or neither: line ends, heartbeat lines); ``used == 0``: a packet has begun, wait.
    ``quirk`` says what the packet got wrong that was forgiven (a wrong length field)."""

    used: int
    segment: bytes | None = None
    problem: Problem | None = None
    quirk: str | None = None


_NEED_MORE = Decoded(0)


def decode(buffer: bytes, *, max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES) -> Decoded:
    """Take one packet (or one problem) from the start of ``buffer``."""
    start = buffer.find(START)
    if start < 0:
        keep = 1 if buffer.endswith(b"#") else 0
        if len(buffer) <= keep:
            return _NEED_MORE
        return _junk(buffer[: len(buffer) - keep], complete=False)
    if start > 0:
        return _junk(buffer[:start], complete=True)
    result = _at_start(buffer, max_segment_bytes)
    if result.used == 0 or (result.problem is not None and result.problem.kind is ProblemKind.CRC):
        # Begun but incomplete, or a wrong CRC: if a later "##" starts a complete, valid
        # packet inside this one, this one was cut short; resume there.
        end = len(buffer) if result.used == 0 else result.used
        later = buffer.find(START, 2)
        while 0 < later < end:
            if _at_start(buffer[later:], max_segment_bytes).segment is not None:
                return Decoded(
                    later,
                    problem=Problem(
                        ProblemKind.TRUNCATED,
                        f"a packet cut short after {later} bytes (a new one began inside it)",
                    ),
                )
            later = buffer.find(START, later + 1)
    return result


def _junk(data: bytes, *, complete: bool) -> Decoded:
    """Bytes before any packet. ``complete``: a ``##`` follows (nothing joins them later);
    else a heartbeat line still arriving at the end is kept until its line end."""
    if not complete:
        tail = data.rfind(b"HJ")
        if tail >= 0 and b"\n" not in data[tail:] and len(data) - tail < 64:
            if tail == 0:
                return _NEED_MORE
            data = data[:tail]
    rest = HEARTBEAT_LINE.sub(b"", data).strip(b"\r\n\x00 ")
    if not rest:
        return Decoded(len(data))
    return Decoded(
        len(data), problem=Problem(ProblemKind.GARBAGE, f"{len(rest)} bytes that start no packet")
    )


def _at_start(buffer: bytes, max_segment_bytes: int) -> Decoded:
    if len(buffer) < 6:
        return _NEED_MORE
    digits = buffer[2:6]
    if not digits.isdigit():
        return Decoded(  # one byte: a "##" may begin at the next ("###0229...")
            1, problem=Problem(ProblemKind.GARBAGE, f"'##' without a length: {digits!r}")
        )
    length = int(digits)
    if length > max_segment_bytes:
        return Decoded(
            2,
            problem=Problem(
                ProblemKind.OVERSIZED, f"a segment of {length} bytes > {max_segment_bytes}"
            ),
        )
    end = 6 + length
    if len(buffer) >= end + 4:
        segment, check = buffer[6:end], buffer[end : end + 4]
        if all(b in _HEX for b in check) and int(check, 16) == crc(segment):
            return Decoded(_after_line_end(buffer, end + 4), segment=bytes(segment))
    found = _by_terminator(buffer, max_segment_bytes)
    if found is not None:
        segment_end, used = found
        quirk = f"the length field says {length}, the segment has {segment_end - 6} bytes"
        return Decoded(used, segment=bytes(buffer[6:segment_end]), quirk=quirk)
    if len(buffer) >= end + 4:
        return Decoded(
            _after_line_end(buffer, end + 4),
            problem=Problem(ProblemKind.CRC, f"a packet of {length} bytes: wrong CRC"),
        )
    return _NEED_MORE


def _by_terminator(buffer: bytes, max_segment_bytes: int) -> tuple[int, int] | None:
    """A segment found by its ``&&`` and a CRC that matches: (segment end, bytes used).

    The CRC keeps 8 bits of state, so a run of bytes that ends like a good segment often
    has its CRC: the candidate must also hold no packet start and parse as a segment.
    """
    for match in _TERMINATOR.finditer(buffer, 6, 6 + max_segment_bytes + 6):
        segment_end = match.start() + 2
        segment = buffer[6:segment_end]
        if START in segment or int(match.group(1), 16) != crc(segment):
            continue
        try:
            parse_segment(segment)
        except SegmentError:
            continue
        return segment_end, _after_line_end(buffer, match.end())
    return None


def _after_line_end(buffer: bytes, at: int) -> int:
    """Past a CR, LF or CRLF right after the CRC, if there (either may be missing)."""
    if buffer[at : at + 1] == b"\r":
        at += 1
    if buffer[at : at + 1] == b"\n":
        at += 1
    return at


# -- the data segment ------------------------------------------------------------------------


class SegmentError(ValueError):
    """A segment whose syntax is wrong; the message says where."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A checked data segment. ``cp`` keeps CP's ``key=value`` pairs in order."""

    qn: str | None
    st: str
    cn: str
    pw: str
    mn: str
    flag: int | None
    pnum: int | None
    pno: int | None
    cp: tuple[tuple[str, str], ...]

    @property
    def answer_wanted(self) -> bool:
        """Flag bit A (1): the sender wants an answer."""
        return self.flag is not None and bool(self.flag & 1)

    def cp_value(self, key: str) -> str | None:
        return next((v for k, v in self.cp if k == key), None)


_FIELD_LIMITS = {"QN": 20, "ST": 4, "CN": 4, "PW": 16, "MN": 32, "Flag": 3, "PNUM": 4, "PNO": 4}


def parse_segment(segment: bytes) -> Segment:
    """The fields of a segment, its syntax checked; SegmentError when it is wrong."""
    text = segment.decode("utf-8", errors="replace")
    head, marker, rest = text.partition("CP=&&")
    if not marker or not rest.endswith("&&"):
        raise SegmentError("no CP=&&...&& at the end")
    fields: dict[str, str] = {}
    for item in head.split(";"):
        if not item:
            continue
        key, equals, value = item.partition("=")
        limit = _FIELD_LIMITS.get(key)
        if not equals or limit is None:
            raise SegmentError(f"field {item[:20]!r} is not one of {sorted(_FIELD_LIMITS)}")
        if len(value) > limit:
            raise SegmentError(f"{key} is longer than {limit} characters")
        fields[key] = value
    if not head.endswith(";"):
        raise SegmentError("no ';' before CP")
    missing = [k for k in ("ST", "CN", "PW", "MN") if not fields.get(k)]
    if missing:
        raise SegmentError(f"missing {', '.join(missing)}")
    if not fields["CN"].isdigit() or not fields["ST"].isdigit():
        raise SegmentError(f"CN {fields['CN']!r} / ST {fields['ST']!r} are not numbers")
    try:
        flag = int(fields["Flag"]) if "Flag" in fields else None
        pnum = int(fields["PNUM"]) if "PNUM" in fields else None
        pno = int(fields["PNO"]) if "PNO" in fields else None
    except ValueError:
        raise SegmentError("Flag, PNUM or PNO is not a number") from None
    return Segment(
        qn=fields.get("QN"),
        st=fields["ST"],
        cn=fields["CN"],
        pw=fields["PW"],
        mn=fields["MN"],
        flag=flag,
        pnum=pnum,
        pno=pno,
        cp=_parse_cp(rest[:-2]),
    )


def _parse_cp(body: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for item in body.split(";"):
        for part in item.split(","):
            if not part:
                continue
            key, equals, value = part.partition("=")
            if not equals or not key:
                raise SegmentError(f"CP item {part[:20]!r} is not key=value")
            pairs.append((key, value))
    return tuple(pairs)


def build_segment(
    *,
    qn: str | None,
    st: str,
    cn: str,
    pw: str,
    mn: str,
    flag: int | None,
    cp: str = "",
) -> bytes:
    """A segment from its fields; ``cp`` is what goes between ``CP=&&`` and ``&&``."""
    parts = [f"QN={qn}"] if qn is not None else []
    parts += [f"ST={st}", f"CN={cn}", f"PW={pw}", f"MN={mn}"]
    if flag is not None:
        parts.append(f"Flag={flag}")
    return (";".join(parts) + f";CP=&&{cp}&&").encode()
