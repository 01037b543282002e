"""A site for command tests: two simulated gauges on a real pty, a real agent, a real
mosquitto and the real controller (demo auth) whose API the tests post commands to."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agent.agent import Agent
from agent.config import parse_config
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from firmware_sim.bus import SimulatedBus
from firmware_sim.models import WaterLevelGauge
from tests.agent.conftest import GATEWAY_ID, WAIT_S, agent_toml
from tests.controller.support import api, config_for, get_json

GATEWAY = f"/api/v1/gateways/{GATEWAY_ID}"
PROBATION_S = 3.0


def gauge(name: str, slave: int, interval_s: float = 0.1, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "driver": "modbus_rtu",
        "port": "bus1",
        "interval_s": interval_s,
        "slave": slave,
        "registers": [{"metric": "level_cm", "address": 0, "scale": 0.1, "unit": "cm"}],
        **extra,
    }


@dataclass
class Site:
    agent: Agent
    controller: Controller
    client: httpx.Client
    bus: SimulatedBus
    data_dir: Path
    restart_asked: threading.Event

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(f"{GATEWAY}/commands", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def command(self, cid: str) -> dict[str, Any]:
        found: dict[str, Any] = get_json(self.client, f"{GATEWAY}/commands/{cid}")
        return found

    def finished(self, cid: str, timeout_s: float = WAIT_S) -> dict[str, Any]:
        """Wait for the command's final state; it must have gone through ``delivered``."""

        def final() -> dict[str, Any] | None:
            found = self.command(cid)
            return found if found["state"] in ("succeeded", "failed", "expired") else None

        done = wait_until(final, timeout_s=timeout_s, message=f"command {cid} finished")
        assert done is not None
        assert done["delivered_ms"] is not None, done
        assert done["finished_ms"] >= done["delivered_ms"]
        return done

    def run(self, body: dict[str, Any], timeout_s: float = WAIT_S) -> dict[str, Any]:
        created = self.post(body)
        assert created["state"] == "queued"
        return self.finished(created["id"], timeout_s)

    def heartbeat(self) -> dict[str, Any]:
        """The latest heartbeat as the controller stored it."""
        health: dict[str, Any] = get_json(self.client, GATEWAY)["health"] or {}
        return health

    def wait_heartbeat(
        self, what: str, check: Callable[[dict[str, Any]], object]
    ) -> dict[str, Any]:
        def matching() -> dict[str, Any] | None:
            health = self.heartbeat()
            return health if health and check(health) else None

        found = wait_until(matching, timeout_s=WAIT_S, message=f"a heartbeat with {what}")
        assert found is not None
        return found

    def push(self, document: dict[str, Any], timeout_s: float = WAIT_S) -> dict[str, Any]:
        """Set ``document`` as the desired config and push it; returns the finished command."""
        put = self.client.put(f"{GATEWAY}/config", json={"config": document})
        assert put.status_code == 200, put.text
        pushed = self.client.post(f"{GATEWAY}/config/push", json={})
        assert pushed.status_code == 201, pushed.text
        return self.finished(pushed.json()["id"], timeout_s)


def pushed_config(*devices: dict[str, Any]) -> dict[str, Any]:
    """A full config as an operator would push it: no [mqtt], data_dir or [buffer], and no
    port url (the gateway's agent.toml owns it: wire.pushed_config)."""
    return {
        "gateway": {
            "id": GATEWAY_ID,
            "heartbeat_interval_s": 0.5,
            "reload_probation_s": PROBATION_S,
        },
        "ports": [{"name": "bus1", "timeout_s": 0.2, "backoff_max_s": 0.5}],
        "devices": list(devices),
    }


@contextmanager
def running_site(tmp_path: Path, broker: Mosquitto) -> Iterator[Site]:
    restart = threading.Event()
    with SimulatedBus([WaterLevelGauge(slave=1), WaterLevelGauge(slave=2)]) as bus:
        data_dir = tmp_path / "data"
        toml = agent_toml(data_dir, broker, port_url=bus.port_path)
        config = parse_config(toml + "\n", source="agent.toml")
        controller_config = config_for(
            tmp_path / "ctl", broker, gateways={GATEWAY_ID: "cq/yuzhong/jiefangbei"}
        )
        (tmp_path / "ctl").mkdir()
        with (
            Controller(controller_config) as controller,
            Agent(config, on_restart=restart.set) as agent,
            api(controller.api_url) as client,
        ):
            site = Site(agent, controller, client, bus, data_dir, restart)
            wait_until(
                lambda: get_json(client, GATEWAY)["state"] == "online",
                timeout_s=WAIT_S,
                message="the gateway online at the controller",
            )
            wait_until(
                lambda: f"{GATEWAY_ID}.gauge-1" in get_json(client, GATEWAY)["devices"],
                timeout_s=WAIT_S,
                message="gauge-1 known to the controller",
            )
            yield site
