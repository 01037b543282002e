"""Simulated gauge -> agent -> mosquitto -> controller -> the three tier centers, each
reading once at every step (counted at the centers delivery by delivery)."""

from __future__ import annotations

import sqlite3
from typing import Any

from edgewatch.system import CENTERS, GatewayTiming, LocalSystem, get_json
from edgewatch.waiting import wait_until
from tests.e2e.load import (
    ControllerCounters,
    assert_controller_accounts_for_every_reading,
    assert_delivered_exactly_once,
    stored_seqs,
)

FAST = GatewayTiming(poll_interval_s=0.2, heartbeat_interval_s=1.0, keepalive_s=5)


def acked_readings(system: LocalSystem, gateway_id: str) -> dict[int, tuple[int, str, str]]:
    """seq -> (ts_ms, device, metric) of what the agent's buffer holds as delivered."""
    path = system.gateways[gateway_id].data_dir / "buffer.db"
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT seq, ts_ms, device, metric FROM readings WHERE acked_at IS NOT NULL"
        ).fetchall()
    return {seq: (ts_ms, device, metric) for seq, ts_ms, device, metric in rows}


def center_readings(system: LocalSystem, name: str) -> list[dict[str, Any]]:
    spec = next(c for c in CENTERS if c.name == name)
    last: list[dict[str, Any]] = get_json(f"{system.center_url(spec)}/received")["last"]
    return last


def test_readings_reach_every_tier_once_with_seq_and_source_timestamp_intact(
    system: LocalSystem,
) -> None:
    gateway = system.start_gateway("gw-demo-1", FAST)
    wait_until(lambda: system.gateway_state("gw-demo-1") == "online", timeout_s=20)
    wait_until(
        lambda: all(c.get("received", 0) >= 10 for c in system.summary()["centers"].values()),
        timeout_s=30,
        message="10 readings at each of the three centers",
    )
    assert gateway.agent.stop() == 0, gateway.agent.log_tail()  # quiet from here on

    agent_side = acked_readings(system, "gw-demo-1")
    wait_until(
        lambda: set(stored_seqs(system, "gw-demo-1")) == set(agent_side),
        timeout_s=30,
        message="every reading the broker acknowledged to the agent is stored",
    )
    stored = get_json(f"{system.api}/devices/gw-demo-1.river-gauge-1/readings?limit=10000")
    assert stored["readings"], "the controller stored nothing"
    for reading in stored["readings"]:
        # Every stored reading is one the agent read, with its own seq and source time.
        ts_ms, device, metric = agent_side[reading["seq"]]
        assert (reading["ts_ms"], reading["metric"]) == (ts_ms, metric)
        assert device == "river-gauge-1"

    levels = [r["value"] for r in stored["readings"] if r["metric"] == "level_cm"]
    assert levels
    assert all(200 <= v <= 300 for v in levels), "the simulated river is around 250 cm"

    # Each center recorded every reading once: counted over every delivery.
    assert_delivered_exactly_once(system, "gw-demo-1", set(agent_side), timeout_s=30)
    for spec in CENTERS:
        received = center_readings(system, spec.name)
        for reading in received:
            assert reading["gateway"] == "gw-demo-1"
            ts_ms, _, metric = agent_side[reading["seq"]]
            assert (reading["ts_ms"], reading["metric"]) == (ts_ms, metric)
    # Whatever the broker delivered twice, the controller counted rather than stored.
    grown = assert_controller_accounts_for_every_reading(system, ControllerCounters(), timeout_s=30)
    assert grown.stored == len(agent_side)
