"""The whole edgewatch system on one machine, as real processes: used by the demo, the
end-to-end tests and the pipeline benchmark, so all three run the same thing.

``LocalSystem`` starts reference tier centers, the controller, and simulated gateways (a
firmware simulator on a pty plus the real agent reading it) as children of a ProcessGroup,
each configured through the same files an operator would write. A gateway runs the demo's
water gauges (``start_gateway``) or a firmware-sim scenario such as the rainstorm
(``start_scenario_gateway``), its agent config written from the simulator's manifest.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgewatch.broker import free_port, port_accepts
from edgewatch.processes import Child, ProcessGroup
from edgewatch.sim_config import primary_metric, scenario_agent_config
from edgewatch.waiting import wait_until

STATION_PROTOCOLS = ("sl651", "hj212")  # each gets a listener port when a scenario runs


@dataclass(frozen=True)
class CenterSpec:
    name: str
    tier: str
    place: str


CENTERS = (
    CenterSpec("chongqing-city", "city", "cq"),
    CenterSpec("yuzhong-district", "district", "cq/yuzhong"),
    CenterSpec("jiefangbei-street", "street", "cq/yuzhong/jiefangbei"),
)
GATEWAYS = {
    "gw-demo-1": "cq/yuzhong/jiefangbei/grid-1",
    "gw-demo-2": "cq/yuzhong/jiefangbei/grid-2",
}
# The demo's third gateway: the flood-station scenario, Modbus gauges and pushing stations.
STATION_GATEWAY = "gw-flood-1"
STATION_GATEWAY_PLACE = "cq/yuzhong/jiefangbei/grid-3"
# What people call the demo's places: the risk map and the console show names, not ids.
PLACE_NAMES = {
    "cq": "Chongqing",
    "cq/yuzhong": "Yuzhong",
    "cq/yuzhong/jiefangbei": "Jiefangbei",
    "cq/yuzhong/jiefangbei/grid-1": "Jiefangbei grid 1",
    "cq/yuzhong/jiefangbei/grid-2": "Jiefangbei grid 2",
    STATION_GATEWAY_PLACE: "Jiefangbei grid 3",
}


class StartupError(RuntimeError):
    """A part did not come up; the message says which and shows its log."""


def get_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (loopback)
        return json.load(response)


def http_ok(url: str) -> bool:
    try:
        get_json(url, timeout_s=0.5)
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return True


def demo_places() -> dict[str, str]:
    """The demo's gateways and their places: two water-gauge gateways and the stations'."""
    return {**GATEWAYS, STATION_GATEWAY: STATION_GATEWAY_PLACE}


def controller_config(
    mqtt_port: int,
    http_port: int,
    db: Path,
    centers: dict[CenterSpec, int],
    center_secret: str | None = None,
    *,
    gateways: dict[str, str] | None = None,
) -> str:
    """The controller's TOML; ``gateways`` (id -> place) defaults to the demo's three."""
    lines = [
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n',
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n',
        f'[storage]\npath = "{db}"\n',
        # One machine, loopback only: no API tokens (production refuses this mode).
        '[api]\nauth = "demo"\n',
    ]
    for gateway_id, place in (demo_places() if gateways is None else gateways).items():
        lines.append(f'[[gateways]]\nid = "{gateway_id}"\nplace = "{place}"\n')
    for spec, port in centers.items():
        lines.append(
            f'[[centers]]\nname = "{spec.name}"\ntier = "{spec.tier}"\nplace = "{spec.place}"\n'
            f'url = "http://127.0.0.1:{port}/ingest"\n'
            + (f'secret = "{center_secret}"\n' if center_secret else "")
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class GatewayTiming:
    """How often a simulated gateway polls and reports; the demo uses the defaults."""

    poll_interval_s: float = 1.0
    heartbeat_interval_s: float = 5.0
    keepalive_s: int = 5
    gauges: int = 1  # simulated water gauges on the gateway's bus, slaves 1..N


def agent_config(
    gateway_id: str, mqtt_port: int, data_dir: Path, pty: str, timing: GatewayTiming
) -> str:
    return f"""\
[gateway]
id = "{gateway_id}"
data_dir = "{data_dir}"
heartbeat_interval_s = {timing.heartbeat_interval_s}

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
keepalive_s = {timing.keepalive_s}

