"""The one fake clock of the tests: time that moves only when the test moves it.

It is a ``wire.clock.Clock`` (``wall_ms``, ``monotonic_s``); calling it gives monotonic
seconds (for code that takes a ``Callable[[], float]``, such as the drivers' and the
simulator's clocks); ``sleep`` advances it (for code that takes a ``sleep`` callable).
"""

from __future__ import annotations

# 2023-11-14T22:13:20Z: a wall clock far from 1970, so "since 1970" bugs show.
EPOCH_MS = 1_700_000_000_000


class FakeClock:
    def __init__(self, now_s: float = 1000.0, *, epoch_ms: int = EPOCH_MS) -> None:
        self.now_s = now_s
        self.epoch_ms = epoch_ms

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    sleep = advance

    def monotonic_s(self) -> float:
        return self.now_s

    def wall_ms(self) -> int:
        return self.epoch_ms + int(self.now_s * 1000)

    def __call__(self) -> float:
        return self.now_s
