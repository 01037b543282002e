"""A broker without persistence restarted again and again under a gateway that keeps no
acknowledged rows: nothing is lost, nothing stored twice (issue 11, "a loss window after a
broker restart").

Each restart forgets every subscription and the controller's retained status. The agent
(``acked_retention_s = 0``: a reading the broker acknowledged is deleted at once, so a replay
cannot bring it back) waits for ``online`` and then sends its backlog at once. Before, the
controller's live session said ``online`` as soon as it reconnected, and whatever the agent
sent before the backlog session had subscribed was acknowledged by the broker and lost.
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from edgewatch.broker import Mosquitto
from edgewatch.system import LocalSystem, SimulatedGateway, get_json
from edgewatch.waiting import wait_until
from tests.e2e.load import Load, agent_last_seq, start_loaded_gateway, stored_seqs

# The live lane is the last second: what piles up in an outage goes on the backlog lane.
LOAD = Load(buffer="acked_retention_s = 0\nlive_window_s = 1.0")
RESTARTS = 6
SOAK_RESTARTS = 40


def metric(system: LocalSystem, name: str) -> int:
    with urllib.request.urlopen(f"{system.base_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"/metrics has no {name}"
    return int(float(found.group(1)))


def city_readings(system: LocalSystem) -> int:
    return int(system.summary()["centers"]["chongqing-city"]["received"])


def restart_the_broker(
    system: LocalSystem, mosquitto: Mosquitto, gateway: SimulatedGateway
) -> None:
    """Down long enough for a backlog to pile up; up until everything so far is stored."""
    mosquitto.stop()
    mark = agent_last_seq(gateway)
    wait_until(
        lambda: agent_last_seq(gateway) >= mark + 2 * LOAD.readings_per_s,
        timeout_s=30,
        message="two seconds of readings buffered during the outage",
    )
    mosquitto.start()
    target = agent_last_seq(gateway)

    def missing() -> list[int]:
        have = set(stored_seqs(system, gateway.gateway_id, target))
        return [s for s in range(1, target + 1) if s not in have]

    wait_until(
        lambda: not missing(),
        timeout_s=60,
        message=lambda: f"every seq up to {target} stored; missing {missing()[:20]}...",
    )


def restarts_lose_and_repeat_nothing(
    system: LocalSystem, mosquitto: Mosquitto, restarts: int
) -> None:
    gateway = start_loaded_gateway(system, "gw-restarts", LOAD)
    gid = gateway.gateway_id
    wait_until(lambda: len(stored_seqs(system, gid)) >= 20, timeout_s=30)
    for _ in range(restarts):
        restart_the_broker(system, mosquitto, gateway)
    last = agent_last_seq(gateway)
    wait_until(lambda: len(set(stored_seqs(system, gid))) >= last, timeout_s=60)
    seqs = stored_seqs(system, gid)
    stored = len(seqs)
    assert seqs == list(range(1, stored + 1)), "a seq missing or stored twice"
    # Every reading the controller received was stored once or counted as a duplicate
    # (a message whose PUBACK the restart swallowed comes again), and the city center,
    # which receives this gateway's readings, got each stored reading once.
    assert get_json(f"{system.api}/summary")["readings_stored"] == stored
    received = metric(system, "edgewatch_readings_received_total")
    duplicate = metric(system, "edgewatch_readings_duplicate_total")
    assert received == stored + duplicate
    wait_until(lambda: city_readings(system) >= stored, timeout_s=30)
    assert city_readings(system) == stored
    gaps = get_json(f"{system.api}/gateways/{gid}/gaps")
    assert [g for g in gaps if g["state"] == "unfillable"] == []


def test_broker_restarts_without_persistence_lose_nothing_with_no_acked_retention(
    system: LocalSystem, mosquitto: Mosquitto
) -> None:
    restarts_lose_and_repeat_nothing(system, mosquitto, RESTARTS)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak_forty_broker_restarts_lose_nothing(system: LocalSystem, mosquitto: Mosquitto) -> None:
    restarts_lose_and_repeat_nothing(system, mosquitto, SOAK_RESTARTS)
