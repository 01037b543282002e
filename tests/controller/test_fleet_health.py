"""Health end to end: degraded with reasons, device states, one event per gateway outage."""

from __future__ import annotations

import json
from typing import Any

import httpx

import wire
from controller.fleet.queries import GatewayOut
from controller.service import Controller
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, batch, birth, get_json, health, now_ms, offline

STATUS = wire.topic_for("gw-a", wire.TopicKind.STATUS)
HEALTH = wire.topic_for("gw-a", wire.TopicKind.HEALTH)
READINGS = wire.topic_for("gw-a", wire.TopicKind.READINGS)


def gateway(client: httpx.Client) -> dict[str, Any]:
    found: dict[str, Any] = get_json(client, "/api/v1/gateways/gw-a")
    return found


def found(client: httpx.Client, path: str) -> Any:
    """The JSON at ``path``, or None while it answers 404 (not stored yet)."""
    response = client.get(path)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def gateway_state(client: httpx.Client) -> str | None:
    known = found(client, "/api/v1/gateways/gw-a")
    return known["state"] if known else None


def device(client: httpx.Client, name: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(client, f"/api/v1/devices/gw-a.{name}")
    return found


def test_degraded_with_reasons_skew_shown_and_device_states(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    publisher.publish(STATUS, birth(1), retain=True)
    devices = {
        "gauge-1": wire.DeviceHealth(state="ok", last_good_ms=now_ms()),
        "rain-1": wire.DeviceHealth(
            state="failing", consecutive_failures=4, last_error="timeout after 0.3 s"
        ),
        # The heartbeat says "ok", but its last good reading is an hour old: the heartbeat
        # itself (gateway traffic) does not make the device look alive.
        "slope-1": wire.DeviceHealth(state="ok", last_good_ms=now_ms() - 3_600_000),
    }
    publisher.publish(HEALTH, health(1, 5.0, ts_ms=now_ms() + 30_000, devices=devices))
    wait_until(lambda: gateway_state(client) == "degraded", timeout_s=5, message="degraded")
    found = gateway(client)
    assert found["degraded_reasons"][0] == "devices failing: rain-1"
    assert found["degraded_reasons"][1].startswith("clock skewed: +")
    assert 29_000 < found["clock_skew_ms"] < 31_000
    assert device(client, "gauge-1")["health_state"] == "ok"
    failing = device(client, "rain-1")
    assert failing["health_state"] == "failing"
    assert failing["health_reason"] == "4 consecutive read errors: timeout after 0.3 s"
    stale = device(client, "slope-1")
    assert stale["health_state"] == "stale"
    assert stale["health_reason"].startswith("no good reading for 1 h")
    failing_only = get_json(client, "/api/v1/devices", params={"state": "failing"})
    assert [d["id"] for d in failing_only] == ["gw-a.rain-1"]
    # The list (built as JSON by SQLite) says exactly what the detail (built in Python) says.
    listed = get_json(client, "/api/v1/gateways", params={"state": "degraded"})
    assert listed == [{k: v for k, v in found.items() if k in GatewayOut.model_fields}]
    assert get_json(client, "/api/v1/gateways", params={"state": "online"}) == []


def test_gateway_offline_makes_devices_unreachable_with_one_gateway_event(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    publisher.publish(STATUS, birth(1), retain=True)
    publisher.publish(READINGS, batch(range(1, 4), base_ts_ms=now_ms()))
    publisher.publish(READINGS, batch(range(4, 7), device="gauge-2", base_ts_ms=now_ms()))
    publisher.publish(HEALTH, health(1, 5.0, devices={}))
    wait_until(
        lambda: [d["health_state"] for d in get_json(client, "/api/v1/devices")] == ["ok", "ok"],
        timeout_s=5,
        message="both devices ok from their own readings",
    )
    publisher.publish(STATUS, offline(1), retain=True)
    wait_until(
        lambda: {d["health_state"] for d in get_json(client, "/api/v1/devices")} == {"unreachable"},
        timeout_s=5,
        message="devices unreachable",
    )
    history = get_json(client, "/api/v1/gateways/gw-a/history")
    assert [(t["from_state"], t["to_state"]) for t in history] == [
        ("online", "offline"),
        ("unknown", "online"),
    ]
    device_history = get_json(client, "/api/v1/devices/gw-a.gauge-2/history")
    assert device_history[0]["to_state"] == "unreachable"
    assert device_history[0]["reason"] == "gateway offline"
    assert device_history[1]["to_state"] == "ok"

    # Back online: devices are judged again from their own evidence.
    publisher.publish(STATUS, birth(2), retain=True)
    wait_until(
        lambda: {d["health_state"] for d in get_json(client, "/api/v1/devices")} == {"ok"},
        timeout_s=5,
        message="devices ok again",
    )


def test_maintenance_wins_and_is_not_degradation(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    publisher.publish(STATUS, birth(1), retain=True)
    failing = {"gauge-1": wire.DeviceHealth(state="failing", consecutive_failures=9)}
    publisher.publish(HEALTH, health(1, 5.0, devices=failing))
    wait_until(lambda: gateway_state(client) == "degraded", timeout_s=5, message="degraded")
    patched = client.patch("/api/v1/devices/gw-a.gauge-1", json={"maintenance": True})
    assert patched.status_code == 200, patched.text
    assert patched.json()["health_state"] == "maintenance"
    publisher.publish(HEALTH, health(1, 5.0, devices=failing))
    wait_until(lambda: gateway_state(client) == "online", timeout_s=5, message="online")


def test_a_devices_own_health_registers_are_shown_with_the_device(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    publisher.publish(STATUS, birth(1), retain=True)
    registers = {"reboots": 4.0, "supply_v": 12.1}
    devices = {
        "met-1": wire.DeviceHealth(state="ok", last_good_ms=now_ms(), registers=registers),
        "gauge-1": wire.DeviceHealth(state="ok", last_good_ms=now_ms()),
        # Any name the contract allows (a heartbeat's device keys follow the device name rule).
        "odd.name:1_x-y": wire.DeviceHealth(state="ok", last_good_ms=now_ms(), registers=registers),
    }
    publisher.publish(HEALTH, health(1, 5.0, devices=devices))
    wait_until(
        lambda: (
            (met := found(client, "/api/v1/devices/gw-a.met-1"))
            and met["health_registers"] == registers
        ),
        timeout_s=5,
        message="met-1's health registers",
    )
    assert device(client, "gauge-1")["health_registers"] == {}
    listed = {d["name"]: d for d in get_json(client, "/api/v1/devices", params={"gateway": "gw-a"})}
    assert listed["met-1"]["health_registers"] == registers
    assert listed["odd.name:1_x-y"]["health_registers"] == registers
    # They are the device's health, never readings.
    assert device(client, "met-1")["last_metric"] is None


def test_a_station_whose_clock_is_off_is_degraded_and_recovers(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    """A pushing station keeps its own time: past clock_skew_max_s (10 s) it is degraded;
    the gateway itself is not (its own clock is right)."""
    publisher.publish(STATUS, birth(1), retain=True)
    devices = {
        "river-st-1": wire.DeviceHealth(state="ok", last_good_ms=now_ms()),
        "air-1": wire.DeviceHealth(state="ok", last_good_ms=now_ms()),
    }
    offsets = {"river-st-1": 600_000, "air-1": -2_000}
    publisher.publish(HEALTH, health(1, 5.0, devices=devices, station_clock_offsets_ms=offsets))
    wait_until(
        lambda: device(client, "river-st-1")["health_state"] == "degraded",
        timeout_s=5,
        message="the skewed station degraded",
    )
    assert device(client, "river-st-1")["health_reason"] == (
        "station clock off by +600 s (limit 10 s)"
    )
    assert device(client, "air-1")["health_state"] == "ok"  # 2 s off: within the limit
    assert gateway_state(client) == "online"
    publisher.publish(
        HEALTH, health(1, 5.0, devices=devices, station_clock_offsets_ms={"river-st-1": 0})
    )
    wait_until(
        lambda: device(client, "river-st-1")["health_state"] == "ok",
        timeout_s=5,
        message="the station's clock set right again",
    )


def test_a_heartbeat_without_station_clocks_still_validates() -> None:
    """Agents before the field send none: the controller takes their heartbeats."""
    payload = health(1, 5.0).model_dump(mode="json")
    del payload["station_clock_offsets_ms"]
    decoded = wire.decode(wire.Health, json.dumps(payload).encode())
    assert decoded.station_clock_offsets_ms == {}
