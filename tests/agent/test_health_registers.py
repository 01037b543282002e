"""A device's own health registers reach its heartbeat entry, not its readings."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.agent import Agent
from agent.config import parse_config
from drivers.registry import parse_device_config
from edgewatch.broker import Mosquitto
from firmware_sim import ModelContext, SimulatedBus, SimulatedDevice
from firmware_sim.models import MODELS
from tests.agent.bus_rig import bus_rig
from tests.agent.conftest import Recorder, agent_toml
from wire import DeviceHealth, Health, ReadingBatch, TopicKind

WEATHER_DEVICE = """
[[ports]]
name = "bus1"
url = "{url}"
baud = 9600
timeout_s = 0.2

[[devices]]
name = "met-1"
driver = "modbus_rtu"
port = "bus1"
interval_s = 0.1
slave = 4

[[devices.registers]]
metric = "air_temp_c"
address = 0
type = "i16"
scale = 0.1
unit = "degC"

[[devices.health]]
name = "reboots"
address = 0

[[devices.health]]
name = "supply_v"
register = 30003
scale = 0.1
"""


def weather_station() -> SimulatedDevice:
    return SimulatedDevice(MODELS["weather_station"](ModelContext(seed=4)), slave=4)


def test_health_registers_in_the_heartbeat_and_a_reboot_shows(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder
) -> None:
    device = weather_station()
    with SimulatedBus([device]) as bus:
        text = agent_toml(tmp_path / "data", mosquitto) + WEATHER_DEVICE.format(url=bus.port_path)
        with Agent(parse_config(text)):

            def reported(reboots: float) -> DeviceHealth | None:
                for health in recorder.decoded(TopicKind.HEALTH, Health):
                    met = health.devices.get("met-1")
                    if met is not None and met.registers.get("reboots") == reboots:
                        return met
                return None

            before = recorder.wait_for(lambda: reported(3), "a heartbeat with 3 reboots")
            device.reboot()
            after = recorder.wait_for(lambda: reported(4), "a heartbeat with the reboot counted")
    assert before is not None
    assert after is not None
    assert before.registers["supply_v"] == pytest.approx(12.1)
    assert after.registers == pytest.approx({"reboots": 4, "supply_v": 12.1})
    readings = [r for b in recorder.decoded(TopicKind.READINGS, ReadingBatch) for r in b.readings]
    assert {r.metric for r in readings} == {"air_temp_c"}  # health is no reading


def test_a_device_without_health_registers_reports_none() -> None:
    config = parse_device_config(
        {
            "name": "met-1",
            "driver": "modbus_rtu",
            "port": "bus1",
            "interval_s": 0.02,
            "slave": 4,
            "timeout_s": 0.1,
            "registers": [{"metric": "air_temp_c", "address": 0, "type": "i16"}],
        }
    )
    with bus_rig([weather_station()], [config]) as rig:
        poller = rig.poller("met-1")
        rig.wait(lambda: poller.health().reads_ok >= 2, "two reads")
        assert poller.health().registers == {}
