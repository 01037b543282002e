"""SL651-2014 report bodies, HEX/BCD and ASCII, as pure functions.

HEX body: serial number (2 bytes HEX, 1-65535, wrapping), send time (6 bytes BCD
YYMMDDhhmmss), then for a report ``F1 F1`` + station address (5) + category (1), and
groups of ``F0 F0`` + observation time (5 bytes BCD) + elements. An element is an
identifier (``FF xx``: extended), a definition byte (high 5 bits: byte count; low 3:
decimals) and BCD digits. A negative value has ``FF`` in front of its digits (counted in
the byte count; ``negative_counted=False`` reads the stations that do not count it); all
``F`` (or a leading ``AA AA``) is a missing value. DRP (F4H: 12 x 1 byte HEX, 0.1 mm, FF
bad), DRZ1 (F5H: 12 x 2 bytes HEX, 0.01 m, FFFF bad) and ZT (45H: 4 bytes of status bits)
are binary, not BCD. Unknown identifiers are skipped by their definition byte.

ASCII body: ``0021250618080005ST 0012345678 H TT 2506180800 Z 12.345 ``: serial (4 hex)
and send time (12 digits) without a space, then items separated by spaces; a missing value
is ``M``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from drivers.sl651.codec import bcd, bcd_time, parse_time
from drivers.sl651.elements import (
    BY_ASCII,
    BY_IDENT,
    EXTENDED,
    LEVEL_SERIES,
    RAIN_SERIES,
    SERIES_COUNT,
    STATION_MARK,
    STATUS,
    TIME_MARK,
    element_label,
)

MISSING_PREFIX = b"\xaa\xaa"  # some stations mark an invalid value this way


class BodyError(ValueError):
    """A body that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class ElementValue:
    """One element as sent. ``value`` None: missing (all F, ``M``) or not a number."""

    ident: int | None  # None: an ASCII name the gateway does not know
    label: str  # ``Z (39H)``, or the ASCII name as sent
    value: float | None
    digits: int = 0  # BCD digits of the value (a counter rolls over at 10**digits)
    raw: int | None = None  # the value's integer (digits without the decimal point)
    decimals: int = 0  # value = raw / 10**decimals
    series: tuple[float | None, ...] = ()  # DRP / DRZ1: 12 values, 5 minutes apart
    problem: str | None = None  # why the value is missing, for the measurement's error


@dataclass(frozen=True, slots=True)
class Group:
    """Elements observed at one instant (the station's local time)."""

    observed: datetime
    elements: tuple[ElementValue, ...]


@dataclass(frozen=True, slots=True)
class Body:
    serial: int
    sent: datetime
    station: str | None = None
    category: int | None = None
    groups: tuple[Group, ...] = ()


def parse_header(body: bytes, *, ascii_text: bool) -> tuple[int, datetime]:
    """The serial number and send time every uplink body starts with."""
    try:
        if ascii_text:
            return int(body[0:4], 16), parse_time(body[4:16].decode("ascii"))
        if len(body) < 8:
            raise BodyError(f"a body of {len(body)} bytes has no serial and send time")
        return int.from_bytes(body[0:2], "big"), parse_time(body[2:8].hex())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"serial / send time: {exc}") from None


def parse_hex(body: bytes, *, negative_counted: bool = True) -> Body:
    """A HEX report body (keep-alive: serial and send time only)."""
    serial, sent = parse_header(body, ascii_text=False)
    if len(body) == 8:
        return Body(serial, sent)
    at = 8
    if body[at : at + 2] != bytes([STATION_MARK] * 2) or len(body) < at + 8:
        raise BodyError(f"byte {at}: no F1F1 station address")
    station, category = body[at + 2 : at + 7].hex().upper(), body[at + 7]
    at += 8
    if body[at : at + 3] == b"\x00\xf0\xf0":  # a 00 after the category (one vendor)
        at += 1
    groups: list[Group] = []
    observed, elements = sent, list[ElementValue]()
    while at < len(body):
        if body[at] == TIME_MARK and body[at + 1 : at + 2] == bytes([TIME_MARK]):
            if elements or groups:
                groups.append(Group(observed, tuple(elements)))
            try:
                observed = parse_time(body[at + 2 : at + 7].hex())
            except ValueError as exc:
                raise BodyError(f"byte {at}: observation time: {exc}") from None
            elements, at = [], at + 7
            continue
        element, at = _hex_element(body, at, negative_counted)
        elements.append(element)
    groups.append(Group(observed, tuple(elements)))
    return Body(serial, sent, station, category, tuple(groups))


def _hex_element(body: bytes, at: int, negative_counted: bool) -> tuple[ElementValue, int]:
    start = at
    ident = body[at]
    at += 1
    if ident == EXTENDED:
        if at >= len(body):
            raise BodyError(f"byte {start}: an extended identifier cut short")
        ident = (EXTENDED << 8) | body[at]
        at += 1
    if at >= len(body):
        raise BodyError(f"byte {start}: element {element_label(ident)} has no definition byte")
    definition = body[at]
    count, decimals = definition >> 3, definition & 0x07
    at += 1
    if count == 0:
        raise BodyError(
            f"byte {start}: element {element_label(ident)}: definition {definition:02X}H"
        )
    if (
        not negative_counted
        and body[at : at + 1] == b"\xff"
        and body[at : at + count] != b"\xff" * count
    ):
        count += 1  # the sign byte the station left out of the count
    value = body[at : at + count]
    if len(value) < count:
        raise BodyError(f"byte {start}: element {element_label(ident)} cut short")
    return _element(ident, value, decimals), at + count


