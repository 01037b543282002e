"""What each simulated station measures and reports, as data over scenario quantities.

- ``sl651_river`` (sl651): a 32H timed report every ``period_s`` (60): Z river level (m),
  PT accumulated rain (mm), PJ current rain (mm), VT supply (V); a 33H when Z rises past
  ``alarm_level_m`` (15.0).
- ``sl651_rain`` (sl651): 32H with PJ, P1 1-h rain, PT, VT; a 33H when PJ rises past
  ``alarm_rain_mm`` (10.0).
- ``hj212_air`` (hj212): 2011 real-time every ``period_s`` (60): a34004 PM2.5, a34002
  PM10, a21026 SO2, a01001 air temperature.
- ``hj212_water`` (hj212): 2061 hourly (Avg, Min, Max) every ``period_s`` (3600): w01001
  pH, w01009 dissolved O2, w01010 water temperature, w21003 NH3-N.

Inputs (bind them to scenario signals): ``level_m``, ``rain_mm_per_h`` (both river and
rain stations), ``pm25``, ``so2``, ``ph``, ``nh3n``. Unbound, each is a quiet default.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from firmware_sim.models import ModelContext
from firmware_sim.signals import Quantity, constant, sine
from firmware_sim.stations.sl651 import RAIN, RIVER

# (time s, out_of_range) -> [(element name or factor code, value)]
Readings = Callable[[float, bool], list[tuple[str, float | None]]]
IMPOSSIBLE = 99_999.0  # what a broken sensor reads under the out_of_range fault


@dataclass(frozen=True, slots=True)
class StationModel:
    model: str
    protocol: str  # "sl651" or "hj212"
    readings: Readings
    period_s: float
    # sl651: the station category and the alarm (element, bound) of its 33H reports
    category: int = RIVER
    alarm: tuple[str, float] | None = None
    # hj212: system code, the upload's CN and the fields of each factor
    st: str = "22"
    cn: str = "2011"
    fields: tuple[str, ...] = ("Rtd",)
    inputs: Mapping[str, Quantity] = field(default_factory=dict)


def _rain_total(rain_mm_per_h: Quantity) -> Quantity:
    """Accumulated rain (mm) from a rate: a running sum, stepped forward in time only."""
    state = {"t": 0.0, "total": 0.0}

    def total(t: float) -> float:
        if t > state["t"]:
            state["total"] += max(0.0, rain_mm_per_h(state["t"])) * (t - state["t"]) / 3600
            state["t"] = t
        return state["total"]

    return total


def _number(options: Mapping[str, Any], key: str, default: float) -> float:
    return float(options.get(key, default))


def sl651_river(context: ModelContext) -> StationModel:
    level = context.quantity("level_m", sine(mean=12.0, swing=0.5, period_s=900), noise=0.002)
    rain = context.quantity("rain_mm_per_h", constant(0.0))
    total = _rain_total(rain)
    rng = random.Random(context.seed)

    def readings(t: float, broken: bool) -> list[tuple[str, float | None]]:
        z = IMPOSSIBLE if broken else round(level(t), 3)
        return [
            ("Z", z),
            ("PT", round(total(t), 1) % 100_000),
            ("PJ", round(max(0.0, rain(t)) / 12, 1)),  # the rain of the last 5 minutes
            ("VT", round(12.6 - rng.random() * 0.2, 2)),
        ]

    return StationModel(
        "sl651_river",
        "sl651",
        readings,
        _number(context.options, "period_s", 60.0),
        category=RIVER,
        alarm=("Z", _number(context.options, "alarm_level_m", 15.0)),
    )


def sl651_rain(context: ModelContext) -> StationModel:
    rain = context.quantity("rain_mm_per_h", constant(0.0))
    total = _rain_total(rain)
    rng = random.Random(context.seed)

    def readings(t: float, broken: bool) -> list[tuple[str, float | None]]:
        rate = max(0.0, rain(t))
        return [
            ("PJ", IMPOSSIBLE if broken else round(rate / 12, 1)),
            ("P1", round(rate, 1)),
            ("PT", round(total(t), 1) % 100_000),
            ("VT", round(12.4 - rng.random() * 0.2, 2)),
        ]

    return StationModel(
        "sl651_rain",
        "sl651",
        readings,
        _number(context.options, "period_s", 60.0),
        category=RAIN,
        alarm=("PJ", _number(context.options, "alarm_rain_mm", 10.0)),
    )


def hj212_air(context: ModelContext) -> StationModel:
    rng = random.Random(context.seed)
    pm25 = context.quantity("pm25", sine(mean=35.0, swing=10.0, period_s=3600), noise=1.0)
    so2 = context.quantity("so2", constant(8.0), noise=0.3)

    def readings(t: float, broken: bool) -> list[tuple[str, float | None]]:
        return [
            ("a34004", IMPOSSIBLE if broken else round(max(0.0, pm25(t)), 1)),
            ("a34002", round(max(0.0, pm25(t)) * 1.7, 1)),
            ("a21026", round(max(0.0, so2(t)), 2)),
            ("a01001", round(26.0 + rng.gauss(0, 0.3), 1)),
        ]

    return StationModel(
        "hj212_air", "hj212", readings, _number(context.options, "period_s", 60.0), st="22"
    )


def hj212_water(context: ModelContext) -> StationModel:
    rng = random.Random(context.seed)
    ph = context.quantity("ph", constant(7.2), noise=0.05)
    nh3n = context.quantity("nh3n", constant(0.5), noise=0.02)

    def readings(t: float, broken: bool) -> list[tuple[str, float | None]]:
        return [
            ("w01001", IMPOSSIBLE if broken else round(ph(t), 2)),
            ("w01009", round(8.0 + rng.gauss(0, 0.1), 2)),
            ("w01010", round(21.0 + rng.gauss(0, 0.2), 1)),
            ("w21003", round(max(0.0, nh3n(t)), 3)),
        ]

    return StationModel(
        "hj212_water",
        "hj212",
        readings,
        _number(context.options, "period_s", 3600.0),
        st="21",
        cn="2061",
        fields=("Avg", "Min", "Max"),
    )


STATION_MODELS: dict[str, Callable[[ModelContext], StationModel]] = {
    "sl651_river": sl651_river,
    "sl651_rain": sl651_rain,
    "hj212_air": hj212_air,
    "hj212_water": hj212_water,
}
STATION_PROTOCOLS = ("sl651", "hj212")
MODEL_PROTOCOLS = {
    "sl651_river": "sl651",
    "sl651_rain": "sl651",
    "hj212_air": "hj212",
    "hj212_water": "hj212",
}
MODEL_OPTIONS = frozenset({"period_s", "alarm_level_m", "alarm_rain_mm"})
