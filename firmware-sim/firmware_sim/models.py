"""Modbus device families the simulator can play, each a register map declared as data.

Add a family by writing a function from a ``ModelContext`` to a ``DeviceModel`` and one
line in ``MODELS``. A context carries the noise seed, the physical quantities the device
measures (``inputs``: bound by a scenario, else each model's own quiet default) and the
model's options from the scenario file. Serial-line (sentence) families live in
``firmware_sim.sentence_devices``.
"""

from __future__ import annotations

import math
import random
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from firmware_sim.device import (
    Clock,
    DeviceModel,
    RegisterSpec,
    Setting,
    Signal,
    SimulatedDevice,
    constant,
)
from firmware_sim.measuring import Trigger, WriteLock
from firmware_sim.signals import Quantity, latched, noisy, sine

WATER_LEVEL_FIRMWARE_VERSION = 0x0102
WATER_LEVEL_MEAN_CM = 250.0
WATER_LEVEL_SWING_CM = 20.0
WATER_LEVEL_PERIOD_S = 600.0
WATER_LEVEL_NOISE_CM = 0.5


@dataclass(frozen=True, slots=True)
class ModelContext:
    seed: int = 0
    inputs: Mapping[str, Quantity] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def quantity(self, name: str, default: Quantity, *, noise: float = 0.0) -> Quantity:
        """The bound input ``name``, or ``default`` with ``noise`` (seeded) added."""
        if name in self.inputs:
            return self.inputs[name]
        return noisy(default, noise, random.Random(self.seed))


def slow_sine_cm_x10(
    *, mean_cm: float, swing_cm: float, period_s: float, noise_cm: float, rng: random.Random
) -> Signal:
    """A level that drifts like a river: a slow sine plus a little sensor noise, in cm x10."""
    level = noisy(sine(mean=mean_cm, swing=swing_cm, period_s=period_s), noise_cm, rng)
    return lambda elapsed_s: round(level(elapsed_s) * 10)


def scaled(quantity: Quantity, factor: float) -> Signal:
    return lambda t: round(quantity(t) * factor)


def f32_registers(
    name: str, quantity: Quantity, address: int, *, order: str = "CDAB", out_of_range: float
) -> dict[int, RegisterSpec]:
    """Two registers holding ``quantity`` as a float32, high word first (ABCD) or low (CDAB)."""
    value = latched(quantity)

    def word(index: int, number: Callable[[float], float]) -> Signal:
        def signal(t: float) -> int:
            data = struct.pack(">f", number(t))
            high, low = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")
            return (high, low)[index] if order == "ABCD" else (low, high)[index]

        return signal

    bad = struct.pack(">f", out_of_range)
    bad_words = [int.from_bytes(bad[:2], "big"), int.from_bytes(bad[2:], "big")]
    if order != "ABCD":
        bad_words.reverse()
    return {
        address + i: RegisterSpec(f"{name}[{i}]", word(i, value), out_of_range=bad_words[i])
        for i in range(2)
    }


def water_level_gauge(seed: int = 0, context: ModelContext | None = None) -> DeviceModel:
    """An RS-485 water-level gauge.

    Holding registers (protocol addresses):

    | address | name | value |
    | --- | --- | --- |
    | 0 | level | level in cm x10, u16 (about 2300-2700); out of range: 0xFFFF |
    | 1 | status | 0 = ok |
    | 2 | firmware | version 0x0102 |
    """
    context = context or ModelContext(seed=seed)
    default = sine(
        mean=WATER_LEVEL_MEAN_CM, swing=WATER_LEVEL_SWING_CM, period_s=WATER_LEVEL_PERIOD_S
    )
    level = context.quantity("level_cm", default, noise=WATER_LEVEL_NOISE_CM)
    return DeviceModel(
        model="water_level",
        holding={
            0: RegisterSpec("level", scaled(level, 10), out_of_range=0xFFFF),
            1: RegisterSpec("status", constant(0)),
            2: RegisterSpec("firmware", constant(WATER_LEVEL_FIRMWARE_VERSION)),
        },
    )


