"""Answers paced to the wire, and faults switched from outside through the control socket."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import serial

from edgewatch.waiting import wait_until
from firmware_sim import Faults, SimulatedBus, SimulatedDevice, WaterLevelGauge, modbus
from firmware_sim.control import send
from firmware_sim.device import Quirks
from firmware_sim.models import water_level_gauge
from firmware_sim.scenario import RunningScenario, load_scenario
from firmware_sim.timing import transmit_s


def round_trip_s(port: serial.Serial, slave: int = 1) -> float:
    started = time.monotonic()
    port.write(modbus.read_request(slave, 3, 0, 3))
    assert len(port.read(11)) == 11
    return time.monotonic() - started


def test_answer_arrives_when_the_wire_would_deliver_it() -> None:
    # 8 request bytes, 3.5 characters of silence, 11 answer bytes, at 11 bits a character.
    wire_s = transmit_s(8 + 3.5 + 11, 9600)
    with (
        SimulatedBus([WaterLevelGauge(slave=1)]) as bus,
        serial.Serial(bus.port_path, 9600, timeout=1) as port,
    ):
        elapsed = min(round_trip_s(port) for _ in range(3))
    assert wire_s <= elapsed < wire_s + 0.05


def test_response_time_adds_to_the_wire_time() -> None:
    device = SimulatedDevice(water_level_gauge(), slave=1, quirks=Quirks(response_time_s=0.05))
    with (
        SimulatedBus([device], baud=115200) as bus,
        serial.Serial(bus.port_path, 115200, timeout=1) as port,
    ):
        elapsed = round_trip_s(port)
    assert 0.05 + transmit_s(22.5, 115200) <= elapsed < 0.12


def test_a_client_at_another_baud_gets_silence(tmp_path: Path) -> None:
    with (
        SimulatedBus([WaterLevelGauge(slave=1)], baud=19200) as bus,
        serial.Serial(bus.port_path, 9600, timeout=0.2) as port,
    ):
        port.write(modbus.read_request(1, 3, 0, 1))
        assert port.read(7) == b""
        assert bus.stats.wrong_baud == 1
        port.baudrate = 19200
        port.write(modbus.read_request(1, 3, 2, 1))
        assert port.read(7) == modbus.read_response(1, 3, [0x0102])


def test_faults_switch_through_the_control_socket(tmp_path: Path) -> None:
    control = tmp_path / "c.sock"
    with RunningScenario(load_scenario("demo"), control_path=control) as running:
        (served,) = running.devices
        assert served.control == str(control)
        with serial.Serial(served.pty, 9600, timeout=0.3) as port:
            answer = send(
                control, {"cmd": "faults", "device": "gauge-1", "faults": {"silent": True}}
            )
            assert answer["ok"] is True
            assert answer["faults"]["silent"] is True
            port.write(modbus.read_request(1, 3, 2, 1))
            assert port.read(7) == b""
            assert send(control, {"cmd": "faults", "device": "gauge-1", "faults": {}})["ok"]
            port.write(modbus.read_request(1, 3, 2, 1))
            assert port.read(7) == modbus.read_response(1, 3, [0x0102])
        assert send(control, {"cmd": "reboot", "device": "gauge-1"}) == {
            "ok": True,
            "device": "gauge-1",
        }
        status = send(control, {"cmd": "status"})
        assert status["devices"]["gauge-1"]["stats"]["reboots"] == 1
        assert status["devices"]["gauge-1"]["stats"]["responses"] == 1


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"cmd": "faults", "device": "nope", "faults": {}}, "unknown device 'nope'"),
        ({"cmd": "faults", "device": "gauge-1", "faults": {"melt": True}}, "unknown faults"),
        ({"cmd": "faults", "device": "gauge-1", "faults": {"late_s": -1}}, "bad value"),
        ({"cmd": "dance", "device": "gauge-1"}, "unknown cmd 'dance'"),
    ],
)
def test_control_errors_are_answers_not_crashes(
    tmp_path: Path, request_: dict[str, object], error: str
) -> None:
    control = tmp_path / "c.sock"
    with RunningScenario(load_scenario("demo"), control_path=control):
        answer = send(control, request_)
        assert answer["ok"] is False
        assert error in answer["error"]
        assert send(control, {"cmd": "status"})["ok"]  # still serving


def test_late_answer_comes_after_the_delay() -> None:
    gauge = WaterLevelGauge(slave=1)
    with (
        SimulatedBus([gauge], pace=False) as bus,
        serial.Serial(bus.port_path, 9600, timeout=0.05) as port,
    ):
        gauge.faults = Faults(late_s=0.2)
        port.write(modbus.read_request(1, 3, 2, 1))
        assert port.read(7) == b""
        wait_until(lambda: bus.stats.responses == 1, timeout_s=2, message="the late answer")
        assert port.read(7) == modbus.read_response(1, 3, [0x0102])
