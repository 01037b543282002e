"""Serial-line devices that speak ASCII sentences: polled, or pushing on their own.

NMEA-style sentences ``$TYPE,field,...*CS\\r\\n``: CS is the XOR of the bytes between
``$`` and ``*``, as two hex digits. Written apart from drivers/ (each side checks the
other). Families:

| model | style | wire |
| --- | --- | --- |
| gas_detector | poll | ``$POLL,<addr>*CS`` -> ``$GAS,<addr>,<lel_pct>,<status>*CS`` |
| smoke_detector | push | ``$SMK,<addr>,<alarm 0/1>,<obscuration_pct_per_m>*CS`` (1) |
| inclinometer_ascii | push | ``X=+00.430\\r\\nY=-00.084\\r\\n`` every ``period_s`` (0.1 s) |
| inclinometer_framed | poll, push | ``STX +00.430 -00.084 ETB CS $`` (2) |

(1) every ``period_s`` (option, 0.5 s), and at once when the alarm changes.
(2) ``firmware_sim.stx_frames``: one frame answers ``#DATA\\r\\n`` or, on a shared line,
the address byte 0xB0 + address then ENQ (0x05); ``#READ\\r\\n`` streams a frame every
``period_s`` (0.1 s) until ``#STOP\\r\\n`` or a reboot. A frame carries no address, so
``reply_as_slave`` changes nothing it sends.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from firmware_sim.device import Clock
from firmware_sim.faults import Faults, mangle
from firmware_sim.models import ModelContext
from firmware_sim.signals import Quantity, constant, latched, sine
from firmware_sim.stx_frames import CORRUPT_MASK, stx_frame, xor_checksum


def nmea_checksum(body: bytes) -> int:
    """XOR of every byte of ``body`` (what lies between ``$`` and ``*``)."""
    return xor_checksum(body)


def sentence(body: str, *, corrupt: bool = False) -> bytes:
    """``$body*CS\\r\\n``; ``corrupt`` sends a wrong checksum."""
    raw = body.encode("ascii")
    check = nmea_checksum(raw) ^ (CORRUPT_MASK if corrupt else 0)
    return b"$" + raw + b"*" + f"{check:02X}".encode() + b"\r\n"


def parse_sentence(line: bytes) -> str | None:
    """The body of a whole ``$...*CS`` line whose checksum is right, else None."""
    line = line.strip()
    if not line.startswith(b"$") or len(line) < 4 or line[-3:-2] != b"*":
        return None
    body = line[1:-3]
    try:
        ok = int(line[-2:], 16) == nmea_checksum(body)
        return body.decode("ascii") if ok else None
    except (ValueError, UnicodeDecodeError):
        return None


# Values at scenario time t, made into what the device sends (address, values) -> body.
Render = Callable[[str, float, bool], list[str]]


@dataclass(frozen=True, slots=True)
class SentenceModel:
    model: str
    style: str  # "poll" or "push"
    render: Render  # (address, t, out_of_range) -> the lines' bodies (without framing)
    # "nmea": $...*CS sentences; "bare": lines as rendered (inclinometer_ascii);
    # "stx": STX text ETB CS $ frames, asked by command or ENQ (inclinometer_framed)
    framing: str = "nmea"
    period_s: float = 1.0  # push (or a stream started by command): seconds between sentences
    alarm: Callable[[float], bool] | None = None  # push at once when this changes
    commands: frozenset[str] = frozenset()  # command lines it understands (stx framing)


@dataclass(slots=True)
class SentenceStats:
    requests: int = 0
    responses: int = 0
    pushed: int = 0
    reboots: int = 0


class SentenceDevice:
    """One sentence device on a simulated serial line; called by the line's thread only."""

    def __init__(
        self,
        model: SentenceModel,
        *,
        address: int = 1,
        clock: Clock = time.monotonic,
        time_scale: float = 1.0,
        response_time_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.address = address
        self.faults = Faults()
        self.stats = SentenceStats()
        self.response_time_s = response_time_s
        self.rng = random.Random(seed)
        self._clock = clock
        self._time_scale = time_scale
        self._made_s = clock()
        self._next_push_s = self._made_s
        self._stuck: list[str] | None = None
        self._last_alarm: bool | None = None
        self._streaming = False  # stx framing: between #READ and #STOP (or a reboot)

    @property
    def slave(self) -> int:
        """Where the manifest's ``slave`` comes from: the device's address on its line."""
        return self.address

    @property
    def streaming(self) -> bool:
        """Whether a ``#READ`` started a stream (stx framing) that no ``#STOP`` ended."""
        return self._streaming

    def reboot(self) -> None:
        """Restart: a stream started by ``#READ`` stops (the device forgets it)."""
        self.stats.reboots += 1
        self._streaming = False
        self._next_push_s = self._clock()

    def answer(self, body: str) -> bytes | None:
        """The answer to a polled command (checked sentence ``body``), or None."""
        if (
            self.model.style != "poll"
            or self.model.framing != "nmea"
            or body != f"POLL,{self.address}"
        ):
            return None
        return self._respond()

    def command(self, text: str) -> bytes | None:
        """A bare command line (``#DATA``, ``#READ``, ``#STOP``): the answer, or None."""
        if text not in self.model.commands:
            return None
        if text == "#READ":
            self._streaming = True
            self._next_push_s = self._clock()
            return None
        if text == "#STOP":
            self._streaming = False
            return None
        return self._respond()  # #DATA: measure once

    def enquire(self, device_id: int) -> bytes | None:
        """The answer to an ENQ poll for ``device_id``: one frame if that is this device."""
        if self.model.framing != "stx" or device_id != self.address:
            return None
        return self._respond()

    def next_push_s(self) -> float | None:
        return self._next_push_s if self.model.style == "push" or self._streaming else None

    def _respond(self) -> bytes | None:
        self.stats.requests += 1
        faults = self.faults
        if faults.silent:
            return None
        self.stats.responses += 1
        return self._frame(faults)

    def push(self) -> bytes | None:
        """What to send now (when ``next_push_s`` has come, or an alarm changed)."""
        if self.next_push_s() is None:
            return None  # a polled device speaks only when asked
        now = self._clock()
        alarm = self.model.alarm(self._t()) if self.model.alarm else None
        changed = alarm is not None and self._last_alarm is not None and alarm != self._last_alarm
        self._last_alarm = alarm
        if now < self._next_push_s and not changed:
            return None
        self._next_push_s = max(self._next_push_s + self.model.period_s, now)
        faults = self.faults
        if faults.silent:
            return None
        self.stats.pushed += 1
        return self._frame(faults)

    def _t(self) -> float:
        return (self._clock() - self._made_s) * self._time_scale

    def _frame(self, faults: Faults) -> bytes:
        address = str(self.address if faults.reply_as_slave is None else faults.reply_as_slave)
        if faults.stuck:
            if self._stuck is None:
                self._stuck = self.model.render(address, self._t(), faults.out_of_range)
            bodies = self._stuck
        else:
            self._stuck = None
            bodies = self.model.render(address, self._t(), faults.out_of_range)
        if self.model.framing == "nmea":
            data = b"".join(sentence(b, corrupt=faults.corrupt_crc) for b in bodies)
        elif self.model.framing == "stx":
            data = b"".join(stx_frame(b, corrupt=faults.corrupt_crc) for b in bodies)
        else:
            data = b"".join(b.encode("ascii") + b"\r\n" for b in bodies)
        return mangle(data, faults, self.rng)


def gas_detector(context: ModelContext) -> SentenceModel:
    """Combustible gas in %LEL (input ``gas_lel_pct``); status 0 ok, 1 alarm (>= 20 %LEL)."""
    lel = latched(context.quantity("gas_lel_pct", constant(2.0), noise=0.3))

    def render(address: str, t: float, out_of_range: bool) -> list[str]:
        value = 150.0 if out_of_range else max(0.0, lel(t))
        return [f"GAS,{address},{value:.1f},{1 if value >= 20 else 0}"]

    return SentenceModel("gas_detector", "poll", render)


def smoke_detector(context: ModelContext) -> SentenceModel:
    """Smoke obscuration in %/m (input ``smoke_pct_per_m``); alarm at option ``alarm_at``."""
    smoke = latched(context.quantity("smoke_pct_per_m", constant(0.1), noise=0.01))
    alarm_at = float(context.options.get("alarm_at", 4.0))
    period_s = float(context.options.get("period_s", 0.5))

    def render(address: str, t: float, out_of_range: bool) -> list[str]:
        value = 99.99 if out_of_range else max(0.0, smoke(t))
        return [f"SMK,{address},{1 if value >= alarm_at else 0},{value:.2f}"]

    return SentenceModel(
        "smoke_detector", "push", render, period_s=period_s, alarm=lambda t: smoke(t) >= alarm_at
    )


def _tilts(context: ModelContext) -> tuple[Quantity, Quantity, float]:
    """An inclinometer's X and Y tilt in degrees and its frame period (option, 0.1 s)."""
    tilt_x = context.quantity(
        "tilt_x_deg", sine(mean=0.43, swing=0.02, period_s=86_400), noise=0.002
    )
    tilt_y = context.quantity(
        "tilt_y_deg", sine(mean=-0.08, swing=0.01, period_s=86_400), noise=0.002
    )
    return tilt_x, tilt_y, float(context.options.get("period_s", 0.1))


def inclinometer_ascii(context: ModelContext) -> SentenceModel:
    """Free-running tilt in degrees (inputs ``tilt_x_deg``, ``tilt_y_deg``), 10 a second."""
    tilt_x, tilt_y, period_s = _tilts(context)

    def render(address: str, t: float, out_of_range: bool) -> list[str]:
        x, y = (720.0, 720.0) if out_of_range else (tilt_x(t), tilt_y(t))
        return [f"X={x:+07.3f}", f"Y={y:+07.3f}"]

    return SentenceModel("inclinometer_ascii", "push", render, framing="bare", period_s=period_s)


def inclinometer_framed(context: ModelContext) -> SentenceModel:
    """Tilt in degrees (inputs ``tilt_x_deg``, ``tilt_y_deg``) in STX frames, asked or streamed.

    Answers ``#DATA`` and an ENQ poll for its address with one frame; ``#READ`` streams a
    frame every ``period_s`` (option, 0.1 s) until ``#STOP``.
    """
    tilt_x, tilt_y, period_s = _tilts(context)

    def render(address: str, t: float, out_of_range: bool) -> list[str]:
        x, y = (720.0, 720.0) if out_of_range else (tilt_x(t), tilt_y(t))
        return [f"{x:+07.3f} {y:+07.3f}"]

    return SentenceModel(
        "inclinometer_framed",
        "poll",
        render,
        framing="stx",
        period_s=period_s,
        commands=frozenset({"#DATA", "#READ", "#STOP"}),
    )


SENTENCE_MODELS: Mapping[str, Callable[[ModelContext], SentenceModel]] = {
    "gas_detector": gas_detector,
    "smoke_detector": smoke_detector,
    "inclinometer_ascii": inclinometer_ascii,
    "inclinometer_framed": inclinometer_framed,
}

__all__ = ["SENTENCE_MODELS", "Quantity", "SentenceDevice", "SentenceModel", "sentence"]