def level_transmitter(context: ModelContext) -> DeviceModel:
    """A cheap RS-485 level transmitter (FIELD-DEVICES.md): fc 03 and 06 only.

    | address | name | value |
    | --- | --- | --- |
    | 0x0000 | slave address | writable (06): answers at the new address afterwards |
    | 0x0001 | baud code | writable: 0=1200 ... 3=9600 ... 7=115200, then that baud |
    | 0x0002 | unit code | 1 = m |
    | 0x0003 | decimals | writable, 0-3 (option ``decimals``, default 2) |
    | 0x0004 | value | level in m as int16, shown with 0x0003's decimals |
    | 0x0005 / 0x0006 | range zero / full scale | 0 / 10 m (in the same decimals) |
    | 0x000C | zero offset | writable |
    """
    default = sine(
        mean=WATER_LEVEL_MEAN_CM, swing=WATER_LEVEL_SWING_CM, period_s=WATER_LEVEL_PERIOD_S
    )
    level_cm = context.quantity("level_cm", default, noise=WATER_LEVEL_NOISE_CM)
    decimals = int(context.options.get("decimals", 2))
    return DeviceModel(
        model="level_transmitter",
        holding={
            0x0000: RegisterSpec("slave_address", constant(0), True, setting=Setting.SLAVE_ADDRESS),
            0x0001: RegisterSpec("baud_code", constant(3), True, setting=Setting.BAUD_CODE),
            0x0002: RegisterSpec("unit_code", constant(1)),
            0x0003: RegisterSpec("decimals", constant(decimals), writable=True),
            0x0004: RegisterSpec(
                "value", scaled(level_cm, 10), out_of_range=0x7FFF, decimals_from=0x0003
            ),
            0x0005: RegisterSpec("range_zero", constant(0), decimals_from=0x0003),
            0x0006: RegisterSpec("range_full", constant(10_000), decimals_from=0x0003),
            0x000C: RegisterSpec("zero_offset", constant(0), writable=True),
        },
        functions=frozenset({3, 6}),
    )


def rain_gauge(context: ModelContext) -> DeviceModel:
    """A battery tipping-bucket rain gauge.

    | address | name | value |
    | --- | --- | --- |
    | 0x0000 | tips | u16 count since boot; rolls over at 65536, 0 after a reboot |
    | 0x0001 | mm per tip x10 | option ``mm_per_tip`` (default 0.2) |
    | 0x0002 | battery | volts x10 |
    | 0x0003 | board temp | degC x10, i16; 0x8000 if option ``temperature_sensor`` is false |
    | 0x0066 / 0x0067 | slave address / baud code | settings, far from the data |

    Input ``rain_total_mm`` (cumulative rainfall); default a steady 6 mm/h. Options
    ``initial_tips`` starts the count there (to meet a rollover soon). Sleeping on a quiet
    bus is a quirk of the device (``sleep_after_quiet_s``), not of its map.
    """
    mm_per_tip = float(context.options.get("mm_per_tip", 0.2))
    initial = int(context.options.get("initial_tips", 0))
    rain_mm = context.quantity("rain_total_mm", lambda t: 6.0 * t / 3600)
    temperature: Signal = (
        scaled(context.quantity("board_temp_c", constant_q(21.5)), 10)
        if context.options.get("temperature_sensor", True)
        else constant(0x8000)
    )
    return DeviceModel(
        model="rain_gauge",
        holding={
            0x0000: RegisterSpec(
                "tips", lambda t: initial + math.floor(rain_mm(t) / mm_per_tip + 1e-9), counter=True
            ),
            0x0001: RegisterSpec("mm_per_tip_x10", constant(round(mm_per_tip * 10))),
            0x0002: RegisterSpec("battery_v_x10", constant(126), out_of_range=0),
            0x0003: RegisterSpec("board_temp_x10", temperature, out_of_range=0x7FFF),
            0x0066: RegisterSpec("slave_address", constant(0), True, setting=Setting.SLAVE_ADDRESS),
            0x0067: RegisterSpec("baud_code", constant(3), True, setting=Setting.BAUD_CODE),
        },
    )


