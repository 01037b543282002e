"""Scenarios: which buses and devices to simulate, declared as data, and running them.

A running scenario publishes a manifest (JSON) saying where each device is served, so an
agent config can be written for it: ``{"devices": [{"name", "model", "bus", "pty",
"slave", "baud", "parity"}]}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from firmware_sim.bus import SimulatedBus
from firmware_sim.device import Clock, SimulatedDevice
from firmware_sim.models import MODELS


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    model: str  # a key of firmware_sim.models.MODELS
    slave: int
    seed: int = 0  # noise seed, so two gauges do not read alike


@dataclass(frozen=True, slots=True)
class BusSpec:
    name: str
    devices: tuple[DeviceSpec, ...]
    baud: int = 9600
    parity: str = "N"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    buses: tuple[BusSpec, ...]


def demo(devices: int = 1) -> Scenario:
    """One bus, 9600 8N1, with ``devices`` water-level gauges at slaves 1..N."""
    if not 1 <= devices <= 247:
        raise ValueError(f"demo: {devices} devices do not fit one bus (1-247)")
    gauges = tuple(
        DeviceSpec(name=f"gauge-{n}", model="water_level", slave=n, seed=n)
        for n in range(1, devices + 1)
    )
    return Scenario(name="demo", buses=(BusSpec(name="bus1", devices=gauges),))


# Scenario name -> factory taking the number of devices asked for.
SCENARIOS: dict[str, Callable[[int], Scenario]] = {"demo": demo}


@dataclass(frozen=True, slots=True)
class ServedDevice:
    """Where one simulated device is served: one entry of the manifest."""

    name: str
    model: str
    bus: str
    pty: str
    slave: int
    baud: int
    parity: str


def build_device(spec: DeviceSpec, *, clock: Clock = time.monotonic) -> SimulatedDevice:
    factory = MODELS.get(spec.model)
    if factory is None:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"device {spec.name!r}: unknown model {spec.model!r} (known: {known})")
    return SimulatedDevice(factory(spec.seed), slave=spec.slave, clock=clock)


class RunningScenario:
    """Serve every bus of a scenario, each on its own pty, until the context exits."""

    def __init__(
        self, scenario: Scenario, *, link_dir: Path | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.scenario = scenario
        self._link_dir = link_dir
        self._clock = clock
        self._stack = contextlib.ExitStack()
        self.buses: list[SimulatedBus] = []
        self.devices: list[ServedDevice] = []

    def __enter__(self) -> RunningScenario:
        with self._stack as stack:
            for bus_spec in self.scenario.buses:
                link = self._link_dir / bus_spec.name if self._link_dir else None
                bus = SimulatedBus(
                    [build_device(d, clock=self._clock) for d in bus_spec.devices],
                    name=bus_spec.name,
                    baud=bus_spec.baud,
                    parity=bus_spec.parity,
                    link_path=link,
                )
                stack.enter_context(bus)
                self.buses.append(bus)
                self.devices.extend(
                    ServedDevice(
                        d.name, d.model, bus.name, bus.port_path, d.slave, bus.baud, bus.parity
                    )
                    for d in bus_spec.devices
                )
            self._stack = stack.pop_all()  # started them all: keep them past this block
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()


def manifest(devices: list[ServedDevice]) -> dict[str, Any]:
    return {"devices": [asdict(d) for d in devices]}


def write_manifest(path: Path, devices: list[ServedDevice]) -> None:
    """Write the manifest atomically (tmp + rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest(devices), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
