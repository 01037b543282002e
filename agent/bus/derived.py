"""What the agent adds to a device's answer: counter increments and frozen-value checks.

- A counter measurement (``Measurement.counter``: a rain gauge's tip count) is followed by
  ``<metric>_increment``: the counts since the previous read times the scale (mm of rain),
  computed with ``drivers.counters.counter_increment`` so a rollover or a reboot neither
  invents nor loses rain. The previous raw count comes from a ``CounterStore`` (persisted:
  a gateway restart loses nothing). The first read ever has no baseline: no increment.
- With the device's ``stuck_after_reads``, a good value that has not changed for that many
  reads in a row is reported ``stale`` (value kept): a frozen sensor. Counters are exempt
  (no rain is no change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from agent.bus.counter_state import CounterStore
from drivers.base import Measurement
from drivers.counters import counter_increment
from wire import Quality
from wire.readable import measured

INCREMENT_SUFFIX = "_increment"


@dataclass(frozen=True, slots=True)
class Derived:
    measurements: list[Measurement]
    counter_resets: int  # counters seen restarting from 0 (the device rebooted)
    stuck: int  # measurements reported stale because their value froze


class Deriver:
    """Per device: turns raw answers into what is stored. Used on the port owner thread."""

    def __init__(
        self, device: str, counters: CounterStore, *, stuck_after_reads: int | None = None
    ) -> None:
        self._device = device
        self._counters = counters
        self._stuck_after_reads = stuck_after_reads
        self._repeats: dict[str, tuple[float, int]] = {}  # metric -> (value, reads seen)

    def derive(self, measurements: Sequence[Measurement]) -> Derived:
        out: list[Measurement] = []
        resets = stuck = 0
        for measurement in measurements:
            if measurement.counter is not None and measurement.quality is Quality.GOOD:
                out.append(measurement)
                increment, reset = self._increment(measurement)
                resets += reset
                if increment is not None:
                    out.append(increment)
                continue
            checked = self._check_frozen(measurement)
            stuck += checked is not measurement
            out.append(checked)
        return Derived(out, resets, stuck)

    def _increment(self, measurement: Measurement) -> tuple[Measurement | None, int]:
        counter = measurement.counter
        assert counter is not None
        metric = measurement.metric
        previous = self._counters.previous(self._device, metric, counter.modulus)
        # Stored first: a crash before the buffer write loses this increment, never doubles it.
        self._counters.remember(self._device, metric, counter.raw, counter.modulus)
        if previous is None:
            return None, 0
        counts = counter_increment(previous, counter.raw, counter.modulus)
        reset = int(counter.raw < previous and counts == counter.raw)
        value = measured(counts * counter.scale)  # 1.2 mm, not 1.2000000000000002
        return Measurement(metric + INCREMENT_SUFFIX, value, measurement.unit), reset

    def _check_frozen(self, measurement: Measurement) -> Measurement:
        limit = self._stuck_after_reads
        if limit is None or measurement.value is None or measurement.quality is not Quality.GOOD:
            self._repeats.pop(measurement.metric, None)
            return measurement
        last = self._repeats.get(measurement.metric)
        reads = last[1] + 1 if last is not None and last[0] == measurement.value else 1
        self._repeats[measurement.metric] = (measurement.value, reads)
        if reads < limit:
            return measurement
        error = (
            f"device {self._device!r}: {measurement.metric} unchanged for {reads} reads"
            f" (stuck_after_reads = {limit})"
        )
        return replace(measurement, quality=Quality.STALE, error=error)
