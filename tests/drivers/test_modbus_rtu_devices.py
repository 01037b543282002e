"""ModbusRtuDriver against the quirky families of FIELD-DEVICES.md, on real ptys."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import serial

from drivers.base import DriverError, ErrorKind
from drivers.counters import counter_increment
from drivers.modbus_rtu import ModbusRtuDriver
from drivers.registry import create_driver, parse_device_config
from edgewatch.waiting import wait_until
from firmware_sim import Faults, SimulatedDevice
from firmware_sim.device import Quirks
from tests.clock import FakeClock
from wire import Quality

from .sims import FAULT_TIMEOUT_S, Served, modbus_device


def driver(
    port: serial.Serial, slave: int, registers: list[dict[str, Any]], **extra: Any
) -> ModbusRtuDriver:
    raw = {
        "name": "dev-1",
        "driver": "modbus_rtu",
        "port": "p1",
        "slave": slave,
        "timeout_s": FAULT_TIMEOUT_S,
        "registers": registers,
        **extra,
    }
    built = create_driver(parse_device_config(raw), port)
    assert isinstance(built, ModbusRtuDriver)
    return built


@contextmanager
def opened(served: Served) -> Iterator[serial.Serial]:
    with serial.Serial(served.port_path, served.baud, timeout=0.5) as port:
        yield port


TRANSMITTER = [
    {"metric": "decimals", "address": 3},
    {"metric": "level_m", "address": 4, "type": "i16", "decimals_address": 3, "unit": "m"},
]


def test_transmitter_scale_comes_from_the_decimals_register() -> None:
    with modbus_device("level_transmitter") as served, opened(served) as port:
        dev = driver(port, 1, TRANSMITTER, write_single_only=True)
        decimals, level = dev.read()
        assert decimals.value == 2
        assert level.value is not None
        assert 2.2 <= level.value <= 2.8  # 250 cm +- 20, in m
        dev.write("decimals", 1)
        decimals, coarse = dev.read()
        assert decimals.value == 1
        assert coarse.value is not None
        assert abs(coarse.value - level.value) < 0.2
        assert coarse.value == round(coarse.value, 1)


def test_hidden_decimals_register_is_read_with_its_neighbours() -> None:
    with modbus_device("level_transmitter") as served, opened(served) as port:
        dev = driver(port, 1, [TRANSMITTER[1]])
        assert [(b.address, b.count) for b in dev.blocks] == [(3, 2)]  # one request
        (level,) = dev.read()
        assert level.metric == "level_m"
        assert level.quality is Quality.GOOD


def test_commissioning_a_new_address_and_baud() -> None:
    with modbus_device("level_transmitter") as served, opened(served) as port:
        old = driver(port, 1, TRANSMITTER, write_single_only=True)
        old.write(0, 5)  # raw address 0x0000: the slave address
        with pytest.raises(DriverError) as caught:
            old.read()
        assert caught.value.kind is ErrorKind.TIMEOUT
        new = driver(port, 5, TRANSMITTER, write_single_only=True)
        assert new.read()[0].value == 2
        new.write(1, 4)  # baud code 4: 19200; the answer still comes at 9600
        with pytest.raises(DriverError):
            new.read()
        port.baudrate = 19200
        assert new.read()[0].value == 2
        assert isinstance(served.device, SimulatedDevice)
        assert served.device.baud == 19200


def test_a_device_without_function_16_refuses_it() -> None:
    with modbus_device("level_transmitter") as served, opened(served) as port:
        dev = driver(port, 1, TRANSMITTER)  # forgot write_single_only: fc 16 is used
        with pytest.raises(DriverError) as caught:
            dev.write("decimals", 1)
        assert caught.value.kind is ErrorKind.EXCEPTION
        assert "register 'decimals' (holding 3)" in str(caught.value)
        assert "illegal function" in str(caught.value).lower()


def test_writes_that_cannot_be_made_are_refused_before_the_wire() -> None:
    with modbus_device("slope_displacement", slave=3) as served, opened(served) as port:
        registers = [
            {"metric": "mm", "address": 0x100, "type": "f32", "word_order": "CDAB"},
            {"metric": "level", "address": 0, "function": 4},
            {"metric": "status", "address": 1, "scale": 0.5},
        ]
        dev = driver(port, 3, registers, write_single_only=True)
        with pytest.raises(ValueError, match="spans 2 registers"):
            dev.write("mm", 1.5)
        with pytest.raises(ValueError, match="input register: read-only"):
            dev.write("level", 1)
        with pytest.raises(ValueError, match="not a multiple of scale"):
            dev.write("status", 0.7)
        with pytest.raises(ValueError, match="no register with metric 'nope'"):
            dev.write("nope", 1)
        with pytest.raises(ValueError, match="need two u16"):
            dev.write(70000, 1)


RAIN = [
    {"metric": "rain_mm", "address": 0, "kind": "counter", "scale": 0.2, "unit": "mm"},
    {"metric": "battery_v", "address": 2, "scale": 0.1, "unit": "V"},
    {"metric": "board_temp_c", "address": 3, "type": "i16", "scale": 0.1, "sentinels": [0x8000]},
]


def test_rain_gauge_counter_rollover_reboot_and_sentinel() -> None:
    clock = FakeClock()
    options = {"initial_tips": 65530, "temperature_sensor": False}
    with (
        modbus_device("rain_gauge", slave=2, options=options, clock=clock) as served,
        opened(served) as port,
    ):
        dev = driver(port, 2, RAIN)
        rain, battery, temperature = dev.read()
        assert rain.counter is not None
        assert (rain.counter.raw, rain.counter.modulus) == (65530, 65536)
        assert rain.value == pytest.approx(65530 * 0.2)
        assert battery.value == pytest.approx(12.6)
        assert temperature.quality is Quality.BAD
        assert temperature.error is not None
        assert "register 'board_temp_c' (holding 3)" in temperature.error
        assert "sentinel 0x8000" in temperature.error
        clock.now_s += 3600  # 6 mm of rain: 30 tips, through the rollover
        (after, *_) = dev.read()
        assert after.counter is not None
        assert after.counter.raw == 24
        assert counter_increment(65530, after.counter.raw) == 30
        served.device.reboot()
        clock.now_s += 120  # 0.2 mm: one tip since the reboot
        (rebooted, *_) = dev.read()
        assert rebooted.counter is not None
        assert rebooted.counter.raw == 1
        assert counter_increment(24, 1) == 1  # a reset, not 65513 tips


def test_sleeping_gauge_needs_a_wake_up_retry() -> None:
    clock = FakeClock()
    quirks = Quirks(sleep_after_quiet_s=60)
    with (
        modbus_device("rain_gauge", slave=2, quirks=quirks, clock=clock) as served,
        opened(served) as port,
    ):
        clock.now_s += 120
        with pytest.raises(DriverError) as caught:
            driver(port, 2, RAIN[:2]).read()
        assert caught.value.kind is ErrorKind.TIMEOUT
        clock.now_s += 120
        _rain, battery = driver(port, 2, RAIN[:2], wake_retries=1).read()
        assert battery.value == pytest.approx(12.6)
        assert isinstance(served.device, SimulatedDevice)
        assert served.device.stats.unanswered_asleep == 2


def test_commissioning_with_function_16() -> None:
    with modbus_device("rain_gauge", slave=2) as served, opened(served) as port:
        dev = driver(port, 2, [{"metric": "address_setting", "address": 0x66}, *RAIN[:1]])
        assert dev.read()[0].value == 2
        dev.write("address_setting", 7)
        # Like the real transmitters, it answers at the old address, then takes the new one.
        wait_until(lambda: served.device.slave == 7, timeout_s=2, message="the new address")
        assert driver(port, 7, RAIN[:1]).read()[0].quality is Quality.GOOD


@contextmanager
def tcp_serial_server(served: Served) -> Iterator[int]:
    """A serial server on 127.0.0.1 (a free port): TCP in, the simulated RS-485 line out."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop_r, stop_w = socket.socketpair()

    def bridge() -> None:
        with serial.Serial(served.port_path, served.baud, timeout=0) as line:
            ready, _, _ = select.select([listener.fileno(), stop_r.fileno()], [], [])
            if stop_r.fileno() in ready:
                return
            connection, _ = listener.accept()
            with connection:
                while True:
                    fds = [connection.fileno(), line.fileno(), stop_r.fileno()]
                    ready, _, _ = select.select(fds, [], [])
                    if stop_r.fileno() in ready:
                        return
                    if connection.fileno() in ready:
                        data = connection.recv(4096)
                        if not data:
                            return
                        line.write(data)
                    if line.fileno() in ready:
                        connection.sendall(line.read(line.in_waiting or 1))

    thread = threading.Thread(target=bridge, name="tcp-serial-bridge")
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop_w.send(b"x")
        thread.join(timeout=5)
        for closable in (listener, stop_r, stop_w):
            closable.close()


def test_rtu_over_tcp_through_a_pyserial_url() -> None:
    with modbus_device("water_level") as served, tcp_serial_server(served) as tcp_port:
        url = f"socket://127.0.0.1:{tcp_port}"
        with serial.serial_for_url(url, timeout=0.5) as port:
            registers = [
                {"metric": "level_cm", "address": 0, "scale": 0.1},
                {"metric": "fw", "address": 2},
            ]
            dev = driver(port, 1, registers)
            level, firmware = dev.read()
            assert firmware.value == 0x0102
            assert level.quality is Quality.GOOD
            served.device.faults = Faults(corrupt_crc=True)
            with pytest.raises(DriverError) as caught:
                dev.read()
            assert caught.value.kind is ErrorKind.CRC
            served.device.faults = Faults(silent=True)
            with pytest.raises(DriverError) as caught:
                dev.read()
            assert caught.value.kind is ErrorKind.TIMEOUT
            served.device.faults = Faults()
            assert dev.read()[1].value == 0x0102
