"""Simulated device firmware on pseudo-terminals, for development, tests and the demo.

An independent implementation of the device side: it never imports drivers/ (nor agent/),
so a bug shared by a driver and its simulator cannot hide.
"""

from firmware_sim.bus import BusStats, SimulatedBus
from firmware_sim.device import DeviceModel, Quirks, RegisterSpec, SimulatedDevice
from firmware_sim.faults import Faults
from firmware_sim.line import SerialLine
from firmware_sim.models import MODELS, ModelContext, WaterLevelGauge, water_level_gauge
from firmware_sim.scenario import (
    SCENARIOS,
    RunningScenario,
    Scenario,
    ServedDevice,
    load_scenario,
)
from firmware_sim.sentence_devices import SENTENCE_MODELS, SentenceDevice

__all__ = [
    "MODELS",
    "SCENARIOS",
    "SENTENCE_MODELS",
    "BusStats",
    "DeviceModel",
    "Faults",
    "ModelContext",
    "Quirks",
    "RegisterSpec",
    "RunningScenario",
    "Scenario",
    "SentenceDevice",
    "SerialLine",
    "ServedDevice",
    "SimulatedBus",
    "SimulatedDevice",
    "WaterLevelGauge",
    "load_scenario",
    "water_level_gauge",
]
