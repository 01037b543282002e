"""Write lock (fc 05 coil) and triggered measurements, at the frame level, on a fake clock."""

from __future__ import annotations

from firmware_sim import ModelContext, SimulatedDevice, modbus
from firmware_sim.modbus import ExceptionCode
from firmware_sim.models import MODELS
from tests.clock import FakeClock

from .test_device import ask, registers_of


def device(model: str, clock: FakeClock, slave: int, **options: object) -> SimulatedDevice:
    return SimulatedDevice(
        MODELS[model](ModelContext(seed=slave, options=options)), slave=slave, clock=clock
    )


def test_a_locked_weather_station_refuses_writes_with_exception_01() -> None:
    station = device("weather_station", FakeClock(), 4)
    refused = modbus.exception_response(4, 6, ExceptionCode.ILLEGAL_FUNCTION)
    assert ask(station, modbus.write_single_request(4, 0x68, 30)) == refused
    multiple = modbus.exception_response(4, 16, ExceptionCode.ILLEGAL_FUNCTION)
    assert ask(station, modbus.write_multiple_request(4, 0x68, [30])) == multiple
    on = modbus.write_coil_request(4, 0, on=True)
    assert ask(station, on) == on  # fc 05 answers with an echo
    assert ask(station, modbus.write_single_request(4, 0x68, 30)) is not None
    assert registers_of(ask(station, modbus.read_request(4, 3, 0x68, 1))) == [30]
    assert ask(station, modbus.write_single_request(4, 0x68, 31)) == refused  # relocked


def test_coil_errors_and_a_reboot_locks_again() -> None:
    station = device("weather_station", FakeClock(), 4, relocks=False)
    bad_coil = modbus.exception_response(4, 5, ExceptionCode.ILLEGAL_DATA_ADDRESS)
    assert ask(station, modbus.write_coil_request(4, 3, on=True)) == bad_coil
    ask(station, modbus.write_coil_request(4, 0, on=True))
    assert ask(station, modbus.write_single_request(4, 0x68, 30)) is not None
    assert ask(station, modbus.write_single_request(4, 0x68, 31)) is not None  # stays open
    station.reboot()
    refused = modbus.exception_response(4, 6, ExceptionCode.ILLEGAL_FUNCTION)
    assert ask(station, modbus.write_single_request(4, 0x68, 32)) == refused


def test_health_input_registers_count_reboots_and_errors() -> None:
    station = device("weather_station", FakeClock(), 4)
    reboots, watchdog, supply, board, errors = registers_of(
        ask(station, modbus.read_request(4, 4, 0, 5))
    )
    assert (reboots, watchdog, supply, board, errors) == (3, 0, 121, 235, 0)
    station.reboot()
    ask(station, modbus.write_single_request(4, 0x68, 1))  # refused: an exception answer
    assert registers_of(ask(station, modbus.read_request(4, 4, 0, 5)))[0::4] == [4, 1]


def test_the_triggered_inclinometer_measures_only_when_told() -> None:
    clock = FakeClock()
    tilt = device("inclinometer_triggered", clock, 5, measure_s=0.5)

    def state() -> tuple[int, int, list[int]]:
        (error,) = registers_of(ask(tilt, modbus.read_request(5, 3, 0x10, 1)))
        (ready,) = registers_of(ask(tilt, modbus.read_request(5, 3, 0x21, 1)))
        return error, ready, registers_of(ask(tilt, modbus.read_request(5, 3, 0x100, 4)))

    assert state() == (2, 0, [0, 0, 0, 0])  # nothing measured: not ready, zeros
    trigger = modbus.write_single_request(5, 0x20, 1)
    assert ask(tilt, trigger) == trigger
    assert state()[:2] == (2, 0)  # measuring
    clock.now_s += 0.5
    error, ready, words = state()
    assert (error, ready) == (0, 1)
    assert words != [0, 0, 0, 0]
    clock.now_s += 60
    assert state()[2] == words  # the last measurement, until the next trigger
    bad_value = modbus.exception_response(5, 6, ExceptionCode.ILLEGAL_DATA_VALUE)
    assert ask(tilt, modbus.write_single_request(5, 0x20, 7)) == bad_value
    tilt.reboot()
    assert state() == (2, 0, [0, 0, 0, 0])
