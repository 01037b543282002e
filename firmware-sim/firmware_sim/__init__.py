"""Simulated device firmware on pseudo-terminals, for development, tests and the demo.

An independent implementation of the device side: it never imports drivers/ (nor agent/),
so a bug shared by a driver and its simulator cannot hide.
"""

from firmware_sim.bus import BusStats, SimulatedBus
from firmware_sim.device import DeviceModel, Faults, RegisterSpec, SimulatedDevice
from firmware_sim.models import MODELS, WaterLevelGauge, water_level_gauge
from firmware_sim.scenario import SCENARIOS, RunningScenario, Scenario, ServedDevice

__all__ = [
    "MODELS",
    "SCENARIOS",
    "BusStats",
    "DeviceModel",
    "Faults",
    "RegisterSpec",
    "RunningScenario",
    "Scenario",
    "ServedDevice",
    "SimulatedBus",
    "SimulatedDevice",
    "WaterLevelGauge",
    "water_level_gauge",
]
