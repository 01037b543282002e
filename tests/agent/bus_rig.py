"""A simulated RS-485 bus with several slaves, read by a real PortOwner on a real pty."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agent.bus.counter_state import CounterStore
from agent.bus.poller import DevicePoller
from agent.bus.ports import PortOwner
from agent.config import PortConfig
from drivers.base import DeviceConfig, Measurement
from drivers.registry import parse_device_config
from edgewatch.waiting import wait_until
from firmware_sim import ModelContext, SimulatedBus, SimulatedDevice
from firmware_sim.models import MODELS
from wire import Quality
from wire.clock import SYSTEM_CLOCK, Clock

WAIT_S = 5.0
DEVICE_TIMEOUT_S = 0.1  # cheap to wait out; a 9600-baud answer takes ~15 ms on the sim


@dataclass
class Sink:
    """Collects what the port owner stores: (device, ts_ms, measurements)."""

    reads: list[tuple[str, int, list[Measurement]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        with self.lock:
            self.reads.append((device, ts_ms, list(measurements)))

    def of(self, device: str) -> list[list[Measurement]]:
        with self.lock:
            return [m for d, _, m in self.reads if d == device]

    def good_reads(self, device: str) -> int:
        return sum(1 for ms in self.of(device) if any(m.quality is Quality.GOOD for m in ms))


def gauge(slave: int, **extra: Any) -> DeviceConfig:
    return parse_device_config(
        {
            "name": f"gauge-{slave}",
            "driver": "modbus_rtu",
            "port": "bus1",
            "interval_s": 0.02,
            "slave": slave,
            "timeout_s": DEVICE_TIMEOUT_S,
            "registers": [
                {"metric": "level_cm", "address": 0, "scale": 0.1, "unit": "cm", "valid_max": 1000}
            ],
            **extra,
        }
    )


def rain(slave: int) -> DeviceConfig:
    return parse_device_config(
        {
            "name": f"rain-{slave}",
            "driver": "modbus_rtu",
            "port": "bus1",
            "interval_s": 0.02,
            "slave": slave,
            "timeout_s": DEVICE_TIMEOUT_S,
            "registers": [
                {"metric": "rain_mm", "address": 0, "kind": "counter", "scale": 0.2, "unit": "mm"}
            ],
        }
    )


def simulated(model: str, slave: int, **options: Any) -> SimulatedDevice:
    return SimulatedDevice(MODELS[model](ModelContext(seed=slave, options=options)), slave=slave)


@dataclass
class Rig:
    bus: SimulatedBus
    owner: PortOwner
    sink: Sink

    def sim(self, slave: int) -> SimulatedDevice:
        return next(d for d in self.bus.devices if d.slave == slave)

    def poller(self, name: str) -> DevicePoller:
        return next(p for p in self.owner.pollers if p.name == name)

    def wait(self, condition: Any, what: str, timeout_s: float = WAIT_S) -> Any:
        return wait_until(condition, timeout_s=timeout_s, message=what)


@contextmanager
def bus_rig(
    sims: Sequence[SimulatedDevice],
    configs: Sequence[DeviceConfig],
    *,
    clock: Clock = SYSTEM_CLOCK,
    counters: CounterStore | None = None,
    **port: Any,
) -> Iterator[Rig]:
    sink = Sink()
    with SimulatedBus(sims) as bus:
        config = PortConfig.model_validate(
            {"name": "bus1", "url": bus.port_path, "timeout_s": 0.2, "backoff_max_s": 0.2, **port}
        )
        owner = PortOwner(config, configs, sink, clock, counters=counters)
        owner.start()
        try:
            yield Rig(bus, owner, sink)
        finally:
            owner.stop()
