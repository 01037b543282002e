"""Time, injected: the agent and the controller ask a ``Clock``, so tests can hold time still
or move it (``tests/clock.py`` has the one fake). ``wall_ms()`` is the system clock's UTC
epoch milliseconds, for code that takes a plain ``now_ms`` callable."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def wall_ms(self) -> int:
        """UTC epoch milliseconds: source timestamps of readings, times shown to people."""
        ...

    def monotonic_s(self) -> float:
        """Seconds on a clock that never jumps: schedules, uptime, timeouts, ages."""
        ...


def wall_ms() -> int:
    """The system's UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SystemClock:
    def wall_ms(self) -> int:
        return wall_ms()

    def monotonic_s(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
