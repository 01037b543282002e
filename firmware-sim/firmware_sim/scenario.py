"""Scenarios: which buses, devices and signals to simulate, declared in TOML, and running them.

A scenario file (``firmware_sim/scenarios/NAME.toml``, or any path)::

    name = "rainstorm"
    time_scale = 1.0                 # scenario seconds per real second

    [signals.rain_mm_per_h]          # quantities over scenario time: see firmware_sim.signals
    kind = "piecewise"
    points = [[0, 0], [600, 40]]

    [[buses]]
    name = "bus1"
    protocol = "modbus_rtu"          # modbus_rtu, modbus_ascii or sentences
    baud = 9600
    parity = "N"                     # N, E, O, M, S
    stopbits = 1                     # optional: 1, 1.5 or 2
    bytesize = 8                     # optional: data bits, 5-8

    [[buses.devices]]
    name = "gauge-1"
    model = "water_level"            # models.MODELS or sentence_devices.SENTENCE_MODELS
    slave = 1                        # Modbus slave id, or the sentence device's address
    seed = 1                         # noise seed
    response_time_s = 0.0            # optional quirks: response time, sleeping, boot delay
    inputs = { level_cm = "river_level_cm" }   # model input -> scenario signal
    options = {}                     # model options (see each model's docstring)

Stations that push (SL651 remote stations, HJ212 loggers: ``firmware_sim.stations``) are
``[[stations]]`` tables::

    [[stations]]
    name = "river-st-1"
    model = "sl651_river"            # sl651_river, sl651_rain, hj212_air, hj212_water
    station = "0012345678"           # SL651: the address (10 hex digits); HJ212: the MN
    password = "1234"
    transport = "tcp"                # tcp: dial in to the gateway's listener; pty: a serial line
    seed = 1
    inputs = { level_m = "river_level_m" }
    options = { period_s = 60, alarm_level_m = 15.0, keepalive_s = 40 }

A TCP station dials the listener of its protocol given when the scenario is run
(``RunningScenario(connect={"sl651": (host, port)})``, ``edgewatch sim run --connect``).

A running scenario publishes a manifest (JSON) saying where each device is served, so an
agent config can be written for it: ``{"devices": [{"name", "model", "bus", "pty",
"slave", "baud", "parity", "protocol", "control", "rfc2217", "stopbits", "bytesize"}]}``
(a station also has ``station``, ``password`` and ``transport``; ``protocol`` is ``sl651``
or ``hj212``, ``pty`` empty for TCP); ``control`` is the control socket
(``firmware_sim.control``) through which faults are switched from outside; ``rfc2217`` is the
bus's RFC 2217 URL (``rfc2217://127.0.0.1:N``), the door through which the master's parity
reaches the simulator (a pty drops it).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from firmware_sim.bus import SimulatedBus
from firmware_sim.control import ControlServer
from firmware_sim.device import Clock, Quirks, SimulatedDevice
from firmware_sim.line import SerialLine
from firmware_sim.models import MODELS, ModelContext
from firmware_sim.sentence_devices import SENTENCE_MODELS, SentenceDevice
from firmware_sim.signals import Quantity, build_quantities
from firmware_sim.stations import SimStation, StationRunner, StationSpec, build_station
from firmware_sim.uart import check_settings

PROTOCOLS = ("modbus_rtu", "modbus_ascii", "sentences")


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    model: str  # a key of MODELS (Modbus) or SENTENCE_MODELS (sentences)
    slave: int
    seed: int = 0  # noise seed, so two gauges do not read alike
    response_time_s: float = 0.0
    sleep_after_quiet_s: float | None = None
    boot_delay_s: float = 0.0
    inputs: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BusSpec:
    name: str
    devices: tuple[DeviceSpec, ...]
    baud: int = 9600
    parity: str = "N"
    protocol: str = "modbus_rtu"
    stopbits: float = 1
    bytesize: int = 8


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    buses: tuple[BusSpec, ...]
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    time_scale: float = 1.0
    stations: tuple[StationSpec, ...] = ()

    def with_devices(self, count: int) -> Scenario:
        """The one-device scenario with ``count`` copies of its device (slaves 1..N)."""
        if count == 1:
            return self
        if not 1 <= count <= 247:
            raise ValueError(f"{self.name}: {count} devices do not fit one bus (1-247)")
        if len(self.buses) != 1 or len(self.buses[0].devices) != 1:
            raise ValueError(f"{self.name}: --devices needs a scenario of one device")
        (bus,) = self.buses
        (device,) = bus.devices
        prefix = device.name.rsplit("-", 1)[0]
        copies = tuple(
            replace(device, name=f"{prefix}-{n}", slave=n, seed=n) for n in range(1, count + 1)
        )
        return replace(self, buses=(replace(bus, devices=copies),))


def packaged_scenarios() -> dict[str, str]:
    """Scenario name -> TOML text, for every file in firmware_sim/scenarios/."""
    folder = resources.files("firmware_sim") / "scenarios"
    return {
        entry.name.removesuffix(".toml"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


SCENARIOS = sorted(packaged_scenarios())


def load_scenario(name_or_path: str) -> Scenario:
    """A packaged scenario by name, or a TOML file by path. Errors name what is wrong."""
    packaged = packaged_scenarios()
    if name_or_path in packaged:
        return parse_scenario(tomllib.loads(packaged[name_or_path]), source=name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"no scenario {name_or_path!r} (packaged: {', '.join(sorted(packaged))})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"scenario {path}: {exc}") from None
    return parse_scenario(raw, source=str(path))


def parse_scenario(raw: dict[str, Any], *, source: str = "scenario") -> Scenario:
    try:
        buses = tuple(_bus(b) for b in raw.get("buses", []))
        stations = tuple(StationSpec(**s) for s in raw.get("stations", []))
        scenario = Scenario(
            name=str(raw.get("name", source)),
            buses=buses,
            signals=dict(raw.get("signals", {})),
            time_scale=float(raw.get("time_scale", 1.0)),
            stations=stations,
        )
        for station in stations:
            station.check()
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"scenario {source}: {exc!r}") from None
    if not buses and not stations:
        raise ValueError(f"scenario {source}: no [[buses]] and no [[stations]]")
    for station in stations:
        for signal in station.inputs.values():
            if signal not in scenario.signals:
                raise ValueError(
                    f"scenario {source}: station {station.name!r}: no signal {signal!r}"
                )
    names = [d.name for b in buses for d in b.devices] + [s.name for s in stations]
    if len(set(names)) != len(names):
        raise ValueError(f"scenario {source}: device names repeat: {names}")
    for bus in buses:
        known = SENTENCE_MODELS if bus.protocol == "sentences" else MODELS
        for device in bus.devices:
            if device.model not in known:
                raise ValueError(
                    f"scenario {source}: device {device.name!r}: model {device.model!r} is not"
                    f" one of {sorted(known)} for protocol {bus.protocol}"
                )
            for signal in device.inputs.values():
                if signal not in scenario.signals:
                    raise ValueError(
                        f"scenario {source}: device {device.name!r}: no signal {signal!r}"
                    )
    build_quantities(scenario.signals)  # check the signals once, at load
    return scenario


def _bus(raw: dict[str, Any]) -> BusSpec:
    protocol = str(raw.get("protocol", "modbus_rtu"))
    if protocol not in PROTOCOLS:
        raise ValueError(f"bus {raw.get('name')!r}: protocol {protocol!r} not in {PROTOCOLS}")
    spec = BusSpec(
        name=str(raw["name"]),
        devices=tuple(DeviceSpec(**d) for d in raw["devices"]),
        baud=int(raw.get("baud", 9600)),
        parity=str(raw.get("parity", "N")),
        protocol=protocol,
        stopbits=_stopbits(raw.get("stopbits", 1)),
        bytesize=int(raw.get("bytesize", 8)),
    )
    check_settings(
        f"bus {spec.name!r}", parity=spec.parity, stopbits=spec.stopbits, bytesize=spec.bytesize
    )
    return spec


def _stopbits(value: Any) -> float:
    """1 and 2 stay whole numbers (as pyserial and agent.toml write them); 1.5 is 1.5."""
    number = float(value)
    return int(number) if number.is_integer() else number


def demo(devices: int = 1) -> Scenario:
    """One bus, 9600 8N1, with ``devices`` water-level gauges at slaves 1..N."""
    return load_scenario("demo").with_devices(devices)


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
    protocol: str = "modbus_rtu"
    control: str | None = None
    rfc2217: str | None = None  # the bus's RFC 2217 URL: the master's parity shows there
    stopbits: float = 1
    bytesize: int = 8
    station: str | None = None  # a pushing station: its address / MN,
    password: str | None = None  # its password,
    transport: str | None = None  # how it talks: "tcp" (dials in) or "pty",
    period_s: float | None = None  # and how often it reports


def build_device(
    spec: DeviceSpec,
    *,
    protocol: str = "modbus_rtu",
    quantities: dict[str, Quantity] | None = None,
    clock: Clock = time.monotonic,
    time_scale: float = 1.0,
) -> SimulatedDevice | SentenceDevice:
    quantities = quantities or {}
    context = ModelContext(
        seed=spec.seed,
        inputs={name: quantities[signal] for name, signal in spec.inputs.items()},
        options=spec.options,
    )
    if protocol == "sentences":
        return SentenceDevice(
            SENTENCE_MODELS[spec.model](context),
            address=spec.slave,
            clock=clock,
            time_scale=time_scale,
            response_time_s=spec.response_time_s,
            seed=spec.seed,
        )
    factory = MODELS.get(spec.model)
    if factory is None:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"device {spec.name!r}: unknown model {spec.model!r} (known: {known})")
    quirks = Quirks(spec.response_time_s, spec.sleep_after_quiet_s, spec.boot_delay_s)
    return SimulatedDevice(
        factory(context),
        slave=spec.slave,
        clock=clock,
        quirks=quirks,
        time_scale=time_scale,
        seed=spec.seed,
    )


class RunningScenario:
    """Serve every bus of a scenario, each on its own pty, until the context exits.

    ``control_path`` also serves the control socket there. ``time_scale`` overrides the
    scenario's own. Each bus is also served over RFC 2217 on 127.0.0.1 (``rfc2217=False``:
    on its pty only). ``connect`` says where each protocol's listener is, for the stations
    that dial in over TCP (``{"sl651": ("127.0.0.1", 5001)}``).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        link_dir: Path | None = None,
        clock: Clock = time.monotonic,
        control_path: Path | None = None,
        time_scale: float | None = None,
        rfc2217: bool = True,
        connect: Mapping[str, tuple[str, int]] | None = None,
    ) -> None:
        self.scenario = scenario
        self._rfc2217 = rfc2217
        self._connect = dict(connect or {})
        self._link_dir = link_dir
        self._clock = clock
        self._control_path = control_path
        self._time_scale = scenario.time_scale if time_scale is None else time_scale
        self._stack = contextlib.ExitStack()
        self.buses: list[SimulatedBus | SerialLine] = []
        self.devices: list[ServedDevice] = []
        self.by_name: dict[str, SimulatedDevice | SentenceDevice | SimStation] = {}

    def __enter__(self) -> RunningScenario:
        quantities = build_quantities(self.scenario.signals)
        control = str(self._control_path) if self._control_path else None
        with self._stack as stack:
            for bus_spec in self.scenario.buses:
                link = self._link_dir / bus_spec.name if self._link_dir else None
                built = [
                    build_device(
                        d,
                        protocol=bus_spec.protocol,
                        quantities=quantities,
                        clock=self._clock,
                        time_scale=self._time_scale,
                    )
                    for d in bus_spec.devices
                ]
                self.by_name.update(
                    (d.name, b) for d, b in zip(bus_spec.devices, built, strict=True)
                )
                bus = _serve(bus_spec, built, link, rfc2217=self._rfc2217)
                stack.enter_context(bus)
                self.buses.append(bus)
                self.devices.extend(
                    ServedDevice(
                        d.name,
                        d.model,
                        bus.name,
                        bus.port_path,
                        d.slave,
                        bus.baud,
                        bus.parity,
                        bus_spec.protocol,
                        control,
                        bus.rfc2217_url,
                        bus.stopbits,
                        bus.bytesize,
                    )
                    for d in bus_spec.devices
                )
            if self.scenario.stations:
                self._serve_stations(stack, quantities, control)
            if self._control_path is not None:
                stack.enter_context(ControlServer(self._control_path, self.by_name))
            self._stack = stack.pop_all()  # started them all: keep them past this block
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _serve_stations(
        self, stack: contextlib.ExitStack, quantities: dict[str, Quantity], control: str | None
    ) -> None:
        specs = self.scenario.stations
        stations = [
            build_station(
                spec,
                quantities=quantities,
                targets=self._connect,
                clock=self._clock,
                time_scale=self._time_scale,
            )
            for spec in specs
        ]
        runner = stack.enter_context(StationRunner(stations))
        self.by_name.update(runner.by_name)
        self.devices.extend(
            ServedDevice(
                spec.name,
                spec.model,
                spec.transport,
                station.pty,
                0,
                9600,
                "N",
                spec.protocol,
                control,
                station=station.key,
                password=spec.password,
                transport=spec.transport,
                period_s=station.options.period_s,
            )
            for spec, station in zip(specs, stations, strict=True)
        )


