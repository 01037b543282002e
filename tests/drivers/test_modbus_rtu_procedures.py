"""Write enable, health registers and triggered measurements, against the simulator on ptys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import serial

from drivers.base import DriverError, ErrorKind, HealthReporter
from edgewatch.waiting import wait_until
from firmware_sim import Faults, SimulatedDevice
from wire import Quality

from .sims import Served, modbus_device
from .test_modbus_rtu_devices import driver

WEATHER = [
    {"metric": "air_temp_c", "address": 0, "type": "i16", "scale": 0.1, "unit": "degC"},
    {"metric": "humidity_pct", "address": 1, "scale": 0.1, "unit": "%"},
    {"metric": "averaging_s", "address": 0x68, "unit": "s"},
]
HEALTH = [
    {"name": "reboots", "address": 0},
    {"name": "watchdog_resets", "address": 1},
    {"name": "supply_v", "address": 2, "scale": 0.1},
    {"name": "board_temp_c", "address": 3, "type": "i16", "scale": 0.1},
    {"name": "modbus_errors", "address": 4},
]
TILT = [
    {"metric": "tilt_x_deg", "address": 0x100, "type": "f32", "word_order": "CDAB"},
    {"metric": "tilt_y_deg", "address": 0x102, "type": "f32", "word_order": "CDAB"},
]
TRIGGER = {"address": 0x20, "ready_address": 0x21, "error_address": 0x10}


@contextmanager
def weather(**options: Any) -> Iterator[tuple[Served, SimulatedDevice, serial.Serial]]:
    with (
        modbus_device("weather_station", slave=4, options=options) as served,
        serial.Serial(served.port_path, served.baud, timeout=0.5) as port,
    ):
        assert isinstance(served.device, SimulatedDevice)
        yield served, served.device, port


@contextmanager
def inclinometer(**options: Any) -> Iterator[tuple[SimulatedDevice, serial.Serial]]:
    with (
        modbus_device("inclinometer_triggered", slave=5, options=options) as served,
        serial.Serial(served.port_path, served.baud, timeout=0.5) as port,
    ):
        assert isinstance(served.device, SimulatedDevice)
        yield served.device, port


# -- write enable ---------------------------------------------------------------------


def test_a_write_without_enable_is_refused_naming_device_and_register() -> None:
    with weather() as (_, device, port):
        dev = driver(port, 4, WEATHER)
        with pytest.raises(DriverError) as caught:
            dev.write("averaging_s", 30)
        message = str(caught.value)
        assert caught.value.kind is ErrorKind.EXCEPTION
        assert "device 'dev-1' (modbus_rtu, slave 4)" in message
        assert "register 'averaging_s' (holding 104)" in message
        assert "illegal function" in message
        assert "write_enable" in message  # the hint at the missing config
        assert dev.read()[2].value == 60  # nothing was written
        assert device.stats.exceptions == 1


def test_a_write_with_the_enable_coil_succeeds_and_locks_again() -> None:
    with weather(relocks=False) as (_, device, port):
        dev = driver(port, 4, WEATHER, write_enable={"coil": 0})
        dev.write("averaging_s", 30)
        assert dev.read()[2].value == 30
        assert device.write_lock is not None
        assert not device.write_lock.unlocked  # the driver locked it again (relock)
        unlocked = driver(port, 4, WEATHER, write_enable={"coil": 0, "relock": False})
        unlocked.write("averaging_s", 45)
        assert unlocked.read()[2].value == 45
        assert device.write_lock.unlocked  # left open, as configured
        assert device.stats.exceptions == 0


def test_commissioning_a_locked_device_enables_each_write() -> None:
    with weather() as (served, device, port):
        dev = driver(port, 4, WEATHER[:1], write_enable={"coil": 0, "relock": False})
        dev.write(0x68, 15)  # the device relocks itself after each write
        dev.write(0x66, 9)  # raw address: its slave address
        wait_until(lambda: device.slave == 9, timeout_s=2, message="the new address")
        moved = driver(port, 9, WEATHER, write_enable={"coil": 0})
        assert moved.read()[2].value == 15
        assert served.answers() >= 5


def test_a_wrong_enable_coil_names_the_coil() -> None:
    with weather() as (_, _device, port):
        dev = driver(port, 4, WEATHER, write_enable={"coil": 7})
        with pytest.raises(DriverError) as caught:
            dev.write("averaging_s", 30)
        assert caught.value.kind is ErrorKind.EXCEPTION
        assert "write-enable coil 7 (enable writes for register 'averaging_s'" in str(caught.value)
        assert "illegal data address" in str(caught.value)


# -- health registers -----------------------------------------------------------------


def test_health_registers_are_read_apart_from_readings() -> None:
    with weather() as (_, device, port):
        dev = driver(port, 4, WEATHER, health=HEALTH)
        assert isinstance(dev, HealthReporter)
        assert dev.health_registers() == {}
        measurements = dev.read()
        assert [m.metric for m in measurements] == ["air_temp_c", "humidity_pct", "averaging_s"]
        assert all(m.quality is Quality.GOOD for m in measurements)
        assert dev.health_registers() == pytest.approx(
            {
                "reboots": 3,
                "watchdog_resets": 0,
                "supply_v": 12.1,
                "board_temp_c": 23.5,
                "modbus_errors": 0,
            }
        )
        assert [(int(b.function), b.address, b.count) for b in dev.blocks][-1] == (4, 0, 5)
        device.reboot()
        dev.read()
        assert dev.health_registers()["reboots"] == 4


def test_a_refused_health_register_is_left_out() -> None:
    with weather() as (_, _device, port):
        health = [HEALTH[0], {"name": "bogus", "address": 40}]
        dev = driver(port, 4, WEATHER, health=health)
        assert all(m.quality is Quality.GOOD for m in dev.read())
        assert dev.health_registers() == {"reboots": 3}


# -- triggered measurements -----------------------------------------------------------


def test_without_its_trigger_the_inclinometer_reads_zeros_and_not_ready() -> None:
    with inclinometer() as (_device, port):
        registers = [*TILT, {"metric": "error_code", "address": 0x10}]
        x, y, error = driver(port, 5, registers).read()
        assert (x.value, y.value, error.value) == (0.0, 0.0, 2.0)


def test_trigger_then_read_until_ready() -> None:
    with inclinometer() as (device, port):
        dev = driver(port, 5, TILT, trigger=TRIGGER)
        x, y = dev.read()
        assert x.quality is Quality.GOOD, x.error
        assert x.value == pytest.approx(0.43, abs=0.05)
        assert y.value == pytest.approx(-0.08, abs=0.05)
        assert device.measurement is not None
        assert device.measurement.ready


def test_trigger_then_read_after_a_settle_time() -> None:
    with inclinometer(measure_s=0.02) as (_device, port):
        dev = driver(port, 5, TILT, trigger={"address": 0x20, "settle_s": 0.1})
        x, _y = dev.read()
        assert x.value == pytest.approx(0.43, abs=0.05)


def test_a_measurement_never_ready_is_a_timeout_naming_the_register() -> None:
    with inclinometer(measure_s=30) as (_device, port):
        dev = driver(port, 5, TILT, trigger=TRIGGER)
        with pytest.raises(DriverError) as caught:
            dev.read()
        assert caught.value.kind is ErrorKind.TIMEOUT
        message = str(caught.value)
        assert "device 'dev-1' (modbus_rtu, slave 5): trigger (holding 32)" in message
        assert "measurement not ready: ready register (holding 33) holds 0, not 1" in message


def test_a_non_zero_error_code_makes_every_reading_bad() -> None:
    with inclinometer() as (device, port):
        dev = driver(port, 5, TILT, trigger=TRIGGER)
        assert all(m.quality is Quality.GOOD for m in dev.read())
        device.faults = Faults(out_of_range=True)  # the sensor reports code 5
        for bad in dev.read():
            assert bad.quality is Quality.BAD
            assert bad.value is None
            assert bad.error_kind is ErrorKind.INVALID_VALUE
            assert bad.error is not None
            assert f"register {bad.metric!r}" in bad.error
            assert "error register (holding 16) holds error code 5" in bad.error
        device.faults = Faults()
        device.reboot()  # the measurement is lost: the trigger takes a new one
        assert all(m.quality is Quality.GOOD for m in dev.read())


def test_the_trigger_goes_through_write_enable_too() -> None:
    with inclinometer() as (_device, port):
        # The plain inclinometer has no coils: the enable write is refused before the trigger.
        dev = driver(port, 5, TILT, trigger=TRIGGER, write_enable={"coil": 0})
        with pytest.raises(DriverError) as caught:
            dev.read()
        assert "write-enable coil 0 (enable writes for trigger (holding 32))" in str(caught.value)