def _element(ident: int, value: bytes, decimals: int) -> ElementValue:
    label = element_label(ident)
    if ident == RAIN_SERIES:
        series = tuple(None if b == 0xFF else b / 10 for b in value[:SERIES_COUNT])
        return ElementValue(ident, label, _last(series), series=series)
    if ident == LEVEL_SERIES:
        words = [int.from_bytes(value[i : i + 2], "big") for i in range(0, 2 * SERIES_COUNT, 2)]
        series = tuple(None if w == 0xFFFF else w / 100 for w in words[: len(value) // 2])
        return ElementValue(ident, label, _last(series), series=series)
    if ident == STATUS:
        raw = int.from_bytes(value, "big")
        return ElementValue(ident, label, float(raw), raw=raw)
    if value == b"\xff" * len(value) or value.startswith(MISSING_PREFIX):
        return ElementValue(ident, label, None, digits=2 * len(value), problem="missing (all F)")
    sign, digits = 1, value.hex()
    if value[0] == 0xFF:
        sign, digits = -1, value[1:].hex()
    if not digits.isdigit():
        return ElementValue(ident, label, None, problem=f"{value.hex().upper()} is not BCD")
    raw = int(digits)
    return ElementValue(
        ident,
        label,
        sign * raw / 10**decimals,
        digits=len(digits),
        raw=sign * raw,
        decimals=decimals,
    )


def _last(series: tuple[float | None, ...]) -> float | None:
    return next((v for v in reversed(series) if v is not None), None)


def parse_ascii(body: bytes) -> Body:
    """An ASCII report body (keep-alive: serial and send time only)."""
    serial, sent = parse_header(body, ascii_text=True)
    try:
        tokens = body[16:].decode("ascii").split()
    except UnicodeDecodeError:
        raise BodyError("the body is not ASCII text") from None
    if not tokens:
        return Body(serial, sent)
    if len(tokens) < 3 or tokens[0] != "ST" or len(tokens[1]) != 10:
        raise BodyError("no 'ST <station> <category>' after the send time")
    station, category = tokens[1].upper(), ord(tokens[2][0]) if tokens[2] else None
    groups: list[Group] = []
    observed, elements = sent, list[ElementValue]()
    at = 3
    while at < len(tokens):
        name = tokens[at]
        if at + 1 >= len(tokens):
            raise BodyError(f"item {name!r} has no value")
        text = tokens[at + 1]
        at += 2
        if name == "TT":
            if elements or groups:
                groups.append(Group(observed, tuple(elements)))
            try:
                observed, elements = parse_time(text), []
            except ValueError as exc:
                raise BodyError(f"TT: {exc}") from None
            continue
        elements.append(_ascii_element(name, text))
    groups.append(Group(observed, tuple(elements)))
    return Body(serial, sent, station, category, tuple(groups))


def _ascii_element(name: str, text: str) -> ElementValue:
    info = BY_ASCII.get(name)
    ident = info.ident if info else None
    if text == "M":
        return ElementValue(ident, name, None, problem="missing (M)")
    if ident in (RAIN_SERIES, LEVEL_SERIES, STATUS):
        try:
            return _element(ident, bytes.fromhex(text), 0)
        except ValueError:
            return ElementValue(ident, name, None, problem=f"{text!r} is not hex")
    try:
        value = float(text)
    except ValueError:
        return ElementValue(ident, name, None, problem=f"{text!r} is not a number")
    digits = sum(c.isdigit() for c in text)
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    raw = round(value * 10**decimals)
    return ElementValue(ident, name, value, digits=digits, raw=raw, decimals=decimals)


# -- encoding: the answers, and the round trips of the tests ---------------------------------


def encode_element(ident: int, definition: int, value: float | None) -> bytes:
    """One BCD element: identifier, definition byte, digits (FF first when negative; all
    F when missing)."""
    count, decimals = definition >> 3, definition & 0x07
    head = (ident.to_bytes(2, "big") if ident > 0xFF else bytes([ident])) + bytes([definition])
    if value is None:
        return head + b"\xff" * count
    raw = round(abs(value) * 10**decimals)
    width = 2 * (count - 1) if value < 0 else 2 * count
    digits = f"{raw:0{width}d}"
    if len(digits) > width:
        raise ValueError(f"{value} does not fit {count} bytes with {decimals} decimals")
    return head + (b"\xff" if value < 0 else b"") + bcd(digits)


def encode_hex(
    serial: int,
    sent: datetime,
    station: str | None = None,
    category: int = 0x48,
    groups: Sequence[tuple[datetime, Sequence[bytes]]] = (),
) -> bytes:
    """A HEX body: header, and for a report the station and its groups of elements (each
    element already encoded, e.g. by ``encode_element``)."""
    body = serial.to_bytes(2, "big") + bcd_time(sent)
    if station is None:
        return body
    body += bytes([STATION_MARK, STATION_MARK]) + bytes.fromhex(station) + bytes([category])
    for observed, elements in groups:
        body += bytes([TIME_MARK, TIME_MARK]) + bcd_time(observed, seconds=False)
        body += b"".join(elements)
    return body


def known(ident: int) -> bool:
    return ident in BY_IDENT