[[ports]]
name = "bus1"
url = "{pty}"
baud = 9600
parity = "N"
timeout_s = 0.3

{gauge_sections(timing)}"""


def accepts_on(port: int) -> Callable[[], bool]:
    return lambda: port_accepts("127.0.0.1", port)


def gauge_sections(timing: GatewayTiming) -> str:
    """One [[devices]] table per simulated gauge: level (0.1 cm) and status word."""
    sections = []
    for slave in range(1, timing.gauges + 1):
        sections.append(f"""\
[[devices]]
name = "river-gauge-{slave}"
driver = "modbus_rtu"
port = "bus1"
slave = {slave}
interval_s = {timing.poll_interval_s}
[[devices.registers]]
metric = "level_cm"
address = 0
type = "u16"
scale = 0.1
unit = "cm"
[[devices.registers]]
metric = "status_word"
address = 1
type = "u16"
""")
    return "\n".join(sections)


def wait_for_child(child: Child, what: str, ready: Callable[[], object], timeout_s: float) -> None:
    """Wait until ``ready()``; fail at once, with its log, if the child exits meanwhile."""

    def check() -> object:
        if not child.alive:
            raise StartupError(f"{child.name} exited while starting:\n{child.log_tail()}")
        return ready()

    try:
        wait_until(check, timeout_s=timeout_s, interval_s=0.05, message=what)
    except TimeoutError as exc:
        raise StartupError(f"{exc}\n--- {child.log_path} ---\n{child.log_tail()}") from None


@dataclass
class SimulatedGateway:
    gateway_id: str
    config_path: Path
    data_dir: Path
    sim: Child
    agent: Child
    devices: list[dict[str, Any]] = field(default_factory=list)  # the simulator's manifest

    @property
    def stations(self) -> list[dict[str, Any]]:
        """The manifest entries of stations that push (SL651, HJ212)."""
        return [d for d in self.devices if d.get("station")]


@dataclass
class LocalSystem:
    """Start the parts one by one; the ProcessGroup stops them all."""

    workdir: Path
    mqtt_port: int
    procs: ProcessGroup
    centers: dict[CenterSpec, int] = field(default_factory=dict)
    gateways: dict[str, SimulatedGateway] = field(default_factory=dict)
    http_port: int = 0
    controller: Child | None = None
    center_secret: str | None = None  # webhooks signed, and verified by the centers
    # The gateways the controller's config places (id -> place), the demo's three by default;
    # an unplaced gateway's readings go to the city centers only.
    places: dict[str, str] = field(default_factory=demo_places)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1"

    def center_url(self, spec: CenterSpec) -> str:
        return f"http://127.0.0.1:{self.centers[spec]}"

    def start_centers(self) -> None:
        for spec in CENTERS:
            port = free_port()
            secret = ["--secret", self.center_secret] if self.center_secret else []
            child = self.procs.start_cli(
                f"center-{spec.name}", "center", "run", "--name", spec.name,
                "--tier", spec.tier, "--port", str(port), *secret,
            )  # fmt: skip
            wait_for_child(child, f"center {spec.name}", accepts_on(port), 20)
            self.centers[spec] = port

    def start_controller(self, extra_config: str = "") -> Child:
        """Start (or restart) the controller; ``extra_config`` is appended to its TOML."""
        self.http_port = free_port()
        config_path = self.workdir / "controller.toml"
        config_path.write_text(
            controller_config(
                self.mqtt_port,
                self.http_port,
                self.workdir / "controller.db",
                self.centers,
                self.center_secret,
                gateways=self.places,
            )
            + extra_config
        )
        self.controller = self.procs.start_cli(
            "controller", "controller", "run", "--config", str(config_path)
        )
        wait_for_child(
            self.controller, "controller API", lambda: http_ok(f"{self.base_url}/healthz"), 30
        )
        return self.controller

    def start_gateway(
        self, gateway_id: str, timing: GatewayTiming | None = None
    ) -> SimulatedGateway:
        """A gateway whose bus carries ``timing.gauges`` simulated water gauges."""
        timing = timing or GatewayTiming()
        return self.start_simulated_gateway(
            gateway_id,
            ["--devices", str(timing.gauges)],
            lambda data_dir, devices: agent_config(
                gateway_id, self.mqtt_port, data_dir, devices[0]["pty"], timing
            ),
        )

    def start_scenario_gateway(
        self,
        gateway_id: str,
        scenario: str,
        *,
        time_scale: float,
        timing: GatewayTiming | None = None,
    ) -> SimulatedGateway:
        """A gateway on a firmware-sim scenario (a name or a TOML file), its clock sped up
        ``time_scale`` times, with an agent reading each Modbus device of its manifest and
        listening for its stations (TCP stations dial a port chosen here for each protocol;
        they retry until the agent listens)."""
        ports = {protocol: free_port() for protocol in STATION_PROTOCOLS}
        connect = [
            arg for p, port in ports.items() for arg in ("--connect", f"{p}=127.0.0.1:{port}")
        ]
        return self.start_simulated_gateway(
            gateway_id,
            ["--scenario", scenario, "--time-scale", str(time_scale), *connect],
            lambda data_dir, devices: scenario_agent_config(
                gateway_id,
                self.mqtt_port,
                data_dir,
                devices,
                timing or GatewayTiming(),
                listener_ports=ports,
            ),
        )

    def start_simulated_gateway(
        self,
        gateway_id: str,
        sim_args: list[str],
        agent_toml: Callable[[Path, list[dict[str, Any]]], str],
    ) -> SimulatedGateway:
        """Start ``edgewatch sim run`` with ``sim_args``, then the agent with the config
        ``agent_toml(data_dir, devices of the simulator's manifest)`` returns."""
        manifest = self.workdir / f"{gateway_id}-sim.json"
        sim = self.procs.start_cli(
            f"sim-{gateway_id}", "sim", "run", *sim_args, "--manifest", str(manifest)
        )
        wait_for_child(sim, f"simulator manifest {manifest}", manifest.exists, 20)
        data_dir = self.workdir / gateway_id
        config_path = self.workdir / f"{gateway_id}.toml"
        devices = json.loads(manifest.read_text())["devices"]
        config_path.write_text(agent_toml(data_dir, devices))
        agent = self.start_agent(gateway_id, config_path)
        gateway = SimulatedGateway(gateway_id, config_path, data_dir, sim, agent, devices)
        self.gateways[gateway_id] = gateway
        return gateway

    def start_agent(self, gateway_id: str, config_path: Path) -> Child:
        return self.procs.start_cli(
            f"agent-{gateway_id}", "agent", "run", "--config", str(config_path)
        )

    def name_places(self, names: dict[str, str]) -> None:
        """Register places with their names (``POST /places``, parents first; demo mode)."""
        for path, name in sorted(names.items()):
            request = urllib.request.Request(  # noqa: S310 (loopback, http)
                f"{self.api}/places",
                data=json.dumps({"path": path, "name": name}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 (loopback)
                pass

    def gateway_state(self, gateway_id: str) -> str | None:
        try:
            return str(get_json(f"{self.api}/gateways/{gateway_id}")["state"])
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return None

    def station_readings(self, gateway_id: str) -> dict[str, dict[str, Any]]:
        """Each pushing station of a gateway with its protocol and the newest reading of its
        first metric (the river level, the rain, PM2.5, pH)."""
        gateway = self.gateways.get(gateway_id)
        if gateway is None:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for station in gateway.stations:
            metric = primary_metric(station["model"])
            try:
                page = get_json(f"{self.api}/devices/{gateway_id}.{station['name']}/readings")
                readings = [r for r in page["readings"] if r["metric"] == metric]
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                readings = []
            newest = readings[0] if readings else {}
            found[station["name"]] = {
                "protocol": station["protocol"],
                "transport": station["transport"],
                "metric": metric,
                "value": newest.get("value"),
                "unit": newest.get("unit"),
                "quality": newest.get("quality"),
            }
        return found

    def summary(self) -> dict[str, Any]:
        """The controller's summary, with what each center says it received."""
        summary: dict[str, Any] = get_json(f"{self.api}/summary")
        for spec, port in self.centers.items():
            entry = summary.setdefault("centers", {}).setdefault(spec.name, {"tier": spec.tier})
            try:
                entry["received"] = get_json(f"http://127.0.0.1:{port}/received")["readings"]
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                entry["received"] = 0
        return summary
