"""Simulated devices for driver tests: each served on a real pty, with the config to read it.

Built with firmware_sim directly (drivers never import it; tests may import both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from edgewatch.waiting import wait_until
from firmware_sim import ModelContext, SerialLine, SimulatedBus, SimulatedDevice
from firmware_sim.device import Quirks
from firmware_sim.models import MODELS
from firmware_sim.sentence_devices import SENTENCE_MODELS, SentenceDevice

FAULT_TIMEOUT_S = 0.15  # the device's response timeout in fault tests: cheap to wait out


@dataclass
class Served:
    """A simulated device on a pty, as a driver test needs it."""

    port_path: str
    device: SimulatedDevice | SentenceDevice
    answers: Callable[[], int]  # how many answers the simulator has sent so far
    settle: Callable[[], None]  # after switching faults: wait until no old-style answer is due
    baud: int = 9600
    parity: str = "N"


@contextmanager
def modbus_device(
    model: str,
    *,
    slave: int = 1,
    mode: str = "rtu",
    baud: int = 9600,
    options: dict[str, Any] | None = None,
    quirks: Quirks | None = None,
    clock: Callable[[], float] | None = None,
) -> Iterator[Served]:
    context = ModelContext(seed=slave, options=options or {})
    extra: dict[str, Any] = {"clock": clock} if clock else {}
    device = SimulatedDevice(
        MODELS[model](context), slave=slave, quirks=quirks or Quirks(), **extra
    )
    with SimulatedBus([device], mode=mode, baud=baud) as bus:
        yield Served(bus.port_path, device, lambda: bus.stats.responses, lambda: None, baud)


@contextmanager
def sentence_device(
    model: str,
    *,
    address: int = 1,
    options: dict[str, Any] | None = None,
    neighbours: tuple[int, ...] = (),
) -> Iterator[Served]:
    """The device at ``address``, with devices of the same model at ``neighbours`` on its line."""

    def make(at: int) -> SentenceDevice:
        context = ModelContext(seed=at, options=options or {})
        return SentenceDevice(SENTENCE_MODELS[model](context), address=at)

    device = make(address)
    with SerialLine([device, *(make(at) for at in neighbours)]) as line:

        def settle() -> None:
            if device.next_push_s() is None:
                return  # a polled device only ever answers the next question
            cycles = line.stats.cycles
            wait_until(lambda: line.stats.cycles >= cycles + 2, timeout_s=2, message="a cycle")

        def answers() -> int:
            return line.stats.responses + line.stats.pushed

        yield Served(line.port_path, device, answers, settle)


@dataclass
class Case:
    """One driver against one simulated device, and what each fault must look like."""

    id: str
    serve: Callable[[], Any]  # a context manager yielding Served
    config: dict[str, Any]
    metrics: list[str]
    push: bool = False
    out_of_range_metric: str = ""
    # fault -> the ErrorKind a read raises; None: this device has no such fault to show
    fault_kinds: dict[str, str | None] = field(default_factory=dict)


def gauge_registers() -> list[dict[str, Any]]:
    return [
        {"metric": "level_cm", "address": 0, "scale": 0.1, "unit": "cm", "valid_max": 1000},
        {"metric": "status", "address": 1},
        {"metric": "firmware_version", "address": 2},
    ]


MODBUS_FAULTS: dict[str, str | None] = {
    "silent": "timeout",
    "corrupt_crc": "crc",
    "reply_as_slave": "wrong_id",
    "truncate": "timeout",  # only part of an answer came in time
    "garbage": "garbage",
    "late_s": "timeout",
}


def tilt_keys() -> list[dict[str, Any]]:
    return [
        {"metric": "tilt_x_deg", "key": "X", "unit": "deg", "valid_max": 90},
        {"metric": "tilt_y_deg", "key": "Y", "unit": "deg", "valid_max": 90},
    ]


FRAMED_POLL_FAULTS: dict[str, str | None] = {
    "silent": "timeout",
    "corrupt_crc": "crc",
    "reply_as_slave": None,  # a frame carries no address
    "truncate": "timeout",  # half a frame, and the rest never comes
    "garbage": "garbage",
    "late_s": "timeout",
}

CASES = [
    Case(
        "modbus_rtu-water_level",
        lambda: modbus_device("water_level"),
        {"driver": "modbus_rtu", "slave": 1, "registers": gauge_registers()},
        ["level_cm", "status", "firmware_version"],
        out_of_range_metric="level_cm",
        fault_kinds=MODBUS_FAULTS,
    ),
    Case(
        "modbus_ascii-water_level",
        lambda: modbus_device("water_level", mode="ascii"),
        {"driver": "modbus_rtu", "slave": 1, "mode": "ascii", "registers": gauge_registers()},
        ["level_cm", "status", "firmware_version"],
        out_of_range_metric="level_cm",
        fault_kinds=MODBUS_FAULTS,
    ),
    Case(
        "modbus_rtu-slope_displacement",
        lambda: modbus_device("slope_displacement", slave=3),
        {
            "driver": "modbus_rtu",
            "slave": 3,
            "registers": [
                {
                    "metric": "displacement_mm",
                    "address": 0x100,
                    "type": "f32",
                    "word_order": "CDAB",
                    "unit": "mm",
                    "valid_max": 5000,
                },
                {
                    "metric": "velocity_mm_per_day",
                    "address": 0x102,
                    "type": "f32",
                    "word_order": "CDAB",
                },
            ],
        },
        ["displacement_mm", "velocity_mm_per_day"],
        out_of_range_metric="displacement_mm",
        fault_kinds=MODBUS_FAULTS,
    ),
    Case(
        "modbus_rtu-inclinometer_triggered",
        lambda: modbus_device("inclinometer_triggered", slave=5),
        {
            "driver": "modbus_rtu",
            "slave": 5,
            "trigger": {"address": 0x20, "ready_address": 0x21, "error_address": 0x10},
            "registers": [
                {"metric": "tilt_x_deg", "address": 0x100, "type": "f32", "word_order": "CDAB"},
                {"metric": "tilt_y_deg", "address": 0x102, "type": "f32", "word_order": "CDAB"},
            ],
        },
        ["tilt_x_deg", "tilt_y_deg"],
        out_of_range_metric="tilt_x_deg",  # the device's error code makes every reading bad
        fault_kinds=MODBUS_FAULTS,
    ),
    Case(
        "modbus_rtu-weather_station",
        lambda: modbus_device("weather_station", slave=4),
        {
            "driver": "modbus_rtu",
            "slave": 4,
            "write_enable": {"coil": 0},
            "registers": [
                {
                    "metric": "air_temp_c",
                    "address": 0,
                    "type": "i16",
                    "scale": 0.1,
                    "valid_max": 60,
                },
                {"metric": "humidity_pct", "address": 1, "scale": 0.1},
            ],
            "health": [
                {"name": "reboots", "address": 0},
                {"name": "supply_v", "address": 2, "scale": 0.1},
            ],
        },
        ["air_temp_c", "humidity_pct"],
        out_of_range_metric="air_temp_c",
        fault_kinds=MODBUS_FAULTS,
    ),
    Case(
        "serial_line-gas_poll",
        lambda: sentence_device("gas_detector", address=2),
        {
            "driver": "serial_line",
            "style": "poll",
            "sentence": "GAS",
            "address": "2",
            "address_field": 0,
            "fields": [
                {"metric": "gas_lel_pct", "index": 1, "unit": "%LEL", "valid_max": 100},
                {"metric": "gas_alarm", "index": 2},
            ],
        },
        ["gas_lel_pct", "gas_alarm"],
        out_of_range_metric="gas_lel_pct",
        fault_kinds={
            "silent": "timeout",
            "corrupt_crc": "crc",
            "reply_as_slave": "wrong_id",
            "truncate": "timeout",
            "garbage": "garbage",
            "late_s": "timeout",
        },
    ),
    Case(
        "serial_line-smoke_push",
        lambda: sentence_device("smoke_detector", address=3, options={"period_s": 0.03}),
        {
            "driver": "serial_line",
            "style": "push",
            "sentence": "SMK",
            "address": "3",
            "address_field": 0,
            "fields": [
                {"metric": "smoke_alarm", "index": 1},
                {"metric": "smoke_obscuration", "index": 2, "unit": "%/m", "valid_max": 20},
            ],
        },
        ["smoke_alarm", "smoke_obscuration"],
        push=True,
        out_of_range_metric="smoke_obscuration",
        fault_kinds={
            "silent": "timeout",
            "corrupt_crc": "crc",
            "reply_as_slave": "wrong_id",
            "truncate": "garbage",  # halves of sentences, each cut short by the next "$"
            "garbage": "garbage",
            "late_s": None,  # a pushing device is never late to a question
        },
    ),
    Case(
        "serial_line-inclinometer_keyvalue",
        lambda: sentence_device("inclinometer_ascii", options={"period_s": 0.03}),
        {
            "driver": "serial_line",
            "style": "push",
            "format": "keyvalue",
            "fields": [
                {"metric": "tilt_x_deg", "key": "X", "unit": "deg", "valid_max": 90},
                {"metric": "tilt_y_deg", "key": "Y", "unit": "deg", "valid_max": 90},
            ],
        },
        ["tilt_x_deg", "tilt_y_deg"],
        push=True,
        out_of_range_metric="tilt_x_deg",
        fault_kinds={
            "silent": "timeout",
            "corrupt_crc": None,  # bare lines carry no checksum
            "reply_as_slave": None,  # nor an address
            "truncate": None,  # half of "X=..\r\nY=..\r\n" is a whole X line: Y goes bad
            "garbage": "garbage",
            "late_s": None,
        },
    ),
    Case(
        "serial_line-inclinometer_framed_data",
        lambda: sentence_device("inclinometer_framed"),
        {"driver": "serial_line", "style": "poll", "format": "framed", "fields": tilt_keys()},
        ["tilt_x_deg", "tilt_y_deg"],
        out_of_range_metric="tilt_x_deg",
        fault_kinds=FRAMED_POLL_FAULTS,
    ),
    Case(
        "serial_line-inclinometer_framed_enq",
        lambda: sentence_device("inclinometer_framed", address=3, neighbours=(2, 4)),
        {
            "driver": "serial_line",
            "style": "poll",
            "format": "framed",
            "addressing": "enq",
            "address": "3",
            "fields": tilt_keys(),
        },
        ["tilt_x_deg", "tilt_y_deg"],
        out_of_range_metric="tilt_y_deg",
        fault_kinds=FRAMED_POLL_FAULTS,
    ),
    Case(
        "serial_line-inclinometer_framed_read",
        lambda: sentence_device("inclinometer_framed", options={"period_s": 0.03}),
        {"driver": "serial_line", "style": "push", "format": "framed", "fields": tilt_keys()},
        ["tilt_x_deg", "tilt_y_deg"],
        push=True,
        out_of_range_metric="tilt_x_deg",
        fault_kinds={
            "silent": "timeout",
            "corrupt_crc": "crc",
            "reply_as_slave": None,  # a frame carries no address
            "truncate": "garbage",  # halves of frames, each cut short by the next STX
            "garbage": "garbage",
            "late_s": None,  # a stream is never late to a question
        },
    ),
]