def constant_q(value: float) -> Quantity:
    return lambda _t: value


def slope_displacement(context: ModelContext) -> DeviceModel:
    """A slope displacement monitor (GNSS or wire extensometer).

    | address | name | value |
    | --- | --- | --- |
    | 0x0000 | status | 0 = ok |
    | 0x0100-0x0101 | displacement | mm, float32, low word first (CDAB) |
    | 0x0102-0x0103 | velocity | mm/day, float32 CDAB |

    Input ``slope_mm``; default a creep of 0.5 mm a day from 12 mm.
    """
    displacement = context.quantity("slope_mm", lambda t: 12.0 + 0.5 * t / 86_400, noise=0.01)

    def velocity(t: float) -> float:
        return (displacement(t) - displacement(max(0.0, t - 60.0))) / 60.0 * 86_400

    return DeviceModel(
        model="slope_displacement",
        holding={
            0x0000: RegisterSpec("status", constant(0)),
            **f32_registers("displacement_mm", displacement, 0x0100, out_of_range=1.0e6),
            **f32_registers("velocity_mm_per_day", velocity, 0x0102, out_of_range=1.0e6),
        },
    )


def inclinometer(context: ModelContext) -> DeviceModel:
    """A bridge inclinometer with a strain gauge.

    | address | name | value |
    | --- | --- | --- |
    | 0x0010 | error code | 0 = ok |
    | 0x0100-0x0101 | tilt X | degrees, float32 CDAB |
    | 0x0102-0x0103 | tilt Y | degrees, float32 CDAB |
    | 0x0104-0x0105 | strain | microstrain, i32, high word first (ABCD) |

    Inputs ``tilt_x_deg``, ``tilt_y_deg``, ``strain_ue``; defaults: small, daily sway.
    """
    tilt_x = context.quantity(
        "tilt_x_deg", sine(mean=0.43, swing=0.02, period_s=86_400), noise=0.002
    )
    tilt_y = context.quantity(
        "tilt_y_deg", sine(mean=-0.08, swing=0.01, period_s=86_400), noise=0.002
    )
    strain = latched(
        context.quantity("strain_ue", sine(mean=120, swing=40, period_s=3600), noise=2)
    )

    def strain_word(index: int) -> Signal:
        return lambda t: (round(strain(t)) & 0xFFFFFFFF) >> (16 * (1 - index)) & 0xFFFF

    return DeviceModel(
        model="inclinometer",
        holding={
            0x0010: RegisterSpec("error_code", constant(0)),
            **f32_registers("tilt_x_deg", tilt_x, 0x0100, out_of_range=720.0),
            **f32_registers("tilt_y_deg", tilt_y, 0x0102, out_of_range=720.0),
            0x0104: RegisterSpec("strain_hi", strain_word(0), out_of_range=0x7FFF),
            0x0105: RegisterSpec("strain_lo", strain_word(1), out_of_range=0xFFFF),
        },
    )


def inclinometer_triggered(context: ModelContext) -> DeviceModel:
    """An inclinometer that measures only when told to (FIELD-DEVICES.md).

    The ``inclinometer``'s map, plus:

    | address | name | value |
    | --- | --- | --- |
    | 0x0020 | trigger | write 1 (fc 06): start one measurement |
    | 0x0021 | ready | 0 while measuring (and before the first trigger), 1 when done |

    Tilt and strain show the last finished measurement (0 before the first one); the
    error code (0x0010) is 2 ("no measurement") until a measurement has finished since
    power-on, and 5 under the out-of-range fault. A measurement takes option
    ``measure_s`` (default 0.05 s).
    """
    plain = inclinometer(context)
    results = frozenset(a for a in plain.holding if a >= 0x0100)
    return DeviceModel(
        model="inclinometer_triggered",
        holding={
            **plain.holding,
            0x0010: RegisterSpec("error_code", constant(0), out_of_range=5),
            0x0021: RegisterSpec("ready", constant(0)),
        },
        trigger=Trigger(
            address=0x0020,
            ready_address=0x0021,
            error_address=0x0010,
            results=results,
            measure_s=float(context.options.get("measure_s", 0.05)),
        ),
    )


