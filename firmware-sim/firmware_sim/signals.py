"""Physical quantities over scenario time: what simulated sensors measure.

A ``Quantity`` maps scenario seconds to a value in physical units (cm, mm/h, mm). Models
turn quantities into register contents; scenarios (TOML) declare them by kind:

| kind | keys | value |
| --- | --- | --- |
| constant | value | value |
| sine | mean, swing, period_s, phase_s | mean + swing * sin(2 pi (t + phase_s) / period_s) |
| piecewise | points = [[t_s, v], ...] | linear between points, held before and after |
| lag | source, tau_s, gain, offset | offset + gain * source, through a first-order lag |
| integral | source, gain, bias, initial | initial + integral of (gain * source + bias) dt |
| sum | sources, offset | offset + the sum of the sources |

Any kind may add ``noise`` (standard deviation, drawn once per instant: the words of one
float never come from two draws). ``lag`` and ``integral`` step forward in time only.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

Quantity = Callable[[float], float]

_MAX_STEPS = 20_000  # per evaluation: a long jump is integrated in coarser steps


def constant(value: float) -> Quantity:
    return lambda _t: value


def sine(*, mean: float, swing: float, period_s: float, phase_s: float = 0.0) -> Quantity:
    return lambda t: mean + swing * math.sin(2 * math.pi * (t + phase_s) / period_s)


def piecewise(points: list[tuple[float, float]]) -> Quantity:
    if not points:
        raise ValueError("piecewise needs at least one point")
    ordered = sorted(points)
    times = [p[0] for p in ordered]

    def value(t: float) -> float:
        i = bisect.bisect_right(times, t)
        if i == 0:
            return ordered[0][1]
        if i == len(ordered):
            return ordered[-1][1]
        (t0, v0), (t1, v1) = ordered[i - 1], ordered[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    return value


def latched(quantity: Quantity) -> Quantity:
    """Evaluate ``quantity`` once per instant: asked twice for the same t, answer alike."""
    lock = threading.Lock()
    last: list[tuple[float, float]] = []

    def value(t: float) -> float:
        with lock:
            if last and last[0][0] == t:
                return last[0][1]
            result = quantity(t)
            last[:] = [(t, result)]
            return result

    return value


def noisy(quantity: Quantity, sigma: float, rng: random.Random) -> Quantity:
    if sigma <= 0:
        return quantity
    return latched(lambda t: quantity(t) + rng.gauss(0.0, sigma))


class _Stepper:
    """A state stepped forward in time by ``derivative(t, y)``: lags and integrals."""

    def __init__(
        self, initial: Callable[[], float], derivative: Callable[[float, float], float], dt: float
    ) -> None:
        self._initial = initial
        self._derivative = derivative
        self._dt = dt
        self._state: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def __call__(self, t: float) -> float:
        with self._lock:
            if self._state is None:
                self._state = (0.0, self._initial())
            now, y = self._state
            if t <= now:
                return y
            steps = min(_MAX_STEPS, max(1, math.ceil((t - now) / self._dt)))
            h = (t - now) / steps
            for _ in range(steps):
                y += h * self._derivative(now, y)
                now += h
            self._state = (t, y)
            return y


def lag(source: Quantity, *, tau_s: float, gain: float = 1.0, offset: float = 0.0) -> Quantity:
    if tau_s <= 0:
        raise ValueError("lag needs tau_s > 0")
    return _Stepper(
        lambda: offset + gain * source(0.0),
        lambda t, y: (offset + gain * source(t) - y) / tau_s,
        dt=tau_s / 20,
    )


def integral(
    source: Quantity, *, gain: float = 1.0, bias: float = 0.0, initial: float = 0.0
) -> Quantity:
    return _Stepper(lambda: initial, lambda t, _y: gain * source(t) + bias, dt=1.0)


def build_quantities(
    tables: Mapping[str, Mapping[str, Any]], *, seed: int = 0
) -> dict[str, Quantity]:
    """Quantities from a scenario's ``[signals.NAME]`` tables; a source must come first."""
    built: dict[str, Quantity] = {}
    rng = random.Random(seed)
    for name, table in tables.items():
        try:
            built[name] = noisy(_build(table, built), float(table.get("noise", 0.0)), rng)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"signal {name!r}: {exc!r}") from None
    return built


def _build(table: Mapping[str, Any], built: Mapping[str, Quantity]) -> Quantity:
    kind = table["kind"]

    def number(key: str, default: float | None = None) -> float:
        return float(table[key] if default is None else table.get(key, default))

    if kind == "constant":
        return constant(number("value"))
    if kind == "sine":
        return sine(
            mean=number("mean"),
            swing=number("swing"),
            period_s=number("period_s"),
            phase_s=number("phase_s", 0.0),
        )
    if kind == "piecewise":
        return piecewise([(float(t), float(v)) for t, v in table["points"]])
    if kind == "lag":
        return lag(
            built[table["source"]],
            tau_s=number("tau_s"),
            gain=number("gain", 1.0),
            offset=number("offset", 0.0),
        )
    if kind == "integral":
        return integral(
            built[table["source"]],
            gain=number("gain", 1.0),
            bias=number("bias", 0.0),
            initial=number("initial", 0.0),
        )
    if kind == "sum":
        sources = [built[s] for s in table["sources"]]
        offset = number("offset", 0.0)
        return lambda t: offset + sum(q(t) for q in sources)
    raise ValueError(f"unknown kind {kind!r}")
