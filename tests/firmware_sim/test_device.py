"""The simulated devices' register logic, without a pty: requests in, frames out."""

from __future__ import annotations

import itertools

from firmware_sim import modbus
from firmware_sim.device import DeviceModel, Faults, RegisterSpec, SimulatedDevice, constant
from firmware_sim.modbus import ExceptionCode, Request
from firmware_sim.models import WATER_LEVEL_PERIOD_S, WaterLevelGauge
from tests.clock import FakeClock


def ask(device: SimulatedDevice, frame: bytes) -> bytes | None:
    used, request = modbus.decode_request(frame)
    assert request is not None
    assert used == len(frame)
    return device.handle(request)


def registers_of(response: bytes | None) -> list[int]:
    assert response is not None
    assert modbus.crc_ok(response)
    data = response[3:-2]
    assert response[2] == len(data)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def test_water_level_map() -> None:
    gauge = WaterLevelGauge(slave=1, clock=FakeClock())
    level_cm_x10, status, firmware = registers_of(ask(gauge, modbus.read_request(1, 3, 0, 3)))
    assert 2200 <= level_cm_x10 <= 2800
    assert status == 0
    assert firmware == 0x0102


def test_water_level_drifts_slowly_with_the_clock() -> None:
    clock = FakeClock()
    gauge = WaterLevelGauge(slave=1, clock=clock, seed=3)
    levels = []
    for _ in range(40):
        levels.append(registers_of(ask(gauge, modbus.read_request(1, 3, 0, 1)))[0])
        clock.now_s += WATER_LEVEL_PERIOD_S / 40
    assert max(levels) - min(levels) > 300  # the sine swings +-20 cm over a period
    steps = [abs(b - a) for a, b in itertools.pairwise(levels)]
    assert max(steps) < 80  # no jumps: a river does not leap 8 cm in 15 s


def test_reading_beyond_the_map_is_illegal_data_address() -> None:
    gauge = WaterLevelGauge(slave=1, clock=FakeClock())
    assert ask(gauge, modbus.read_request(1, 3, 0, 4)) == modbus.exception_response(
        1, 3, ExceptionCode.ILLEGAL_DATA_ADDRESS
    )
    assert ask(gauge, modbus.read_request(1, 4, 0, 1)) == modbus.exception_response(
        1, 4, ExceptionCode.ILLEGAL_DATA_ADDRESS
    )


def test_unsupported_function_is_illegal_function() -> None:
    gauge = WaterLevelGauge(slave=1, clock=FakeClock())
    read_coils = modbus.with_crc(bytes.fromhex("01 01 00 00 00 08"))
    assert ask(gauge, read_coils) == modbus.exception_response(1, 1, ExceptionCode.ILLEGAL_FUNCTION)


def test_bad_quantity_is_illegal_data_value() -> None:
    gauge = WaterLevelGauge(slave=1, clock=FakeClock())
    for count in (0, 126):
        assert ask(gauge, modbus.read_request(1, 3, 0, count)) == modbus.exception_response(
            1, 3, ExceptionCode.ILLEGAL_DATA_VALUE
        )


def test_writes_keep_their_value_and_read_only_registers_refuse() -> None:
    model = DeviceModel(
        model="test",
        holding={
            0: RegisterSpec("value", constant(7)),
            1: RegisterSpec("setting", constant(3), writable=True),
        },
    )
    device = SimulatedDevice(model, slave=5, clock=FakeClock())
    assert ask(device, modbus.write_single_request(5, 1, 9)) == modbus.write_single_response(
        5, 1, 9
    )
    assert registers_of(ask(device, modbus.read_request(5, 3, 0, 2))) == [7, 9]
    assert ask(device, modbus.write_single_request(5, 0, 1)) == modbus.exception_response(
        5, 6, ExceptionCode.ILLEGAL_DATA_ADDRESS
    )
    refused = ask(device, modbus.write_multiple_request(5, 0, [1, 2]))
    assert refused == modbus.exception_response(5, 16, ExceptionCode.ILLEGAL_DATA_ADDRESS)
    assert registers_of(ask(device, modbus.read_request(5, 3, 0, 2))) == [7, 9]  # all or nothing
    assert ask(device, modbus.write_multiple_request(5, 1, [4])) == modbus.write_multiple_response(
        5, 1, 1
    )
    assert device.stats.exceptions == 2


def test_faults_change_the_answer() -> None:
    gauge = WaterLevelGauge(slave=1, clock=FakeClock())
    request = Request(1, 3, bytes.fromhex("00 02 00 01"))
    good = gauge.handle(request)
    assert good == modbus.read_response(1, 3, [0x0102])

    gauge.faults = Faults(silent=True)
    assert gauge.handle(request) is None

    gauge.faults = Faults(corrupt_crc=True)
    corrupted = gauge.handle(request)
    assert corrupted is not None
    assert corrupted[:-2] == good[:-2]
    assert not modbus.crc_ok(corrupted)

    gauge.faults = Faults(reply_as_slave=9)
    assert gauge.handle(request) == modbus.read_response(9, 3, [0x0102])
