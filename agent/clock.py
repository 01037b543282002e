"""Time, injected: the agent asks a Clock, so tests can hold time still or move it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def wall_ms(self) -> int:
        """UTC epoch milliseconds: source timestamps of readings."""
        ...

    def monotonic_s(self) -> float:
        """Seconds on a clock that never jumps: schedules, uptime, timeouts."""
        ...


@dataclass(frozen=True, slots=True)
class SystemClock:
    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_s(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