def weather_station(context: ModelContext) -> DeviceModel:
    """A meteorological sensor with a richer map (FIELD-DEVICES.md).

    Holding registers:

    | address | name | value |
    | --- | --- | --- |
    | 0x0000 | air temperature | degC x10, i16 |
    | 0x0001 | humidity | %RH x10 |
    | 0x0002 | pressure | hPa x10 |
    | 0x0066 / 0x0067 | slave address / baud code | settings |
    | 0x0068 | averaging | seconds, writable (default 60) |

    Input registers (health):

    | address | name | value |
    | --- | --- | --- |
    | 0x0000 | reboot count | option ``reboots`` (default 3) plus each simulated reboot |
    | 0x0001 | watchdog resets | option ``watchdog_resets`` (default 0) |
    | 0x0002 | supply voltage | V x10 (input ``supply_v``, default 12.1 V) |
    | 0x0003 | board temperature | degC x10, i16 (input ``board_temp_c``, default 23.5) |
    | 0x0004 | Modbus errors | exception answers it sent since it was made |

    Writes (06 / 16) are refused with exception 01 until coil 0 is written ON (fc 05); the
    device locks itself again after each write (option ``relocks``, default true) and on
    reboot. Real ones default to 19200 8E1 and wake slowly (``boot_delay_s``): a bus and
    quirks setting, not part of the map.
    """
    temperature = context.quantity(
        "air_temp_c", sine(mean=14.0, swing=6.0, period_s=86_400), noise=0.05
    )
    humidity = context.quantity("humidity_pct", sine(mean=70, swing=15, period_s=86_400))
    pressure = context.quantity("pressure_hpa", constant_q(1013.2))
    supply = context.quantity("supply_v", constant_q(12.1))
    board = context.quantity("board_temp_c", constant_q(23.5))
    return DeviceModel(
        model="weather_station",
        holding={
            0x0000: RegisterSpec("air_temp_x10", scaled(temperature, 10), out_of_range=0x7FFF),
            0x0001: RegisterSpec("humidity_x10", scaled(humidity, 10), out_of_range=0xFFFF),
            0x0002: RegisterSpec("pressure_x10", scaled(pressure, 10)),
            0x0066: RegisterSpec("slave_address", constant(0), True, setting=Setting.SLAVE_ADDRESS),
            0x0067: RegisterSpec("baud_code", constant(3), True, setting=Setting.BAUD_CODE),
            0x0068: RegisterSpec("averaging_s", constant(60), writable=True),
        },
        input={
            0x0000: RegisterSpec(
                "reboots", constant(int(context.options.get("reboots", 3))), stat="reboots"
            ),
            0x0001: RegisterSpec(
                "watchdog_resets", constant(int(context.options.get("watchdog_resets", 0)))
            ),
            0x0002: RegisterSpec("supply_v_x10", scaled(supply, 10)),
            0x0003: RegisterSpec("board_temp_x10", scaled(board, 10)),
            0x0004: RegisterSpec("modbus_errors", constant(0), stat="exceptions"),
        },
        write_lock=WriteLock(coil=0, relocks=bool(context.options.get("relocks", True))),
    )


class WaterLevelGauge(SimulatedDevice):
    """A water-level gauge at ``slave``; see ``water_level_gauge`` for its register map."""

    def __init__(self, *, slave: int = 1, clock: Clock = time.monotonic, seed: int = 0) -> None:
        super().__init__(water_level_gauge(seed), slave=slave, clock=clock, seed=seed)


# Model name (as in scenarios and manifests) -> factory.
MODELS: dict[str, Callable[[ModelContext], DeviceModel]] = {
    "water_level": lambda context: water_level_gauge(context.seed, context),
    "level_transmitter": level_transmitter,
    "rain_gauge": rain_gauge,
    "slope_displacement": slope_displacement,
    "inclinometer": inclinometer,
    "inclinometer_triggered": inclinometer_triggered,
    "weather_station": weather_station,
}
