"""Five-colour risk rules and their evaluation: pure, no I/O, time injected by the caller.

The same rules run on the gateway agent (an edge alert is raised even while the uplink is
slow) and on the controller, which pushes them to agents; so the rules are pydantic models
that travel as JSON (``RuleSet``, in ``wire.risk_rules`` and re-exported here), and
``RiskEvaluator`` depends on nothing but them.

A metric rule turns a *measure* of one device metric into a colour:

- ``value``: the reading itself (``absolute`` for a tilt that matters either way);
- ``rate_per_h``: change per hour between the oldest and newest reading in ``window_s``
  (a slope moving 5 mm/h matters more than its total), judged only once the readings span
  ``min_span_s`` (two noisy readings a second apart are not a rate);
- ``sum``: the sum of readings in ``window_s`` (rain gauges report mm per interval).

Colours rise at once (safety first). To fall, the measure must drop below the colour's
bound minus ``hysteresis`` and stay there for ``hold_s``, so a sensor hovering at a bound
does not flap. A risk point's colour is the worst of its metrics. Readings of bad or stale
quality and devices in maintenance never change a colour; a device of a red-capable point
with no good reading for ``stale_after_s`` is a *blind spot*, reported instead of silence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wire.risk_rules import (
    COLOURS_ASCENDING,
    Category,
    Colour,
    Measure,
    MetricRule,
    Name,
    RiskPointRules,
    RuleSet,
    Thresholds,
    worst,
)

__all__ = [
    "COLOURS_ASCENDING",
    "BlindSpot",
    "Category",
    "Colour",
    "ColourChange",
    "Event",
    "Measure",
    "MetricRule",
    "Name",
    "RiskEvaluator",
    "RiskPointRules",
    "RuleSet",
    "Thresholds",
    "min_colour",
    "worst",
]


@dataclass(frozen=True, slots=True)
class ColourChange:
    """A risk point's colour changed at ``at_ms`` because of ``device``/``metric``."""

    point: str
    before: Colour
    after: Colour
    at_ms: int
    device: str
    metric: str
    measure: float | None
    source_ts_ms: int | None  # the source timestamp of the reading that caused it

    @property
    def rising(self) -> bool:
        return self.after.rank > self.before.rank


@dataclass(frozen=True, slots=True)
class BlindSpot:
    """A device of a red-capable point went quiet (``blind``) or reports again."""

    point: str
    device: str
    blind: bool
    last_good_ms: int | None
    at_ms: int


Event = ColourChange | BlindSpot


@dataclass(slots=True)
class _MetricState:
    rule: MetricRule
    samples: deque[tuple[int, float]] = field(default_factory=deque)
    colour: Colour = Colour.GREEN
    lower_since_ms: int | None = None


@dataclass(slots=True)
class _PointState:
    rules: RiskPointRules
    metrics: list[_MetricState]
    colour: Colour = Colour.GREEN
    blind: set[str] = field(default_factory=set)


