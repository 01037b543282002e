"""Loaded gateways for the fault tests: N simulated gauges, 3 registers each, short intervals,
and what the agent's buffer and the controller's store hold (read from their files); what
the centers recorded, delivery by delivery, and the controller's counters, so a reading
stored, forwarded or received twice shows."""

from __future__ import annotations

import sqlite3
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgewatch.system import CENTERS, CenterSpec, LocalSystem, SimulatedGateway, get_json
from edgewatch.waiting import wait_until

REGISTERS = (("level_cm", 0, 0.1, "cm"), ("status", 1, 1.0, ""), ("firmware", 2, 1.0, ""))


@dataclass(frozen=True)
class Load:
    devices: int = 5
    interval_s: float = 0.3  # 5 devices x 3 registers / 0.3 s = 50 readings/s
    buffer: str = ""  # the body of the agent's [buffer] table
    keepalive_s: int = 2
    heartbeat_interval_s: float = 1.0
    # The simulated bus's speed: at 9600 baud a 3-register poll takes ~30 ms on the wire,
    # so one bus carries ~33 polls (~100 readings) a second; faster loads need more baud.
    baud: int = 9600

    @property
    def readings_per_s(self) -> float:
        return self.devices * len(REGISTERS) / self.interval_s


def agent_toml(gateway_id: str, mqtt_port: int, data_dir: Path, pty: str, load: Load) -> str:
    text = f"""\
[gateway]
id = "{gateway_id}"
data_dir = "{data_dir}"
heartbeat_interval_s = {load.heartbeat_interval_s}

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
keepalive_s = {load.keepalive_s}
reconnect_min_s = 0.2
reconnect_max_s = 1.0

[buffer]
{load.buffer}

[[ports]]
name = "bus1"
url = "{pty}"
baud = {load.baud}
timeout_s = 0.3
"""
    for slave in range(1, load.devices + 1):
        text += f"""
[[devices]]
name = "gauge-{slave}"
driver = "modbus_rtu"
port = "bus1"
slave = {slave}
interval_s = {load.interval_s}
"""
        for metric, address, scale, unit in REGISTERS:
            text += f"""[[devices.registers]]
metric = "{metric}"
address = {address}
type = "u16"
scale = {scale}
unit = "{unit}"
"""
    return text


def scenario_toml(load: Load) -> str:
    """The simulator's scenario: ``load.devices`` water gauges on one bus at ``load.baud``."""
    text = (
        f'name = "load"\n\n[[buses]]\nname = "bus1"\nprotocol = "modbus_rtu"\nbaud = {load.baud}\n'
    )
    for slave in range(1, load.devices + 1):
        text += (
            f'\n[[buses.devices]]\nname = "gauge-{slave}"\nmodel = "water_level"\n'
            f"slave = {slave}\nseed = {slave}\n"
        )
    return text


def start_loaded_gateway(system: LocalSystem, gateway_id: str, load: Load) -> SimulatedGateway:
    scenario = system.workdir / f"{gateway_id}-scenario.toml"
    scenario.write_text(scenario_toml(load))
    return system.start_simulated_gateway(
        gateway_id,
        ["--scenario", str(scenario)],
        lambda data_dir, devices: agent_toml(
            gateway_id, system.mqtt_port, data_dir, devices[0]["pty"], load
        ),
    )


def agent_meta(gateway: SimulatedGateway) -> dict[str, int]:
    """The agent buffer's meta table (next_seq, session, dropped.<reason>)."""
    path = gateway.data_dir / "buffer.db"
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        try:
            return dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError:
            return {}


def agent_last_seq(gateway: SimulatedGateway) -> int:
    return int(agent_meta(gateway).get("next_seq", 1)) - 1


def stored_seqs(system: LocalSystem, gateway_id: str, up_to: int | None = None) -> list[int]:
    """Every seq of ``gateway_id`` in the controller's store (with repeats, if any)."""
    with sqlite3.connect(system.workdir / "controller.db", timeout=10) as db:
        rows = db.execute(
            "SELECT seq FROM readings WHERE gateway = ? AND seq <= ? ORDER BY seq",
            (gateway_id, up_to if up_to is not None else 2**62),
        ).fetchall()
    return [seq for (seq,) in rows]


