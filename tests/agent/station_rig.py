"""The agent's listeners (StationServer + StationBook) on real sockets and ptys, with
firmware-sim stations dialing in: what the tests of the listening side share."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from agent.config import ListenerConfig
from agent.stations.book import StationBook
from agent.stations.server import StationServer
from drivers.base import Measurement
from drivers.registry import parse_device_config
from drivers.stations import Alarm, StationDeviceConfig
from firmware_sim.stations import SimStation, StationRunner, StationSpec, build_station
from wire.clock import SYSTEM_CLOCK

RIVER = "0012345678"
AIR_MN = "5001000000000000000000A1"


def river_config(name: str = "river-1", station: str = RIVER, **extra: Any) -> StationDeviceConfig:
    config = parse_device_config(
        {
            "name": name,
            "driver": "sl651",
            "port": "sl651-tcp",
            "station": station,
            "password": "1234",
            "interval_s": 60,
            "elements": [
                {"element": "Z", "metric": "level_m", "unit": "m"},
                {"element": "PT", "metric": "rain_total_mm", "unit": "mm", "counter": True},
                {"element": "VT", "metric": "supply_v", "unit": "V"},
            ],
            **extra,
        }
    )
    assert isinstance(config, StationDeviceConfig)
    return config


def air_config(name: str = "air-1", mn: str = AIR_MN, **extra: Any) -> StationDeviceConfig:
    config = parse_device_config(
        {
            "name": name,
            "driver": "hj212",
            "port": "hj212-tcp",
            "mn": mn,
            "password": "123456",
            "interval_s": 60,
            "factors": [
                {"factor": "a34004", "metric": "pm25_ug_m3", "unit": "ug/m3"},
                {"factor": "a21026", "metric": "so2_mg_m3", "unit": "mg/m3"},
            ],
            **extra,
        }
    )
    assert isinstance(config, StationDeviceConfig)
    return config


def tcp_listener(protocol: str, **extra: Any) -> ListenerConfig:
    return ListenerConfig.model_validate(
        {"name": f"{protocol}-tcp", "protocol": protocol, "host": "127.0.0.1", "port": 0, **extra}
    )


@dataclass
class Recorded:
    """What the book handed on, in order: ("alarm", device, Alarm) and ("reading", ...)."""

    events: list[tuple[str, str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sink(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        with self.lock:
            self.events.append(("reading", device, (ts_ms, list(measurements))))

    def alarm(self, station: StationDeviceConfig, alarm: Alarm) -> None:
        with self.lock:
            self.events.append(("alarm", station.name, alarm))

    def readings(self, device: str) -> list[tuple[int, list[Measurement]]]:
        with self.lock:
            return [e[2] for e in self.events if e[0] == "reading" and e[1] == device]

    def kinds(self) -> list[str]:
        with self.lock:
            return [e[0] for e in self.events]


@dataclass
class StationRig:
    server: StationServer
    book: StationBook
    recorded: Recorded
    stations: dict[str, SimStation]

    def port(self, listener: str) -> int:
        address = self.server.address(listener)
        assert address is not None
        return address[1]

    def refused(self, listener: str) -> dict[str, int]:
        return self.book.refused().get(listener, {})


@contextmanager
def station_rig(
    listeners: Sequence[ListenerConfig],
    devices: Sequence[StationDeviceConfig],
    stations: Sequence[StationSpec] = (),
) -> Iterator[StationRig]:
    """Listeners serving ``devices``; then ``stations`` dial in (TCP) or are wired (pty:
    their listener's url is filled in with the station's pty)."""
    recorded = Recorded()
    book = StationBook(devices, sink=recorded.sink, alarm=recorded.alarm, clock=SYSTEM_CLOCK)
    with ExitStack() as stack:
        built: dict[str, SimStation] = {}
        pty_stations = [s for s in stations if s.transport == "pty"]
        runner_pty = None
        if pty_stations:
            pty_built = [build_station(s) for s in pty_stations]
            runner_pty = stack.enter_context(StationRunner(pty_built))
            built.update(runner_pty.by_name)
            ptys = iter(st.pty for st in pty_built)
            listeners = [
                lst.model_copy(update={"url": next(ptys)}) if lst.kind == "serial" else lst
                for lst in listeners
            ]
        server = stack.enter_context(StationServer(listeners, devices, book, SYSTEM_CLOCK))
        targets: dict[str, tuple[str, int]] = {}
        for lst in listeners:
            address = server.address(lst.name)
            if lst.kind == "tcp" and address is not None:
                targets[lst.protocol] = ("127.0.0.1", address[1])
        tcp = [build_station(s, targets=targets) for s in stations if s.transport == "tcp"]
        if tcp:
            built.update(stack.enter_context(StationRunner(tcp)).by_name)
        yield StationRig(server, book, recorded, built)


def sim(
    name: str,
    model: str,
    key: str,
    *,
    transport: str = "tcp",
    password: str | None = None,
    **options: Any,
) -> StationSpec:
    """A simulated station reporting fast (every 0.3 s unless told), its first at once."""
    default_password = "1234" if model.startswith("sl651") else "123456"
    return StationSpec(
        name,
        model,
        key,
        password or default_password,
        transport=transport,
        options={"period_s": 0.3, "phase_s": 0, "answer_timeout_s": 2.0, **options},
    )