def _serve(
    spec: BusSpec,
    devices: list[SimulatedDevice | SentenceDevice],
    link: Path | None,
    *,
    rfc2217: bool,
) -> SimulatedBus | SerialLine:
    serve: partial[SerialLine] | partial[SimulatedBus]
    if spec.protocol == "sentences":
        serve = partial(SerialLine, [d for d in devices if isinstance(d, SentenceDevice)])
    else:
        mode = "ascii" if spec.protocol == "modbus_ascii" else "rtu"
        slaves = [d for d in devices if isinstance(d, SimulatedDevice)]
        serve = partial(SimulatedBus, slaves, mode=mode)
    return serve(
        name=spec.name,
        baud=spec.baud,
        parity=spec.parity,
        stopbits=spec.stopbits,
        bytesize=spec.bytesize,
        link_path=link,
        rfc2217=rfc2217,
    )


STATION_FIELDS = ("station", "password", "transport", "period_s")


def manifest(devices: list[ServedDevice]) -> dict[str, Any]:
    """The manifest; a device that is no station has no station fields."""
    entries = [asdict(d) for d in devices]
    for entry in entries:
        if entry["station"] is None:
            for key in STATION_FIELDS:
                del entry[key]
    return {"devices": entries}


def write_manifest(path: Path, devices: list[ServedDevice]) -> None:
    """Write the manifest atomically (tmp + rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest(devices), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
