"""One device's schedule, read and health counters; run by its port's owner thread.

Every read ends in the buffer, good or bad: a read that fails (DriverError) becomes one
bad-quality reading with value None per metric the device is known to report (learned
from its last answer; before any answer, one reading of the metric ``_device``), so the
controller sees the gap as data, not as silence.

Schedule: due every ``interval_s``; after consecutive failures the wait doubles, capped at
the port's ``backoff_max_s`` (``agent.bus.backoff.device_retry_s``), so a dead slave costs its
bus only one timeout per backoff step, and one good answer puts it back on its interval.

Health counters: failed reads by ``ErrorKind`` (timeout, crc, wrong_id, exception, garbage,
invalid_value, io; every kind present, 0 when none), plus ``internal`` (a bug),
``stuck`` (values reported stale as frozen) and ``counter_reset`` (a counter restarted
from 0: the device rebooted). A bad measurement in an answer counts under its own kind
(``invalid_value``, ``exception``).

Health registers: a driver that is a ``drivers.base.HealthReporter`` (a Modbus device with
``health`` registers) hands over the device's own health after each answered read; the
last value of each goes in the device's heartbeat entry as ``registers``, not among its
readings.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from agent.bus.backoff import DEVICE_BACKOFF_MAX_S, device_retry_s
from agent.bus.counter_state import CounterStore, MemoryCounterStore
from agent.bus.derived import Deriver
from drivers.base import (
    DeviceConfig,
    Driver,
    DriverError,
    ErrorKind,
    HealthReporter,
    Measurement,
)
from wire import DeviceHealth, Quality
from wire.clock import Clock

log = logging.getLogger(__name__)

FAILING_AFTER_FAILURES = 3  # consecutive failed reads before a device is "failing"
STALE_AFTER_INTERVALS = 3  # no good read for this many intervals: "stale"
DEVICE_METRIC = "_device"  # the metric of a failure before the device ever answered
INTERNAL_ERROR = "internal"  # a bug in a driver or in the agent, not a device fault
BAD_MEASUREMENT = "bad_measurement"  # a bad measurement whose driver gave no kind
STUCK = "stuck"  # measurements reported stale: the value froze (stuck_after_reads)
COUNTER_RESET = "counter_reset"  # a counter restarted from 0 (the device rebooted)
MAX_ERROR_TEXT = 512

# A sink stores one read: (device name, source timestamp ms, measurements).
Sink = Callable[[str, int, Sequence[Measurement]], None]


class DeviceState(StrEnum):
    STARTING = "starting"  # not read yet
    OK = "ok"
    FAILING = "failing"  # FAILING_AFTER_FAILURES consecutive failed reads
    STALE = "stale"  # reads answer, but no good value for STALE_AFTER_INTERVALS intervals


@dataclass
class _Counters:
    reads_ok: int = 0
    reads_failed: int = 0
    consecutive_failures: int = 0
    last_good_ms: int | None = None
    last_good_mono_s: float | None = None
    last_error: str | None = None


class DevicePoller:
    """Schedules and reads one device; ``health()`` may be called from any thread."""

    def __init__(
        self,
        config: DeviceConfig,
        sink: Sink,
        clock: Clock,
        *,
        backoff_max_s: float = DEVICE_BACKOFF_MAX_S,
        counters: CounterStore | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.interval_s = config.interval_s
        self.backoff_max_s = backoff_max_s
        self._driver: Driver | None = None
        self._health_reporter: HealthReporter | None = None
        self.next_due_s = clock.monotonic_s()
        self.poll_s = 0.0  # how long the last poll took, to its store (0 before the first)
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._errors: Counter[str] = Counter({str(kind): 0 for kind in ErrorKind})
        self._deriver = Deriver(
            config.name,
            counters if counters is not None else MemoryCounterStore(),
            stuck_after_reads=config.stuck_after_reads,
        )
        self._metrics: list[tuple[str, str]] = []  # (metric, unit) seen in the last answer
        self._registers: dict[str, float] = {}  # the device's health registers, as last read
        self._started_s = clock.monotonic_s()
        self._logged_state = DeviceState.STARTING

    @property
    def driver(self) -> Driver | None:
        return self._driver

    @driver.setter
    def driver(self, driver: Driver | None) -> None:
        """Set by the port's owner when the port opens (None when it closes). Whether the
        driver reads health registers is decided here once: a runtime Protocol check
        walks the class's attributes, too slow for every poll."""
        self._driver = driver
        self._health_reporter = driver if isinstance(driver, HealthReporter) else None

    # -- scheduling -----------------------------------------------------------------------

    def advance_schedule(self) -> None:
        """Next due one interval after the last; a poller far behind does not burst.

        After consecutive failures, the bounded backoff's wait instead, from now.
        """
        self.next_due_s = self.due_after_this_read_s(self._clock.monotonic_s())

    def due_after_this_read_s(self, now_s: float) -> float:
        """When the next read is due once this one is done (what ``advance_schedule``
        sets), without moving the schedule: the port owner's outlook asks it mid-read."""
        with self._lock:
            failures = self._counters.consecutive_failures
        wait_s = self.retry_s(failures)
        if wait_s > self.interval_s:
            return now_s + wait_s
        due_s = self.next_due_s + self.interval_s
        return now_s + self.interval_s if due_s < now_s else due_s

    def retry_s(self, consecutive_failures: int) -> float:
        """The wait before the next read after ``consecutive_failures`` failed ones."""
        return device_retry_s(
            consecutive_failures, interval_s=self.interval_s, max_s=self.backoff_max_s
        )

    # -- reading --------------------------------------------------------------------------

    def poll(self) -> str | None:
        """Read the device once and hand the result to the sink; never raises a
        DriverError. Returns the failure kind, or None when the device answered.

        A reading's ``ts_ms`` is the wall-clock time its answer was in (for a failed read:
        the time the read failed), taken on this thread: the "read" that the live lane's
        latency is measured from (bench.drain). ``poll_s`` becomes how long this poll held
        the bus until its readings went to the sink.
        """
        started_s = self._clock.monotonic_s()
        if self.driver is None:
            self.fail(ErrorKind.IO, f"device {self.name!r}: no driver (port not open)")
            return ErrorKind.IO
        registers: dict[str, float] = {}
        try:
            measurements = self.driver.read()
            ts_ms = self._clock.wall_ms()
            if self._health_reporter is not None:
                registers = self._health_reporter.health_registers()
        except DriverError as exc:
            self.poll_s = self._clock.monotonic_s() - started_s
            self.fail(exc.kind, str(exc))
            return exc.kind
        except Exception as exc:
            self.poll_s = self._clock.monotonic_s() - started_s
            log.exception("device %r: driver crashed while reading", self.name)
            self.fail(INTERNAL_ERROR, f"device {self.name!r}: driver crashed: {exc!r}")
            return INTERNAL_ERROR
        derived = self._deriver.derive(measurements)
        self._succeed(ts_ms, derived.measurements, derived.counter_resets, derived.stuck, registers)
        self.poll_s = self._clock.monotonic_s() - started_s
        self._sink(self.name, ts_ms, derived.measurements)
        return None

    def fail(self, kind: str, message: str) -> None:
        """Count a failed read and store bad readings for it, stamped now."""
        ts_ms = self._clock.wall_ms()
        with self._lock:
            counters = self._counters
            counters.reads_failed += 1
            counters.consecutive_failures += 1
            counters.last_error = message[:MAX_ERROR_TEXT]
            self._errors[str(kind)] += 1
            metrics = list(self._metrics) or [(DEVICE_METRIC, "")]
        self._log_transition(message)
        bad = [Measurement(m, None, unit, Quality.BAD, message) for m, unit in metrics]
        self._sink(self.name, ts_ms, bad)

    def _succeed(
        self,
        ts_ms: int,
        measurements: Sequence[Measurement],
        counter_resets: int,
        stuck: int,
        registers: dict[str, float],
    ) -> None:
        with self._lock:
            self._registers.update(registers)  # one refused now keeps its last value
            counters = self._counters
            counters.reads_ok += 1
            counters.consecutive_failures = 0
            self._metrics = [(m.metric, m.unit) for m in measurements]
            bad = [m for m in measurements if m.quality is not Quality.GOOD]
            for measurement in bad:
                if measurement.quality is Quality.STALE:
                    continue
                self._errors[str(measurement.error_kind or BAD_MEASUREMENT)] += 1
            if stuck:
                self._errors[STUCK] += stuck
            if counter_resets:
                self._errors[COUNTER_RESET] += counter_resets
            if bad:
                counters.last_error = (bad[0].error or f"{bad[0].metric}: {bad[0].quality}")[
                    :MAX_ERROR_TEXT
                ]
            if len(bad) < len(measurements):
                counters.last_good_ms = ts_ms
                counters.last_good_mono_s = self._clock.monotonic_s()
        self._log_transition(None)

    # -- health ---------------------------------------------------------------------------

    def state(self) -> DeviceState:
        with self._lock:
            counters = self._counters
            if counters.consecutive_failures >= FAILING_AFTER_FAILURES:
                return DeviceState.FAILING
            last_good = counters.last_good_mono_s
            if last_good is None and counters.reads_ok + counters.reads_failed == 0:
                return DeviceState.STARTING
            since_s = self._clock.monotonic_s() - (last_good or self._started_s)
            if since_s > STALE_AFTER_INTERVALS * self.interval_s:
                return DeviceState.STALE
            return DeviceState.OK if last_good is not None else DeviceState.STARTING

    def health(self) -> DeviceHealth:
        state = self.state()
        with self._lock:
            counters = self._counters
            return DeviceHealth(
                state=state.value,
                reads_ok=counters.reads_ok,
                reads_failed=counters.reads_failed,
                consecutive_failures=counters.consecutive_failures,
                errors=dict(self._errors),
                last_good_ms=counters.last_good_ms,
                last_error=counters.last_error,
                registers=dict(self._registers),
            )

    def _log_transition(self, reason: str | None) -> None:
        """Log once when the device starts failing and once when it recovers."""
        state = self.state()
        if state is self._logged_state:
            return
        if state is DeviceState.FAILING:
            log.warning("device %r is failing: %s", self.name, reason)
        elif state is DeviceState.OK and self._logged_state is not DeviceState.STARTING:
            log.info("device %r is reading again", self.name)
        elif state is DeviceState.STALE:
            log.warning(
                "device %r has no good value for %d intervals", self.name, STALE_AFTER_INTERVALS
            )
        self._logged_state = state