class RiskEvaluator:
    """Colours of risk points from readings; not thread-safe (callers hold a lock)."""

    def __init__(self, points: Sequence[RiskPointRules] | RuleSet) -> None:
        self._points: dict[str, _PointState] = {}
        self._by_input: dict[tuple[str, str], list[tuple[_PointState, _MetricState]]] = {}
        self._maintenance: set[str] = set()
        self._last_good_ms: dict[str, int] = {}
        self.set_points(points.points if isinstance(points, RuleSet) else points, now_ms=0)

    def set_points(self, points: Iterable[RiskPointRules], *, now_ms: int) -> list[Event]:
        """Replace the rules (a point added, changed or removed while running).

        A metric whose rule is unchanged keeps its readings and colour, and a point keeps
        its colour until the next reading or tick re-judges it. Returns the blind spots that
        end because their device (or point) is no longer watched.
        """
        before, self._points = self._points, {}
        for rules in points:
            old = before.pop(rules.id, None)
            if old is not None and old.rules == rules:
                self._points[rules.id] = old
                continue
            kept: dict[MetricRule, _MetricState] = {}
            for state in old.metrics if old is not None else []:
                kept.setdefault(state.rule, state)
            metrics = [kept.pop(m) if m in kept else _MetricState(m) for m in rules.metrics]
            point = _PointState(rules, metrics)
            if old is not None:
                point.colour = old.colour
                devices = {m.device for m in rules.metrics}
                point.blind = old.blind & devices
                before[rules.id] = _PointState(old.rules, [], blind=old.blind - devices)
            self._points[rules.id] = point
        self._by_input = {}
        for point in self._points.values():
            for state in point.metrics:
                key = (state.rule.device, state.rule.metric)
                self._by_input.setdefault(key, []).append((point, state))
        return [  # what is left of the old points: devices nobody watches any longer
            BlindSpot(pid, device, False, self._last_good_ms.get(device), now_ms)
            for pid, gone in before.items()
            for device in sorted(gone.blind)
        ]

    @property
    def points(self) -> dict[str, RiskPointRules]:
        return {pid: p.rules for pid, p in self._points.items()}

    def colour_of(self, point: str) -> Colour:
        return self._points[point].colour

    def colours(self) -> dict[str, Colour]:
        return {pid: p.colour for pid, p in self._points.items()}

    def restore(
        self, point: str, colour: Colour, *, cause: tuple[str, str] | None, blind: Iterable[str]
    ) -> None:
        """Take up a point's state judged before a restart: its colour, held by the metric
        that set it (``cause``, (device, metric), or else the first able to reach it), and
        its blind devices. The colour falls by the rules' hysteresis and hold time, the hold
        starting afresh; a blind device that reports again ends its blind spot."""
        state = self._points.get(point)
        if state is None:
            return
        able = [m for m in state.metrics if _reaches(m.rule, colour)]
        setter = next((m for m in able if (m.rule.device, m.rule.metric) == cause), None)
        if setter is None and able:
            setter = able[0]
        if setter is not None and colour.rank > setter.colour.rank:
            setter.colour, setter.lower_since_ms = colour, None
        state.colour = worst(m.colour for m in state.metrics)
        state.blind = {d for d in blind if d in {m.rule.device for m in state.metrics}}

    def hold_at_least(self, point: str, colour: Colour, *, cause: tuple[str, str]) -> Colour | None:
        """An alarm judged elsewhere (a station's own alarm report, a gateway's edge alert)
        puts the point at ``colour`` at least, held by the metric ``cause`` names if its
        rule can reach that colour: it then falls by the rules' hysteresis and hold time,
        like any colour. Returns the point's colour before (None: no such point)."""
        state = self._points.get(point)
        if state is None:
            return None
        before = state.colour
        setter = next((m for m in state.metrics if (m.rule.device, m.rule.metric) == cause), None)
        if (
            setter is not None
            and _reaches(setter.rule, colour)
            and colour.rank > setter.colour.rank
        ):
            setter.colour, setter.lower_since_ms = colour, None
        state.colour = worst(m.colour for m in state.metrics)
        return before

    def watching(self, device: str, metric: str) -> list[str]:
        """The points with a rule on ``device``'s ``metric``."""
        found = self._by_input.get((device, metric), [])
        return list(dict.fromkeys(point.rules.id for point, _ in found))

    def watches(self, device: str, metric: str) -> bool:
        return (device, metric) in self._by_input

    def set_maintenance(self, device: str, in_maintenance: bool) -> None:
        """A device in maintenance raises nothing and is never a blind spot."""
        if in_maintenance:
            self._maintenance.add(device)
        else:
            self._maintenance.discard(device)

    def in_maintenance(self, device: str) -> bool:
        return device in self._maintenance

    def observe(
        self, device: str, metric: str, ts_ms: int, value: float | None, quality: str = "good"
    ) -> list[Event]:
        """Take one live reading (source time ``ts_ms``); return the changes it causes."""
        targets = self._by_input.get((device, metric))
        if not targets or quality != "good" or value is None or device in self._maintenance:
            return []
        events: list[Event] = []
        self._last_good_ms[device] = max(ts_ms, self._last_good_ms.get(device, ts_ms))
        for point, state in targets:
            rule = state.rule
            state.samples.append((ts_ms, abs(value) if rule.absolute else value))
            if device in point.blind:
                point.blind.discard(device)
                events.append(BlindSpot(point.rules.id, device, False, ts_ms, ts_ms))
            _prune(state, ts_ms)
            _judge(state, ts_ms)
            change = _recolour(
                point,
                ts_ms,
                device=device,
                metric=metric,
                measure=_measure(state, ts_ms),
                source_ts_ms=ts_ms,
            )
            if change is not None:
                events.append(change)
        return events

    def tick(self, now_ms: int) -> list[Event]:
        """Let time pass: colours whose hold time ran out fall; quiet devices go blind."""
        events: list[Event] = []
        for point in self._points.values():
            for state in point.metrics:
                if state.rule.device in self._maintenance:
                    continue
                _prune(state, now_ms)
                _judge(state, now_ms)
            change = _recolour(point, now_ms, device="", metric="", measure=None, source_ts_ms=None)
            if change is not None:
                events.append(change)
            if point.rules.red_capable:
                events.extend(self._blind_spots(point, now_ms))
        return events

    def _blind_spots(self, point: _PointState, now_ms: int) -> list[Event]:
        events: list[Event] = []
        for device in sorted({m.rule.device for m in point.metrics}):
            if device in self._maintenance or device in point.blind:
                continue
            # A device never heard from is judged from the first tick on.
            last_good = self._last_good_ms.setdefault(device, now_ms)
            if now_ms - last_good > point.rules.stale_after_s * 1000:
                point.blind.add(device)
                events.append(BlindSpot(point.rules.id, device, True, last_good, now_ms))
        return events


