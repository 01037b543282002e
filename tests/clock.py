"""The one fake clock of the tests: time that moves only when the test moves it.

It is a ``wire.clock.Clock`` (``wall_ms``, ``monotonic_s``); calling it gives monotonic
seconds (for code that takes a ``Callable[[], float]``, such as the drivers' and the
simulator's clocks); ``sleep`` and ``advance`` move it (for code that takes a ``sleep``
callable). Its wall clock moves with its monotonic one, from ``wall_start_ms``: by default a
time far from 1970, so "since 1970" bugs show; ``FakeClock.from_now()`` starts it at the real
time (for code that compares with the system's clock, such as file times).
"""

from __future__ import annotations

from wire.clock import wall_ms

# 2023-11-14T22:13:20Z.
EPOCH_MS = 1_700_000_000_000


class FakeClock:
    def __init__(self, now_s: float = 1000.0, *, wall_start_ms: int = EPOCH_MS) -> None:
        self.now_s = now_s
        self._start_s = now_s
        self.wall_start_ms = wall_start_ms

    @classmethod
    def from_now(cls, now_s: float = 1000.0) -> FakeClock:
        return cls(now_s, wall_start_ms=wall_ms())

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def monotonic_s(self) -> float:
        return self.now_s

    def wall_ms(self) -> int:
        return self.wall_start_ms + round((self.now_s - self._start_s) * 1000)

    def __call__(self) -> float:
        return self.now_s
