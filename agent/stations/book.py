"""What the gateway knows of the stations that push to it: reports in, health out.

The listener's thread hands every ``StationReport`` and ``Problem`` of its links to the
``StationBook``, which

- stores each report's observations through the agent's sink at the station's own
  observation time, counters turned into increments (``agent.bus.derived``, the same
  persisted state as a polled rain gauge's), an alarm (SL651 33H) handed over first so
  it goes on the alarm lane ahead of the readings;
- keeps each station's health as the heartbeat reports a device's: ``starting``, ``ok``,
  ``stale`` (no report for 3 report intervals), ``failing`` (3 frames refused in a row:
  wrong CRC, wrong password, a body that does not parse), counters by kind, the last good
  report's time, the last error, and the station's clock offset (its send time minus our
  receipt: ``clock_offsets_ms``);
- counts what each listener refused, by kind, and logs a stranger (an address or MN not
  configured, or a wrong password) once per listener and station, an element no metric
  takes once per station and element: a misconfigured station in the field must not fill
  the log.

Thread-safe: the listener thread writes, the heartbeat reads.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.bus.counter_state import CounterStore, MemoryCounterStore
from agent.bus.derived import Deriver
from drivers.base import ErrorKind, Measurement
from drivers.stations import Alarm, Problem, ProblemKind, StationDeviceConfig, StationReport
from wire import DeviceHealth, Quality
from wire.clock import Clock

log = logging.getLogger(__name__)

FAILING_AFTER_REFUSED = 3  # frames of a station refused in a row: it is failing
STALE_AFTER_INTERVALS = 3
MAX_ERROR_TEXT = 512
MAX_LOGGED_STRANGERS = 1000  # strangers remembered for "logged once"; then counted only
# Stations in one heartbeat at most: ~150 bytes each, and a payload is bounded (256 KiB).
MAX_HEARTBEAT_STATIONS = 500
URGENCY = {"failing": 0, "stale": 1, "starting": 2}  # the rest: changed since reported
# Refusals that say the station itself is wrong (not the line between us).
STATION_FAULTS = frozenset(
    {ProblemKind.CRC, ProblemKind.MALFORMED, ProblemKind.WRONG_PASSWORD, ProblemKind.TRUNCATED}
)
OVER_LIMIT = "over_limit"  # HJ212 flag T: good values over the analyser's range, counted

# (device, observation time ms, measurements): the agent's sink, as for polled devices.
Sink = Callable[[str, int, Sequence[Measurement]], None]
# (station config, the alarm): the agent raises it on the alarm lane.
AlarmSink = Callable[[StationDeviceConfig, Alarm], None]


@dataclass
class _Station:
    config: StationDeviceConfig
    deriver: Deriver
    reports: int = 0
    refused: int = 0
    refused_in_a_row: int = 0
    last_good_ms: int | None = None
    last_heard_s: float | None = None  # any frame, keep-alives too
    last_report_s: float | None = None  # a report with observations
    last_error: str | None = None
    clock_offset_ms: int | None = None
    errors: Counter[str] = field(default_factory=Counter)
    logged_unmapped: set[str] = field(default_factory=set)
    logged_state: str = "starting"


class StationBook:
    """The stations of every listener, by device name; see the module docstring."""

    def __init__(
        self,
        stations: Sequence[StationDeviceConfig],
        *,
        sink: Sink,
        alarm: AlarmSink,
        clock: Clock,
        counters: CounterStore | None = None,
    ) -> None:
        store = counters if counters is not None else MemoryCounterStore()
        self._stations = {
            c.name: _Station(c, Deriver(c.name, store, stuck_after_reads=c.stuck_after_reads))
            for c in stations
        }
        self._sink = sink
        self._alarm = alarm
        self._clock = clock
        self._lock = threading.Lock()
        self._started_s = clock.monotonic_s()
        self._refused: dict[str, Counter[str]] = {}  # listener -> kind -> count
        self._reported: dict[str, str] = {}  # station -> state in the last heartbeat
        self._cursor = 0  # where the next heartbeat's turn of ok stations starts
        self._logged_strangers: set[tuple[str, str, str]] = set()

    @property
    def names(self) -> list[str]:
        return list(self._stations)

    # -- from the listener thread -----------------------------------------------------------

    def take(self, listener: str, report: StationReport) -> None:
        """A configured station was heard: its alarm first, then its readings."""
        station = self._stations.get(report.device)
        if station is None:  # the link matched a station this book does not hold: a bug
            log.error("listener %s: a report of unknown device %r", listener, report.device)
            return
        now_ms, now_s = self._clock.wall_ms(), self._clock.monotonic_s()
        if report.alarm is not None:
            self._alarm(station.config, report.alarm)
        for observation in report.observations:
            derived = station.deriver.derive(observation.measurements)
            self._sink(report.device, observation.ts_ms, derived.measurements)
            with self._lock:
                self._count_measurements(station, derived.measurements, derived.counter_resets)
        with self._lock:
            station.reports += 1
            station.refused_in_a_row = 0
            station.last_heard_s = now_s
            if report.over_limit:
                station.errors[OVER_LIMIT] += report.over_limit
            if report.observations:
                station.last_good_ms = max(o.ts_ms for o in report.observations)
                station.last_report_s = now_s
            if report.sent_ms is not None:
                station.clock_offset_ms = report.sent_ms - now_ms
            unmapped = [u for u in report.unmapped if u not in station.logged_unmapped]
            station.logged_unmapped.update(unmapped)
        if unmapped:
            log.info(
                "%s: %s sent %s that no metric takes (logged once)",
                listener,
                station.config.describe(),
                ", ".join(unmapped),
            )
        self._log_state(station)

    def refuse(self, listener: str, problem: Problem, peer: str) -> None:
        """Bytes a listener did not take: counted by kind; a stranger logged once."""
        with self._lock:
            self._refused.setdefault(listener, Counter())[problem.kind.value] += 1
            station = self._stations.get(problem.device) if problem.device else None
            if station is not None:
                station.errors[problem.kind.value] += 1
                station.last_error = problem.detail[:MAX_ERROR_TEXT]
                if problem.kind in STATION_FAULTS:
                    station.refused += 1
                    station.refused_in_a_row += 1
            stranger = problem.kind in (ProblemKind.UNKNOWN_STATION, ProblemKind.WRONG_PASSWORD)
            key = (listener, problem.station or peer, problem.kind.value)
            first = stranger and key not in self._logged_strangers
            if first and len(self._logged_strangers) < MAX_LOGGED_STRANGERS:
                self._logged_strangers.add(key)
            else:
                first = False
        if first:
            log.warning(
                "%s: %s (from %s; nothing answered, nothing stored; logged once)",
                listener,
                problem.detail,
                peer,
            )
        if station is not None:
            self._log_state(station)

    def _count_measurements(
        self, station: _Station, measurements: Sequence[Measurement], counter_resets: int
    ) -> None:
        for measurement in measurements:
            if measurement.quality is Quality.BAD:
                station.errors[str(measurement.error_kind or ErrorKind.INVALID_VALUE)] += 1
                station.last_error = (measurement.error or "")[:MAX_ERROR_TEXT]
            elif measurement.quality is Quality.UNCERTAIN:
                station.errors["uncertain"] += 1
        if counter_resets:
            station.errors["counter_reset"] += counter_resets

    # -- for the heartbeat ------------------------------------------------------------------

    def state(self, name: str) -> str:
        with self._lock:
            return self._state(self._stations[name])

    def _state(self, station: _Station) -> str:
        if station.refused_in_a_row >= FAILING_AFTER_REFUSED:
            return "failing"
        reported_s = station.last_report_s
        since_s = self._clock.monotonic_s() - (
            reported_s if reported_s is not None else self._started_s
        )
        if since_s > STALE_AFTER_INTERVALS * station.config.interval_s:
            return "stale"
        return "ok" if station.last_heard_s is not None else "starting"

    def health(self) -> dict[str, DeviceHealth]:
        """Every station's health (``status.json``): errors hold only the kinds seen."""
        with self._lock:
            return {name: self._entry(s, self._state(s)) for name, s in self._stations.items()}

    def heartbeat_health(
        self, max_entries: int = MAX_HEARTBEAT_STATIONS
    ) -> dict[str, DeviceHealth]:
        """The stations one heartbeat carries: all of them when they fit ``max_entries``;
        else first those not ``ok`` or whose state changed since they were last reported
        (failing, stale, starting, changed), then, in turn, the others, so each is reported
        every few heartbeats. The controller keeps a device's last reported state, and its
        freshness comes from its readings, so the heartbeat stays under the payload bound
        (2,000 stations would not fit 256 KiB) without hiding a station in trouble."""
        with self._lock:
            states = {name: self._state(s) for name, s in self._stations.items()}
            names = list(self._stations)
            if len(names) > max_entries:
                urgent = sorted(
                    (n for n in names if states[n] != "ok" or states[n] != self._reported.get(n)),
                    key=lambda n: URGENCY.get(states[n], len(URGENCY)),
                )[:max_entries]
                chosen = set(urgent)
                others = [n for n in names if n not in chosen]
                room = max_entries - len(urgent)
                if others and room > 0:
                    start = self._cursor % len(others)
                    turn = (others[start:] + others[:start])[:room]
                    self._cursor = start + len(turn)
                    urgent += turn
                names = urgent
            entries = {n: self._entry(self._stations[n], states[n]) for n in names}
            self._reported.update((n, states[n]) for n in names)
            return entries

    @staticmethod
    def _entry(station: _Station, state: str) -> DeviceHealth:
        return DeviceHealth(
            state=state,
            reads_ok=station.reports,
            reads_failed=station.refused,
            consecutive_failures=station.refused_in_a_row,
            errors=dict(station.errors),
            last_good_ms=station.last_good_ms,
            last_error=station.last_error,
        )

    def clock_offsets_ms(self) -> dict[str, int]:
        """Each station's clock minus ours, as its last frame showed it."""
        with self._lock:
            return {
                name: s.clock_offset_ms
                for name, s in self._stations.items()
                if s.clock_offset_ms is not None
            }

    def refused(self) -> dict[str, dict[str, int]]:
        """What each listener refused, by kind."""
        with self._lock:
            return {listener: dict(kinds) for listener, kinds in self._refused.items()}

    def _log_state(self, station: _Station) -> None:
        """Once when a station starts failing, once when it reports again."""
        with self._lock:
            state = self._state(station)
            before, station.logged_state = station.logged_state, state
        if state == before:
            return
        if state == "failing":
            name = station.config.describe()
            why = (station.last_error or "").removeprefix(f"{name}: ")
            log.warning(
                "%s is failing: %d frames refused in a row: %s", name, FAILING_AFTER_REFUSED, why
            )
        elif state == "ok" and before != "starting":
            log.info("%s reports again", station.config.describe())
