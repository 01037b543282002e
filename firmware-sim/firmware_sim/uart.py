"""What a UART makes of characters framed for another: the simulator's model of a wrong line.

On a real RS-485 line the master's UART and each device's frame every character the same
way (baud, data bits, parity, stop bits) or they do not understand each other. The
simulator hears bytes cleanly (a pty or a socket carries them at any setting), so it
compares the master's framing with the device's and acts as the device and the master's
UART would:

| the master, against the device | the device | the master reads |
| --- | --- | --- |
| another baud | hears noise: silent | - |
| other data bits or parity | framing/parity errors on every byte: silent | - |
| 1 stop bit, the device wants 2 | a framing error on every byte: silent | - |
| 2 stop bits, the device sends 1 | answers | every byte but the last as 0x00 |

The last row: a UART that wants two stop bits finds the next character's start bit where
its second stop bit should be, a framing error on every byte followed at once by another;
Linux hands such a byte on as 0x00, so the answer fails its CRC or checksum. (Many UARTs
check only the first stop bit and would read it: the simulator takes the strict view, so a
wrong setting shows on the bench before it does on a hillside.) What a device pushes
unasked over a line framed otherwise reaches the master as garbage (every byte 0x00).

``MasterFraming`` is what is *known* of the master: RFC 2217 says everything; a Linux pty
keeps the baud, the stop bits and odd parity but drops "parity on" and forces 8 data bits
(drivers/tty/pty.c, ``pty_set_termios``), so from a pty none and even parity look alike.
"""

from __future__ import annotations

import termios
from dataclasses import dataclass
from enum import StrEnum

PARITIES = ("N", "E", "O", "M", "S")
_CMSPAR = 0o10000000000  # Linux's "mark/space parity" flag; Python's termios lacks it
_TERMIOS_BAUDS = {
    getattr(termios, f"B{baud}"): baud
    for baud in (
        *(300, 600, 1200, 2400, 4800, 9600, 19200, 38400),
        *(57600, 115200, 230400, 460800, 921600),
    )
}


class Mismatch(StrEnum):
    """How the master's framing differs from a device's; the name is the stats counter."""

    NONE = "none"
    BAUD = "wrong_baud"  # the device hears noise: silent
    DATA_BITS = "wrong_data_bits"  # every byte misframed: silent
    PARITY = "wrong_parity"  # parity/framing errors on every byte: silent
    STOP_BITS = "wrong_stop_bits"  # the device wants 2, the master sends 1: silent
    GARBLED_ANSWER = "garbled_answers"  # the master wants 2, the device sends 1: garbled

    @property
    def silences_the_device(self) -> bool:
        return self not in (Mismatch.NONE, Mismatch.GARBLED_ANSWER)


@dataclass(slots=True)
class MismatchCounts:
    """Requests a device could not hear, and answers the master could not read, by cause.
    Part of a bus's and a line's stats: the simulator's own framing errors counter."""

    wrong_baud: int = 0
    wrong_data_bits: int = 0
    wrong_parity: int = 0
    wrong_stop_bits: int = 0
    garbled_answers: int = 0

    def count(self, mismatch: Mismatch) -> None:
        if mismatch is not Mismatch.NONE:
            setattr(self, mismatch.value, getattr(self, mismatch.value) + 1)


@dataclass(frozen=True, slots=True)
class Framing:
    """How a device frames its characters (its UART settings)."""

    baud: int
    parity: str = "N"
    stop_bits: float = 1
    data_bits: int = 8


@dataclass(frozen=True, slots=True)
class MasterFraming:
    """What is known of the master's framing; None where the transport does not say."""

    baud: int | None
    parities: frozenset[str]  # the parities it may be using (a pty: {"N", "E"} look alike)
    stop_bits: float | None
    data_bits: int | None
    source: str  # "pty" or "rfc2217", for logs

    @classmethod
    def exactly(
        cls, baud: int, parity: str, stop_bits: float, data_bits: int, *, source: str
    ) -> MasterFraming:
        return cls(baud, frozenset({parity}), stop_bits, data_bits, source)


def check_settings(what: str, *, parity: str, stopbits: float, bytesize: int) -> None:
    """ValueError naming ``what`` (a bus, a line) when a setting is none a UART has."""
    if parity not in PARITIES:
        raise ValueError(f"{what}: parity {parity!r} is not one of {', '.join(PARITIES)}")
    if stopbits not in (1, 1.5, 2):
        raise ValueError(f"{what}: stopbits {stopbits!r} is not 1, 1.5 or 2")
    if bytesize not in (5, 6, 7, 8):
        raise ValueError(f"{what}: bytesize {bytesize!r} is not 5, 6, 7 or 8")


def judge(master: MasterFraming | None, device: Framing) -> Mismatch:
    """How the device and the master get on (``None``: nothing known, take it as right)."""
    if master is None:
        return Mismatch.NONE
    if master.baud is not None and master.baud != device.baud:
        return Mismatch.BAUD
    if master.data_bits is not None and master.data_bits != device.data_bits:
        return Mismatch.DATA_BITS
    if device.parity not in master.parities:
        return Mismatch.PARITY
    if master.stop_bits is not None:
        if master.stop_bits < device.stop_bits:
            return Mismatch.STOP_BITS
        if master.stop_bits > device.stop_bits:
            return Mismatch.GARBLED_ANSWER
    return Mismatch.NONE


def as_the_master_reads(data: bytes, mismatch: Mismatch) -> bytes:
    """What the master's UART delivers of ``data`` sent by the device (see the table)."""
    if mismatch is Mismatch.NONE or mismatch is Mismatch.STOP_BITS or not data:
        return data  # a device sending 2 stop bits to a master wanting 1: idle line, fine
    if mismatch is Mismatch.GARBLED_ANSWER:
        return bytes(len(data) - 1) + data[-1:]
    return bytes(len(data))


def from_termios(cflag: int, speed: int) -> MasterFraming:
    """The master's framing from a pty's line settings: what the kernel kept of them."""
    if cflag & _CMSPAR:
        parities = frozenset({"M" if cflag & termios.PARODD else "S"})
    elif cflag & termios.PARODD:
        parities = frozenset({"O"})
    else:  # PARENB is always cleared on a pty: none and even look alike
        parities = frozenset({"N", "E"})
    return MasterFraming(
        baud=_TERMIOS_BAUDS.get(speed),
        parities=parities,
        stop_bits=2 if cflag & termios.CSTOPB else 1,
        data_bits=None,  # the kernel forces CS8 on a pty
        source="pty",
    )


def read_pty_framing(fd: int) -> MasterFraming | None:
    """The framing the client set on its end of the pty (``fd``: either side)."""
    try:
        attributes = termios.tcgetattr(fd)
    except termios.error:
        return None
    return from_termios(attributes[2], attributes[5])
