"""Fault tests of store-and-forward: real mosquitto, real processes, real SIGKILL.

The default suite runs outages of a few seconds at ~50 readings/s per gateway; the
``soak`` versions (``make soak``) run the full lengths of issue 4 at 200 readings/s.

"Exactly once" is checked where a duplicate would show: the controller's store (every
seq once), every delivery recorded by each center that receives the gateway (each seq
once), and the controller's own count of what it received (every reading stored or
counted as a duplicate).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from edgewatch.broker import Mosquitto
from edgewatch.system import LocalSystem, SimulatedGateway, get_json
from edgewatch.waiting import wait_until
from tests.e2e.load import (
    ControllerCounters,
    Load,
    agent_last_seq,
    agent_meta,
    assert_controller_accounts_for_every_reading,
    assert_delivered_exactly_once,
    controller_counters,
    has_every_seq,
    start_loaded_gateway,
    stored_seqs,
)

DEFAULT = Load()
SOAK = Load(devices=20, interval_s=0.3, baud=115200)  # 20 x 3 / 0.3 = 200 readings/s
GAPS_FAST = "\n[gaps]\nreorder_wait_s = 0.5\nreplay_timeout_s = 1.0\nmax_attempts = 2\n"

# A two-minute outage, its drain and the checks: well past the default 120 s test timeout.
SOAK_TIMEOUT_S = 900
FRESH = ControllerCounters()  # a controller started on an empty store


@pytest.fixture
def gateway_places() -> dict[str, str]:
    """The loaded gateways' places: one seen by all three centers, one by the city and the
    district; gw-load-3 and gw-small unplaced (the city only)."""
    return {
        "gw-load-1": "cq/yuzhong/jiefangbei/grid-7",
        "gw-load-2": "cq/yuzhong/daping",
    }


def start_fleet(system: LocalSystem, load: Load, count: int = 3) -> list[SimulatedGateway]:
    gateways = [start_loaded_gateway(system, f"gw-load-{n}", load) for n in range(1, count + 1)]
    for gateway in gateways:
        wait_until(
            lambda g=gateway: len(stored_seqs(system, g.gateway_id)) >= 20,  # type: ignore[misc]
            timeout_s=30,
            message=f"{gateway.gateway_id}: first readings stored",
        )
    return gateways


def run_for(gateways: list[SimulatedGateway], readings: int, timeout_s: float) -> None:
    """Wait until every gateway has read ``readings`` more (time measured in readings)."""
    marks = {g.gateway_id: agent_last_seq(g) for g in gateways}
    wait_until(
        lambda: all(agent_last_seq(g) >= marks[g.gateway_id] + readings for g in gateways),
        timeout_s=timeout_s,
        message=f"{readings} more readings on every gateway",
    )


def assert_everything_arrives_once(
    system: LocalSystem,
    gateways: list[SimulatedGateway],
    timeout_s: float,
    since: ControllerCounters = FRESH,
) -> None:
    """Every seq each gateway has read is stored once and recorded once by each center
    that receives it; then, the gateways stopped, the running controller (its counters
    at ``since`` when it started) accounts for every reading it received."""
    targets = {g.gateway_id: agent_last_seq(g) for g in gateways}
    for gateway in gateways:
        gid = gateway.gateway_id
        wait_until(
            lambda gid=gid: has_every_seq(system, gid, targets[gid]),  # type: ignore[misc]
            timeout_s=timeout_s,
            message=lambda gid=gid: (  # type: ignore[misc]
                f"{gid}: every seq up to {targets[gid]} stored "
                f"(have {len(set(stored_seqs(system, gid, targets[gid])))})"
            ),
        )
        seqs = stored_seqs(system, gid, targets[gid])
        assert seqs == list(range(1, targets[gid] + 1)), f"{gid}: a seq missing or repeated"
    for gateway in gateways:
        gid = gateway.gateway_id
        assert_delivered_exactly_once(system, gid, range(1, targets[gid] + 1), timeout_s)
    for gateway in gateways:
        assert gateway.agent.stop() == 0, gateway.agent.log_tail()
    grown = assert_controller_accounts_for_every_reading(system, since, timeout_s=30)
    assert grown.stored >= sum(targets.values()) - since.stored


def broker_outage(
    system: LocalSystem,
    mosquitto: Mosquitto,
    load: Load,
    outage_readings: int,
    during: Callable[[list[SimulatedGateway]], None] | None = None,
) -> None:
    gateways = start_fleet(system, load)
    mosquitto.stop()
    run_for(gateways, outage_readings // 2, timeout_s=outage_readings / load.readings_per_s * 4)
    if during is not None:
        during(gateways)
    run_for(gateways, outage_readings // 2, timeout_s=outage_readings / load.readings_per_s * 4)
    mosquitto.start()
    assert_everything_arrives_once(system, gateways, timeout_s=60 + outage_readings / 1000)


def kill_and_restart_first_agent(system: LocalSystem) -> Callable[[list[SimulatedGateway]], None]:
    def during(gateways: list[SimulatedGateway]) -> None:
        victim = gateways[0]
        victim.agent.signal(signal.SIGKILL)
        assert victim.agent.process.wait(timeout=5) == -signal.SIGKILL
        victim.agent = system.start_agent(victim.gateway_id, victim.config_path)

    return during


# -- 1. the broker goes away while three gateways publish -------------------------------------


def test_broker_outage_every_seq_exactly_once(system: LocalSystem, mosquitto: Mosquitto) -> None:
    broker_outage(system, mosquitto, DEFAULT, outage_readings=150)  # ~3 s at 50/s


@pytest.mark.soak
@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_soak_broker_outage_two_minutes(system: LocalSystem, mosquitto: Mosquitto) -> None:
    broker_outage(system, mosquitto, SOAK, outage_readings=200 * 120)


# -- 2. an agent SIGKILLed in the middle of that outage ---------------------------------------


def test_agent_killed_during_broker_outage_loses_and_repeats_nothing(
    system: LocalSystem, mosquitto: Mosquitto
) -> None:
    broker_outage(
        system, mosquitto, DEFAULT, outage_readings=150,
        during=kill_and_restart_first_agent(system),
    )  # fmt: skip


@pytest.mark.soak
@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_soak_agent_killed_during_two_minute_outage(
    system: LocalSystem, mosquitto: Mosquitto
) -> None:
    broker_outage(
        system, mosquitto, SOAK, outage_readings=200 * 120,
        during=kill_and_restart_first_agent(system),
    )  # fmt: skip


# -- 3. the controller goes away ----------------------------------------------------------------


def controller_outage(system: LocalSystem, load: Load, outage_readings: int, sig: int) -> None:
    gateways = start_fleet(system, load)
    assert system.controller is not None
    system.controller.signal(sig)
    system.controller.process.wait(timeout=10)
    run_for(gateways, outage_readings, timeout_s=outage_readings / load.readings_per_s * 4)
    at_restart = controller_counters(system)
    system.start_controller()
    assert_everything_arrives_once(
        system, gateways, timeout_s=60 + outage_readings / 1000, since=at_restart
    )


def test_controller_stopped_and_restarted_loses_nothing(system: LocalSystem) -> None:
    controller_outage(system, DEFAULT, outage_readings=150, sig=signal.SIGTERM)


def test_controller_killed_and_restarted_loses_nothing(system: LocalSystem) -> None:
    controller_outage(system, DEFAULT, outage_readings=150, sig=signal.SIGKILL)


@pytest.mark.soak
@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_soak_controller_stopped_two_minutes(system: LocalSystem) -> None:
    controller_outage(system, SOAK, outage_readings=200 * 120, sig=signal.SIGTERM)


# -- 4. the buffer limit is reached during an outage ------------------------------------------


def test_buffer_limit_evicts_oldest_first_and_heartbeat_counts_what_is_missing(
    system: LocalSystem, mosquitto: Mosquitto
) -> None:
    system.controller.stop() if system.controller else None
    system.start_controller(GAPS_FAST)
    load = Load(
        devices=10,
        interval_s=0.2,  # 150 readings/s: the limit is reached within seconds
        buffer="max_bytes = 65536\nacked_retention_s = 0\nlive_window_s = 1.0",
    )
    gateway = start_loaded_gateway(system, "gw-small", load)
    gid = gateway.gateway_id
    wait_until(lambda: len(stored_seqs(system, gid)) >= 20, timeout_s=30)
    outage_start = agent_last_seq(gateway)

    mosquitto.stop()
    wait_until(
        lambda: agent_meta(gateway).get("dropped.buffer_full", 0) >= 50,
        timeout_s=60,
        message="evictions for the buffer limit",
    )
    mosquitto.start()

    def heartbeat_dropped() -> int:
        health = get_json(f"{system.api}/gateways/{gid}").get("health") or {}
        return int(health.get("dropped", {}).get("buffer_full", 0))

    def missing() -> list[int]:
        seqs = set(stored_seqs(system, gid))
        return [s for s in range(1, max(seqs) + 1) if s not in seqs]

    wait_until(
        lambda: heartbeat_dropped() > 0 and len(missing()) == heartbeat_dropped(),
        timeout_s=60,
        message=lambda: f"missing {len(missing())} == heartbeat {heartbeat_dropped()}",
    )
    lost = missing()
    # Oldest first: one run of seqs, right after what was delivered before the outage
    # (every seq before the run and after it arrived).
    assert lost == list(range(lost[0], lost[0] + len(lost)))
    assert lost[0] > outage_start - 150
    # The controller asked for them, was told they are gone, and says so per gateway.
    gaps = wait_until(
        lambda: [
            g for g in get_json(f"{system.api}/gateways/{gid}/gaps") if g["state"] == "unfillable"
        ],
        timeout_s=30,
    )
    assert sum(g["missing"] for g in gaps) == len(lost)
    # The centers got what was stored, each reading once, and none of what was lost.
    assert_delivered_exactly_once(system, gid, set(stored_seqs(system, gid)), timeout_s=30)


# -- 5. the first seconds of an outage ---------------------------------------------------------


def first_seconds_of_an_outage(system: LocalSystem, mosquitto: Mosquitto, load: Load) -> None:
    """A broker that freezes (a dead link that does not close: no FIN, no RST) swallows
    what is published until keepalive notices; then it dies with whatever it held."""
    gateways = start_fleet(system, load)
    mosquitto.signal(signal.SIGSTOP)
    run_for(gateways, int(load.readings_per_s * load.keepalive_s * 2), timeout_s=60)
    mosquitto.signal(signal.SIGKILL)
    mosquitto.stop()
    mosquitto.start()
    assert_everything_arrives_once(system, gateways, timeout_s=60)


def test_the_first_seconds_of_an_outage_are_not_lost(
    system: LocalSystem, mosquitto: Mosquitto
) -> None:
    first_seconds_of_an_outage(system, mosquitto, DEFAULT)


@pytest.mark.soak
@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_soak_the_first_twenty_seconds_of_an_outage_are_not_lost(
    system: LocalSystem, mosquitto: Mosquitto
) -> None:
    first_seconds_of_an_outage(system, mosquitto, Load(devices=20, keepalive_s=10))
