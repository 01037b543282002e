"""Where the port owners' readings go: the buffer, or a bounded memory queue while the
buffer file cannot be written (disk full, read-only file system, a broken card).

While the buffer fails, readings wait in memory (at most ``[buffer]
memory_queue_max_readings``; beyond that the oldest are dropped and counted as
``memory_queue_full``), the error is logged once and reported in the heartbeat
(``buffer_error``), and every new reading and every housekeeping round tries the file
again. Once a write succeeds the queue is written in order, and the error is cleared (and
logged once). Nothing is published from memory: a reading is always in SQLite first.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from agent.buffer.store import Buffer
from drivers.base import Measurement

log = logging.getLogger(__name__)

MEMORY_QUEUE_FULL = "memory_queue_full"
INVALID_READING = "invalid_reading"

_Held = tuple[str, int, Sequence[Measurement]]


class Intake:
    def __init__(
        self, buffer: Buffer, *, memory_max_readings: int, on_stored: Callable[[], None]
    ) -> None:
        self._buffer = buffer
        self._memory_max_readings = memory_max_readings
        self._on_stored = on_stored
        self._lock = threading.Lock()
        self._held: deque[_Held] = deque()
        self._held_readings = 0
        self._error: str | None = None
        self._dropped: Counter[str] = Counter()

    @property
    def error(self) -> str | None:
        """Why the buffer cannot be written right now (None when it can)."""
        return self._error

    @property
    def held_readings(self) -> int:
        return self._held_readings

    def dropped(self) -> dict[str, int]:
        with self._lock:
            return dict(self._dropped)

    def store(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        """The port owners' sink: write one read to the buffer before anything else."""
        with self._lock:
            if self._held:
                self._flush()
            if self._held:
                self._hold((device, ts_ms, measurements))
                return
            if self._append(device, ts_ms, measurements):
                self._on_stored()

    def retry(self) -> None:
        """Try to write what waits in memory (housekeeping calls this every second)."""
        with self._lock:
            if self._held:
                self._flush()

    # -- under the lock -------------------------------------------------------------------

    def _append(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> bool:
        """True if stored; False if held in memory (or dropped as invalid)."""
        try:
            self._buffer.append(device, ts_ms, measurements)
        except ValidationError as exc:
            self._drop(INVALID_READING, len(measurements), f"device {device!r}: {exc}")
            return False
        except (sqlite3.Error, OSError) as exc:
            if self._error is None:
                log.error(
                    "cannot write the buffer %s: %s; keeping up to %d readings in memory",
                    self._buffer.path,
                    exc,
                    self._memory_max_readings,
                )
            self._error = f"cannot write the buffer {self._buffer.path}: {exc}"
            self._hold((device, ts_ms, measurements))
            return False
        if self._error is not None:
            log.info("the buffer %s can be written again", self._buffer.path)
            self._error = None
        return True

    def _flush(self) -> None:
        stored = False
        while self._held:
            device, ts_ms, measurements = self._held.popleft()
            self._held_readings -= len(measurements)
            if not self._append(device, ts_ms, measurements):
                if self._error is not None:  # held again: put it back in front
                    self._held.rotate(1)
                break
            stored = True
        if stored:
            self._on_stored()

    def _hold(self, item: _Held) -> None:
        self._held.append(item)
        self._held_readings += len(item[2])
        while self._held_readings > self._memory_max_readings and self._held:
            _, _, oldest = self._held.popleft()
            self._held_readings -= len(oldest)
            self._drop(MEMORY_QUEUE_FULL, len(oldest), "the memory queue is full")

    def _drop(self, reason: str, count: int, detail: str) -> None:
        if self._dropped[reason] == 0:
            log.error("dropping readings (%s): %s", reason, detail)
        self._dropped[reason] += count