def _prune(state: _MetricState, now_ms: int) -> None:
    rule = state.rule
    if rule.measure is Measure.VALUE:
        while len(state.samples) > 1:
            state.samples.popleft()
        return
    oldest_ms = now_ms - rule.window_s * 1000
    samples = state.samples
    if rule.measure is Measure.SUM:  # readings of the last window_s, (now - window, now]
        while samples and samples[0][0] <= oldest_ms:
            samples.popleft()
        return
    # A rate keeps one reading at or before the window's start as its base.
    while len(samples) >= 2 and samples[1][0] <= oldest_ms:
        samples.popleft()


def _measure(state: _MetricState, now_ms: int) -> float | None:
    samples, rule = state.samples, state.rule
    if not samples:
        return None
    if rule.measure is Measure.VALUE:
        return samples[-1][1]
    if rule.measure is Measure.SUM:
        return sum(v for _, v in samples)
    (first_ms, first), (last_ms, last) = samples[0], samples[-1]
    span_s = (last_ms - first_ms) / 1000
    if span_s < max(rule.min_span_s, 1e-3):
        return None
    rate = (last - first) / span_s * 3600
    return abs(rate) if rule.absolute else rate


def _judge(state: _MetricState, now_ms: int) -> None:
    """Move one metric's colour: up at once, down after hysteresis and hold time."""
    rule = state.rule
    measure = _measure(state, now_ms)
    if measure is None:
        if rule.measure is not Measure.SUM or state.samples:
            return  # nothing yet, or not enough to judge a rate: keep the colour
        measure = 0.0  # a sum over an empty window is zero
    raw = rule.thresholds.colour_for(measure)
    held = rule.thresholds.colour_for(measure + rule.hysteresis)
    # Within the hysteresis band below a bound, the colour already held is kept.
    target = worst([raw, min_colour(held, state.colour)])
    if target.rank >= state.colour.rank:
        state.colour = target
        state.lower_since_ms = None
        return
    if state.lower_since_ms is None:
        state.lower_since_ms = now_ms
    if now_ms - state.lower_since_ms >= rule.hold_s * 1000:
        state.colour = target
        state.lower_since_ms = None


def _reaches(rule: MetricRule, colour: Colour) -> bool:
    return any(b is not None and c.rank >= colour.rank for c, b in rule.thresholds.bounds())


def min_colour(a: Colour, b: Colour) -> Colour:
    return a if a.rank <= b.rank else b


def _recolour(
    point: _PointState,
    at_ms: int,
    *,
    device: str,
    metric: str,
    measure: float | None,
    source_ts_ms: int | None,
) -> ColourChange | None:
    colour = worst(m.colour for m in point.metrics)
    if colour is point.colour:
        return None
    before, point.colour = point.colour, colour
    if not device:  # a change on a tick: name the metric that now sets the colour
        setter = max(point.metrics, key=lambda m: m.colour.rank)
        device, metric = setter.rule.device, setter.rule.metric
    return ColourChange(
        point.rules.id, before, colour, at_ms, device, metric, measure, source_ts_ms
    )
