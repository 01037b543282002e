"""Run many simulated stations from one thread: one selector, one heap of timers.

Thousands of stations (the benchmark's 2,000) each hold a TCP link or a pty; a thread each
would cost more than the gateway under test. ``StationRunner`` is a context manager: on
entry it opens every pty station's pty and starts the thread; on exit it hangs up every
link and stops.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType

from firmware_sim.stations.station import SimStation

log = logging.getLogger(__name__)

MAX_WAIT_S = 0.5  # the loop looks at every change of faults at least this often
_STOP_JOIN_S = 3.0


class StationRunner:
    """Serve ``stations`` until the context exits; see the module docstring."""

    def __init__(
        self, stations: Iterable[SimStation], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stations = list(stations)
        self.by_name = {s.name: s for s in self.stations}
        self.selector = selectors.DefaultSelector()
        self.crashes = 0
        self._clock = clock
        self._timers: list[tuple[float, int, SimStation]] = []
        self._order = itertools.count()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._poked: set[SimStation] = set()

    def __enter__(self) -> StationRunner:
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        for station in self.stations:
            station.attach(self)
            self._schedule(station, station.wake_at)
        self._thread = threading.Thread(target=self._serve, name="sim-stations", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self.poke()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_JOIN_S)
            self._thread = None
        for station in self.stations:
            station.detach()
        self.selector.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def poke(self, station: SimStation | None = None) -> None:
        """Wake the loop: ``station``'s state changed from outside (a report asked for, a
        fault switched), or stop."""
        if station is not None:
            with self._lock:
                self._poked.add(station)
        with contextlib.suppress(OSError):  # already awake (the pipe is full), or stopped
            os.write(self._wake_w, b"x")

    def _schedule(self, station: SimStation, at_s: float) -> None:
        station.wake_at = at_s
        heapq.heappush(self._timers, (at_s, next(self._order), station))

    def _serve(self) -> None:
        while not self._stopping.is_set():
            wait_s = MAX_WAIT_S
            if self._timers:
                wait_s = min(MAX_WAIT_S, max(0.0, self._timers[0][0] - self._clock()))
            touched: set[SimStation] = set()
            for key, mask in self.selector.select(wait_s):
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    continue
                station: SimStation = key.data
                self._event(station, mask)
                touched.add(station)
            if self._stopping.is_set():
                return
            with self._lock:
                touched |= self._poked
                self._poked.clear()
            now = self._clock()
            while self._timers and self._timers[0][0] <= now:
                at_s, _, station = heapq.heappop(self._timers)
                if at_s == station.wake_at:
                    touched.add(station)
            for station in touched:
                self._guarded(station, lambda s: self._schedule(s, s.on_timer(self._clock())))

    def _event(self, station: SimStation, mask: int) -> None:
        self._guarded(station, lambda s: s.on_event(mask))

    def _guarded(self, station: SimStation, action: Callable[[SimStation], None]) -> None:
        try:
            action(station)
        except Exception:
            self.crashes += 1
            log.exception("station %s: crashed; going on", station.name)
