"""The simulated bus on a real pty, spoken to with raw bytes (no driver involved)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from edgewatch.waiting import wait_until
from firmware_sim import Faults, SimulatedBus, WaterLevelGauge, modbus
from firmware_sim.modbus import ExceptionCode


@pytest.fixture
def bus() -> Iterator[SimulatedBus]:
    with SimulatedBus([WaterLevelGauge(slave=1), WaterLevelGauge(slave=2, seed=2)]) as served:
        yield served


@pytest.fixture
def line(bus: SimulatedBus) -> Iterator[serial.Serial]:
    with serial.Serial(bus.port_path, 9600, timeout=1.0) as port:
        yield port


def test_serves_a_read_on_a_pty(bus: SimulatedBus, line: serial.Serial) -> None:
    assert bus.port_path.startswith("/dev/pts/")
    line.write(modbus.read_request(2, 3, 1, 2))
    assert line.read(9) == modbus.read_response(2, 3, [0, 0x0102])
    # The bus counts an answer once it is written: the client may have it a moment before.
    wait_until(
        lambda: (bus.stats.frames, bus.stats.responses) == (1, 1), timeout_s=2, message="counts"
    )


def test_exception_for_a_missing_register(line: serial.Serial) -> None:
    line.write(modbus.read_request(1, 3, 3, 1))
    assert line.read(5) == modbus.exception_response(1, 3, ExceptionCode.ILLEGAL_DATA_ADDRESS)


def test_request_written_byte_by_byte(line: serial.Serial) -> None:
    for byte in modbus.read_request(1, 3, 2, 1):
        line.write(bytes([byte]))
        line.flush()
    assert line.read(7) == modbus.read_response(1, 3, [0x0102])


def test_other_slave_ids_get_silence(bus: SimulatedBus, line: serial.Serial) -> None:
    line.write(modbus.read_request(9, 3, 0, 1))
    wait_until(lambda: bus.stats.unaddressed == 1, timeout_s=2, message="the frame to be seen")
    assert line.in_waiting == 0


def test_bad_crc_gets_silence_and_the_next_frame_an_answer(
    bus: SimulatedBus, line: serial.Serial
) -> None:
    broken = bytearray(modbus.read_request(1, 3, 0, 1))
    broken[-2] ^= 0xFF
    line.write(bytes(broken))
    wait_until(lambda: bus.stats.dropped == 1, timeout_s=2, message="the frame to be dropped")
    assert line.in_waiting == 0
    line.write(modbus.read_request(1, 3, 1, 1))
    assert line.read(7) == modbus.read_response(1, 3, [0])


def test_unknown_function_is_answered_after_the_gap(line: serial.Serial) -> None:
    line.write(modbus.with_crc(bytes([1, 0x2B, 0x0E, 0x01, 0x00])))
    assert line.read(5) == modbus.exception_response(1, 0x2B, ExceptionCode.ILLEGAL_FUNCTION)


def test_runt_is_flushed_at_the_gap(bus: SimulatedBus, line: serial.Serial) -> None:
    line.write(modbus.read_request(1, 3, 0, 1)[:5])
    wait_until(lambda: bus.stats.dropped == 1, timeout_s=2, message="the runt to be dropped")
    line.write(modbus.read_request(1, 3, 2, 1))
    assert line.read(7) == modbus.read_response(1, 3, [0x0102])


def test_injected_faults(bus: SimulatedBus, line: serial.Serial) -> None:
    gauge = bus.devices[0]
    gauge.faults = Faults(reply_as_slave=5)
    line.write(modbus.read_request(1, 3, 2, 1))
    assert line.read(7) == modbus.read_response(5, 3, [0x0102])
    gauge.faults = Faults(silent=True)
    line.write(modbus.read_request(1, 3, 2, 1))
    wait_until(lambda: gauge.stats.requests == 2, timeout_s=2, message="the request")
    assert line.in_waiting == 0


def test_a_client_may_close_and_reopen_the_port(bus: SimulatedBus) -> None:
    for _ in range(2):
        with serial.Serial(bus.port_path, 9600, timeout=1.0) as port:
            port.write(modbus.read_request(1, 3, 2, 1))
            assert port.read(7) == modbus.read_response(1, 3, [0x0102])


def test_duplicate_slave_addresses_are_refused() -> None:
    with pytest.raises(ValueError, match="two devices at slave address 1"):
        SimulatedBus([WaterLevelGauge(slave=1), WaterLevelGauge(slave=1)])


def test_stable_symlink_and_quick_stop(tmp_path: Path) -> None:
    link = tmp_path / "bus1"
    link.symlink_to("/dev/null")  # a stale link from an earlier run is replaced
    bus = SimulatedBus([WaterLevelGauge(slave=1)], link_path=link)
    with bus:
        assert os.readlink(link) == bus.port_path
        with serial.Serial(str(link), 9600, timeout=1.0) as port:
            port.write(modbus.read_request(1, 3, 1, 1))
            assert port.read(7) == modbus.read_response(1, 3, [0])
    # Stopped: its thread ended within the stop's join (2 s), whatever the machine's load.
    assert [t for t in threading.enumerate() if t.name == "sim-bus-bus1"] == []
    assert not link.exists()
    assert not link.is_symlink()
