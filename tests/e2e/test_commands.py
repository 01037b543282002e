"""Commands through the controller's API to a real agent process: ping, set-interval, restart."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from edgewatch.system import GatewayTiming, LocalSystem, get_json
from edgewatch.waiting import wait_until

FAST = GatewayTiming(poll_interval_s=0.2, heartbeat_interval_s=1.0, keepalive_s=5)
GATEWAY = "gw-demo-1"


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
        created: dict[str, Any] = json.load(response)
        return created


def run_command(system: LocalSystem, body: dict[str, Any]) -> dict[str, Any]:
    commands = f"{system.api}/gateways/{GATEWAY}/commands"
    created = post(commands, body)
    assert created["state"] == "queued"

    def final() -> dict[str, Any] | None:
        found: dict[str, Any] = get_json(f"{commands}/{created['id']}")
        return found if found["state"] in ("succeeded", "failed", "expired") else None

    done = wait_until(final, timeout_s=20, message=f"{body['type']} finished")
    assert done is not None
    assert done["delivered_ms"] is not None
    return done


def test_ping_set_interval_and_restart_reach_a_real_agent(system: LocalSystem) -> None:
    gateway = system.start_gateway(GATEWAY, FAST)
    wait_until(lambda: system.gateway_state(GATEWAY) == "online", timeout_s=20)

    ping = run_command(system, {"type": "ping"})
    assert ping["state"] == "succeeded", ping
    assert json.loads(ping["detail"])["session"] >= 1

    interval = run_command(
        system, {"type": "set-interval", "args": {"device": "river-gauge-1", "interval_s": 0.5}}
    )
    assert interval["state"] == "succeeded", interval
    assert "interval 0.5 s (was 0.2 s)" in interval["detail"]
    wait_until(
        lambda: (
            (get_json(f"{system.api}/gateways/{GATEWAY}")["health"] or {}).get("local_overrides")
            == {"river-gauge-1": {"interval_s": 0.5}}
        ),
        timeout_s=10,
        message="the override in a heartbeat",
    )

    restart = run_command(system, {"type": "restart"})
    assert restart["state"] == "succeeded", restart
    assert gateway.agent.process.wait(timeout=10) == 75  # systemd starts it again
    wait_until(lambda: system.gateway_state(GATEWAY) == "offline", timeout_s=10)
