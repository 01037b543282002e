"""SL651-2014 elements the gateway knows by name, function codes and station categories.

An element is an identifier byte (``FF xx``: an extended identifier), a definition byte
(high 5 bits: the value's byte count; low 3: its decimals) and the value. Decimals vary by
province (Guangdong sends ``39 1A``): the definition byte is trusted, never this table.
Identifiers not listed here are still read (skipped by their definition byte, or mapped
in config by their hex identifier).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Function(IntEnum):
    KEEP_ALIVE = 0x2F
    TEST = 0x30
    EQUAL_INTERVAL = 0x31
    TIMED = 0x32
    ADDITIONAL = 0x33  # 加报: an alarm, its trigger element first
    HOURLY = 0x34
    MANUAL = 0x35
    PICTURE = 0x36
    QUERY_REAL_TIME = 0x37
    QUERY_PERIOD = 0x38
    QUERY_ELEMENTS = 0x3A
    SET_CLOCK = 0x4A
    READ_CLOCK = 0x51


# Reports that carry observations (F1F1 station, F0F0 time, elements).
REPORTS = frozenset(
    {
        Function.TEST,
        Function.EQUAL_INTERVAL,
        Function.TIMED,
        Function.ADDITIONAL,
        Function.HOURLY,
        Function.MANUAL,
        Function.QUERY_REAL_TIME,
        Function.QUERY_PERIOD,
        Function.QUERY_ELEMENTS,
    }
)
FUNCTION_NAMES = {
    0x2F: "keep-alive",
    0x30: "test",
    0x31: "equal-interval",
    0x32: "timed",
    0x33: "additional (alarm)",
    0x34: "hourly",
    0x35: "manual",
    0x36: "picture",
    0x37: "real-time",
    0x38: "period",
    0x3A: "elements",
    0x4A: "set clock",
    0x51: "read clock",
}

CATEGORIES = {
    0x50: "P rain",
    0x48: "H river",
    0x4B: "K reservoir",
    0x5A: "Z gate",
    0x44: "D pump",
    0x54: "T tide",
    0x4D: "M soil",
    0x47: "G groundwater",
    0x51: "Q quality",
    0x49: "I intake",
    0x4F: "O outfall",
}

STATION_MARK = 0xF1  # F1 F1: station address and category follow
TIME_MARK = 0xF0  # F0 F0: an observation time (5 bytes BCD) follows
EXTENDED = 0xFF  # FF xx: an extended identifier


@dataclass(frozen=True, slots=True)
class ElementInfo:
    ident: int
    ascii: str
    name: str
    unit: str


ELEMENTS = (
    ElementInfo(0x20, "PJ", "current rainfall", "mm"),
    ElementInfo(0x1A, "P1", "1-h rainfall", "mm"),
    ElementInfo(0x1F, "PD", "daily rainfall", "mm"),
    ElementInfo(0x26, "PT", "accumulated rainfall (counter)", "mm"),
    ElementInfo(0xF4, "DRP", "12 x 5-min rainfall", "mm"),
    ElementInfo(0x39, "Z", "river/tide level", "m"),
    ElementInfo(0x3A, "ZB", "downstream level", "m"),
    ElementInfo(0x3B, "ZU", "upstream level", "m"),
    ElementInfo(0xF5, "DRZ1", "12 x 5-min level", "m"),
    ElementInfo(0x0E, "H", "groundwater depth", "m"),
    ElementInfo(0x27, "Q", "flow", "m3/s"),
    ElementInfo(0x37, "VJ", "velocity", "m/s"),
    ElementInfo(0x38, "VT", "supply voltage", "V"),
    ElementInfo(0x45, "ZT", "status bits", ""),
)
BY_IDENT = {e.ident: e for e in ELEMENTS}
BY_ASCII = {e.ascii: e for e in ELEMENTS}

RAIN_SERIES = 0xF4  # DRP: 12 bytes HEX, 0.1 mm each, FF bad
LEVEL_SERIES = 0xF5  # DRZ1: 12 x 2 bytes HEX, 0.01 m each, FFFF bad
STATUS = 0x45  # ZT: 4 bytes HEX, status bits
SERIES_STEP_MS = 5 * 60 * 1000
SERIES_COUNT = 12

# ZT bits that make other elements bad: a level meter or a flow meter at fault.
LEVEL_METER_FAULT_BIT = 6
FLOW_METER_FAULT_BIT = 5
LEVEL_ELEMENTS = frozenset({0x39, 0x3A, 0x3B, LEVEL_SERIES})
FLOW_ELEMENTS = frozenset({0x27, 0x37})
STATUS_BITS = {
    0: "mains lost",
    1: "battery low",
    2: "level alarm",
    3: "flow alarm",
    4: "quality alarm",
    5: "flow-meter fault",
    6: "level-meter fault",
    7: "door closed",
    8: "memory fault",
}


def element_label(ident: int) -> str:
    """How logs and errors name an element: ``Z (39H)``, or ``FFA0H``."""
    info = BY_IDENT.get(ident)
    code = f"{ident:02X}H" if ident <= 0xFF else f"{ident:04X}H"
    return f"{info.ascii} ({code})" if info else code


def parse_element_key(key: str) -> int:
    """A config's element: an ASCII name (``Z``) or a hex identifier (``39``, ``FFA0``)."""
    if key in BY_ASCII:
        return BY_ASCII[key].ident
    text = key.upper()
    if len(text) in (2, 4) and all(c in "0123456789ABCDEF" for c in text):
        ident = int(text, 16)
        if len(text) == 4 and ident >> 8 != EXTENDED:
            raise ValueError(f"element {key!r}: a 4-digit identifier is an extended one (FFxx)")
        return ident
    known = ", ".join(sorted(BY_ASCII))
    raise ValueError(f"element {key!r}: not a known name ({known}) nor a hex identifier (39, FFA0)")
