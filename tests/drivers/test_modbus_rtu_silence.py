"""The port's inter-frame silence, through minimalmodbus 2.1.1's internals.

``char-times`` pre-dates minimalmodbus's ``_latest_read_times`` entry for the port so that
its sleep before a request is 3.5 character times instead of max(3.5 chars, 1.75 ms).
These tests fail loudly if minimalmodbus changes those internals (it is pinned at 2.1.1).
"""

from __future__ import annotations

import time
import types
from collections.abc import Iterator

import minimalmodbus
import pytest
import serial

from drivers.base import InterFrameSilence, LineOptions
from drivers.modbus_rtu.port import check_minimalmodbus_internals
from drivers.registry import create_driver, parse_device_config
from firmware_sim import SimulatedBus, WaterLevelGauge

from .conftest import gauge_config

BAUD = 115200
CHAR_TIMES_S = 3.5 * 11 / BAUD  # 0.33 ms
STANDARD_S = 0.00175


def test_minimalmodbus_is_the_version_whose_internals_we_use() -> None:
    assert minimalmodbus.__version__ == "2.1.1"
    assert isinstance(minimalmodbus._latest_read_times, dict)
    assert minimalmodbus._calculate_minimum_silent_period(BAUD) == STANDARD_S
    assert minimalmodbus._calculate_minimum_silent_period(9600) == pytest.approx(3.5 * 11 / 9600)
    check_minimalmodbus_internals()


@pytest.fixture
def fast_bus() -> Iterator[SimulatedBus]:
    with SimulatedBus([WaterLevelGauge(slave=1)], baud=BAUD) as bus:
        yield bus


def sleeps_between_reads(
    bus: SimulatedBus, mode: InterFrameSilence, monkeypatch: pytest.MonkeyPatch
) -> list[float]:
    """What minimalmodbus sleeps before each of back-to-back requests."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    fake_time = types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep)
    monkeypatch.setattr(minimalmodbus, "time", fake_time)
    config = parse_device_config(gauge_config())
    with serial.Serial(bus.port_path, BAUD, timeout=0.5) as port:
        driver = create_driver(config, port, LineOptions(inter_frame_silence=mode))
        for _ in range(6):
            driver.read()
    return slept


def test_modbus_standard_keeps_the_fixed_1_75_ms(
    fast_bus: SimulatedBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept = sleeps_between_reads(fast_bus, InterFrameSilence.MODBUS_STANDARD, monkeypatch)
    assert len(slept) >= 4  # back-to-back requests sleep out the silence
    assert max(slept) > CHAR_TIMES_S * 2  # ... well beyond 3.5 character times


def test_char_times_waits_only_3_5_character_times(
    fast_bus: SimulatedBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept = sleeps_between_reads(fast_bus, InterFrameSilence.CHAR_TIMES, monkeypatch)
    assert all(s <= CHAR_TIMES_S + 1e-6 for s in slept), slept


def test_char_times_refuses_another_minimalmodbus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minimalmodbus, "__version__", "2.2.0")
    with pytest.raises(RuntimeError, match=r"relies on minimalmodbus 2\.1\.1 internals"):
        check_minimalmodbus_internals()