def has_every_seq(system: LocalSystem, gateway_id: str, up_to: int) -> bool:
    return len(set(stored_seqs(system, gateway_id, up_to))) == up_to


# -- exactly once, where it can be seen ------------------------------------------------------


def centers_of(system: LocalSystem, gateway_id: str) -> list[CenterSpec]:
    """The reference centers that receive ``gateway_id``'s readings (by its place)."""
    place = system.places.get(gateway_id)
    return [
        spec
        for spec in CENTERS
        if (spec.tier == "city" if place is None else f"{place}/".startswith(f"{spec.place}/"))
    ]


def center_deliveries(system: LocalSystem, spec: CenterSpec, gateway_id: str) -> Counter[int]:
    """How many times the center recorded each seq of ``gateway_id`` (every delivery)."""
    url = f"{system.center_url(spec)}/received/seqs?gateway={gateway_id}"
    return Counter(get_json(url, timeout_s=10)["seqs"])


@dataclass(frozen=True)
class ControllerCounters:
    stored: int = 0
    duplicate: int = 0


def controller_counters(system: LocalSystem) -> ControllerCounters:
    """The store's persistent counters, read from its file (the controller may be down)."""
    with sqlite3.connect(f"file:{system.workdir / 'controller.db'}?mode=ro", uri=True) as db:
        rows = dict(db.execute("SELECT name, value FROM counters").fetchall())
    return ControllerCounters(rows.get("readings_stored", 0), rows.get("readings_duplicate", 0))


def readings_received(system: LocalSystem) -> int:
    """Readings the running controller took off MQTT since it started (its /metrics)."""
    with urllib.request.urlopen(f"{system.base_url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("edgewatch_readings_received_total "):
                return int(float(line.split()[1]))
    raise AssertionError("the controller's /metrics has no edgewatch_readings_received_total")


def assert_delivered_exactly_once(
    system: LocalSystem, gateway_id: str, seqs: range | set[int], timeout_s: float
) -> None:
    """Every center that receives ``gateway_id`` recorded each of ``seqs`` once and nothing
    else up to the highest of them: counted over every delivery, so a reading forwarded
    twice shows."""
    wanted = set(seqs)
    up_to = max(wanted)
    for spec in centers_of(system, gateway_id):

        def delivered(spec: CenterSpec = spec) -> Counter[int]:
            every = center_deliveries(system, spec, gateway_id)
            return Counter({seq: n for seq, n in every.items() if seq <= up_to})

        wait_until(
            lambda d=delivered: wanted <= set(d()),  # type: ignore[misc]
            timeout_s=timeout_s,
            message=lambda d=delivered, s=spec: (  # type: ignore[misc]
                f"{s.name}: {len(wanted)} seqs of {gateway_id} up to {up_to} delivered"
                f" (have {len(wanted & set(d()))})"
            ),
        )
        got = delivered()
        repeated = {seq: n for seq, n in got.items() if n != 1}
        assert not repeated, f"{spec.name} recorded seqs of {gateway_id} more than once: {repeated}"
        unexpected = sorted(set(got) - wanted)
        assert not unexpected, f"{spec.name} recorded seqs never stored: {unexpected[:20]}"


def assert_controller_accounts_for_every_reading(
    system: LocalSystem, since: ControllerCounters, timeout_s: float
) -> ControllerCounters:
    """With the gateways quiet, every reading the running controller received (since it
    started, when its counters stood at ``since``) was stored or counted as a duplicate.
    Returns the counters' growth since then."""

    def grown() -> ControllerCounters:
        now = controller_counters(system)
        return ControllerCounters(now.stored - since.stored, now.duplicate - since.duplicate)

    wait_until(
        lambda: readings_received(system) == grown().stored + grown().duplicate,
        timeout_s=timeout_s,
        message=lambda: (
            f"received {readings_received(system)} = stored {grown().stored}"
            f" + duplicates {grown().duplicate}"
        ),
    )
    return grown()
