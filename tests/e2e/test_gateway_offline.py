"""A gateway that dies is shown offline: SIGKILL through the will, SIGTERM at once."""

from __future__ import annotations

import signal

from edgewatch.system import GatewayTiming, LocalSystem, get_json
from edgewatch.waiting import wait_until

# The demo's own timing: keepalive 5 s, heartbeat 5 s.
DEFAULTS = GatewayTiming()


def last_transition_reason(system: LocalSystem, gateway_id: str) -> str:
    detail = get_json(f"{system.api}/gateways/{gateway_id}")
    return str(detail["state_reason"])


def test_a_killed_agent_is_shown_offline_through_its_will(system: LocalSystem) -> None:
    gateway = system.start_gateway("gw-demo-1", DEFAULTS)
    wait_until(lambda: system.gateway_state("gw-demo-1") == "online", timeout_s=20)

    gateway.agent.signal(signal.SIGKILL)

    # The broker publishes the will after 1.5 keepalives of silence: well within 20 s.
    wait_until(lambda: system.gateway_state("gw-demo-1") == "offline", timeout_s=20)
    assert "offline status" in last_transition_reason(system, "gw-demo-1")
    assert gateway.agent.process.wait(timeout=5) == -signal.SIGKILL


def test_a_stopped_agent_is_shown_offline_at_once(system: LocalSystem) -> None:
    gateway = system.start_gateway("gw-demo-1", DEFAULTS)
    wait_until(lambda: system.gateway_state("gw-demo-1") == "online", timeout_s=20)

    gateway.agent.signal(signal.SIGTERM)
    # A graceful stop publishes the retained offline status before disconnecting.
    wait_until(lambda: system.gateway_state("gw-demo-1") == "offline", timeout_s=2)
    assert gateway.agent.process.wait(timeout=5) == 0


def test_a_frozen_gateway_is_shown_offline_and_returns_when_it_thaws(
    system: LocalSystem,
) -> None:
    """SIGSTOP is a gateway whose link went dead without closing its socket (a cut cable,
    a power cut upstream): only the broker's keepalive can tell, then the will fires."""
    gateway = system.start_gateway("gw-demo-1", DEFAULTS)
    wait_until(lambda: system.gateway_state("gw-demo-1") == "online", timeout_s=20)
    session_before = get_json(f"{system.api}/gateways/gw-demo-1")["session"]

    gateway.agent.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: system.gateway_state("gw-demo-1") == "offline", timeout_s=20)
    finally:
        gateway.agent.signal(signal.SIGCONT)
    # Thawed, the agent notices the dead session, reconnects with a new one and is back.
    wait_until(lambda: system.gateway_state("gw-demo-1") == "online", timeout_s=30)
    assert get_json(f"{system.api}/gateways/gw-demo-1")["session"] > session_before
