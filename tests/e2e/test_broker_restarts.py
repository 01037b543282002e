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
import signal
import sqlite3
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


def unsent_seqs(gateway: SimulatedGateway) -> set[int]:
    """Seqs still in the agent's buffer without a PUBACK (read from its file)."""
    path = gateway.data_dir / "buffer.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT seq FROM readings WHERE acked_at IS NULL").fetchall()
    return {seq for (seq,) in rows}


def restarts_lose_and_repeat_nothing(
    system: LocalSystem, mosquitto: Mosquitto, restarts: int
) -> None:
    # No replays: an acked row is purged only once a minute, so a replay could hide a
    # reading the broker acknowledged and never delivered. Every seq must arrive by itself.
    assert system.controller is not None
    system.controller.stop()
    system.start_controller("\n[gaps]\nreorder_wait_s = 600\n")
    gateway = start_loaded_gateway(system, "gw-restarts", LOAD)
    gid = gateway.gateway_id
    wait_until(lambda: len(stored_seqs(system, gid)) >= 20, timeout_s=30)
    for _ in range(restarts):
        restart_the_broker(system, mosquitto, gateway)
    gateway.agent.signal(signal.SIGTERM)  # no more readings: the books can close
    gateway.agent.process.wait(timeout=30)
    last, unsent = agent_last_seq(gateway), unsent_seqs(gateway)

    def books() -> tuple[list[int], int, int, int]:
        return (
            stored_seqs(system, gid),
            metric(system, "edgewatch_readings_received_total"),
            metric(system, "edgewatch_readings_duplicate_total"),
            city_readings(system),
        )

    def settled() -> bool:
        stored, received, duplicate, city = books()
        return received == len(stored) + duplicate and city == len(stored)

    # Every reading received was stored once or counted as a duplicate (a message whose
    # PUBACK a restart swallowed comes again), and the city center, which receives this
    # gateway's readings, got each stored reading once.
    wait_until(settled, timeout_s=60, message=lambda: f"the books close: {books()[1:]}")
    stored = books()[0]
    assert stored == sorted(set(stored)), "a seq stored twice"
    assert set(stored) | unsent == set(range(1, last + 1)), "a seq lost"
    assert get_json(f"{system.api}/summary")["readings_stored"] == len(stored)


def test_broker_restarts_without_persistence_lose_nothing_with_no_acked_retention(
    system: LocalSystem, mosquitto: Mosquitto
) -> None:
    restarts_lose_and_repeat_nothing(system, mosquitto, RESTARTS)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak_forty_broker_restarts_lose_nothing(system: LocalSystem, mosquitto: Mosquitto) -> None:
    restarts_lose_and_repeat_nothing(system, mosquitto, SOAK_RESTARTS)
