"""Device families the simulator can play, each a register map declared as data.

Add a family by writing a function that returns a ``DeviceModel`` and one line in
``MODELS``. FIELD-DEVICES.md lists the families still to come (rain gauges, richer
meteorological maps, inclinometers).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from firmware_sim.device import (
    Clock,
    DeviceModel,
    RegisterSpec,
    Signal,
    SimulatedDevice,
    constant,
)

WATER_LEVEL_FIRMWARE_VERSION = 0x0102
WATER_LEVEL_MEAN_CM = 250.0
WATER_LEVEL_SWING_CM = 20.0
WATER_LEVEL_PERIOD_S = 600.0
WATER_LEVEL_NOISE_CM = 0.5


def slow_sine_cm_x10(
    *, mean_cm: float, swing_cm: float, period_s: float, noise_cm: float, rng: random.Random
) -> Signal:
    """A level that drifts like a river: a slow sine plus a little sensor noise, in cm x10."""

    def signal(elapsed_s: float) -> int:
        level_cm = mean_cm + swing_cm * math.sin(2 * math.pi * elapsed_s / period_s)
        level_cm += rng.gauss(0.0, noise_cm)
        return round(level_cm * 10)

    return signal


def water_level_gauge(seed: int = 0) -> DeviceModel:
    """An RS-485 water-level gauge.

    Holding registers (protocol addresses):

    | address | name | value |
    | --- | --- | --- |
    | 0 | level | level in cm x10, u16 (about 2300-2700) |
    | 1 | status | 0 = ok |
    | 2 | firmware | version 0x0102 |
    """
    level = slow_sine_cm_x10(
        mean_cm=WATER_LEVEL_MEAN_CM,
        swing_cm=WATER_LEVEL_SWING_CM,
        period_s=WATER_LEVEL_PERIOD_S,
        noise_cm=WATER_LEVEL_NOISE_CM,
        rng=random.Random(seed),
    )
    return DeviceModel(
        model="water_level",
        holding={
            0: RegisterSpec("level", level),
            1: RegisterSpec("status", constant(0)),
            2: RegisterSpec("firmware", constant(WATER_LEVEL_FIRMWARE_VERSION)),
        },
    )


class WaterLevelGauge(SimulatedDevice):
    """A water-level gauge at ``slave``; see ``water_level_gauge`` for its register map."""

    def __init__(self, *, slave: int = 1, clock: Clock = time.monotonic, seed: int = 0) -> None:
        super().__init__(water_level_gauge(seed), slave=slave, clock=clock)


# Model name (as in scenarios and manifests) -> factory taking a noise seed.
MODELS: dict[str, Callable[[int], DeviceModel]] = {
    "water_level": water_level_gauge,
}
