"""Drivers meet the simulated firmware on real ptys: the two sides share no code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import serial

from firmware_sim import SimulatedBus, WaterLevelGauge

# Short enough to keep timeouts cheap, long enough for a loaded CI machine's pty round trip.
PORT_TIMEOUT_S = 0.5


@pytest.fixture
def gauge_bus() -> Iterator[SimulatedBus]:
    """One water-level gauge at slave 1 on a fresh pty."""
    with SimulatedBus([WaterLevelGauge(slave=1)]) as bus:
        yield bus


class RecordingSerial(serial.Serial):
    """A real serial port that notes the timeout of every read and what it returned.

    How long a silent device keeps a driver is the timeouts its reads block for: a test
    adds them up instead of timing the read, which a loaded machine would stretch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.reads: list[tuple[float | None, bytes]] = []
        super().__init__(*args, **kwargs)

    def read(self, size: int = 1) -> bytes:
        timeout_s = self.timeout
        data = super().read(size)
        self.reads.append((timeout_s, bytes(data)))
        return data

    def waited_s(self) -> float:
        """The longest a silent line could have held the reads so far: the sum of the
        timeouts of reads that ended with fewer bytes than asked (or none)."""
        return sum(t or 0.0 for t, data in self.reads if not data)


@pytest.fixture
def serial_port(gauge_bus: SimulatedBus) -> Iterator[RecordingSerial]:
    """The gauge's line, opened as the agent's port owner would."""
    with RecordingSerial(gauge_bus.port_path, 9600, timeout=PORT_TIMEOUT_S) as port:
        yield port


def gauge_config(**overrides: Any) -> dict[str, Any]:
    """A raw ``[[devices]]`` table for the simulated gauge."""
    raw: dict[str, Any] = {
        "name": "gauge-1",
        "driver": "modbus_rtu",
        "port": "bus1",
        "slave": 1,
        "registers": [
            {"metric": "level_cm", "address": 0, "scale": 0.1, "unit": "cm"},
            {"metric": "status", "address": 1},
            {"metric": "firmware_version", "address": 2},
        ],
    }
    raw.update(overrides)
    return raw
