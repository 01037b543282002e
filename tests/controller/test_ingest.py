"""MQTT ingest end to end: a real broker, the real controller, contract messages from paho."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import wire
from controller.fleet import queries
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.clock import FakeClock
from tests.controller.support import (
    Publisher,
    api,
    batch,
    birth,
    config_for,
    get_json,
    health,
)

READINGS = wire.topic_for("gw-a", wire.TopicKind.READINGS)
BACKLOG = wire.topic_for("gw-a", wire.TopicKind.BACKLOG)


def readings_of(client: httpx.Client, device: str = "gw-a.gauge-1") -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/devices/{device}/readings", params={"limit": 10000})
    if response.status_code == 404:
        return []
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["readings"]
    return result


def stored(client: httpx.Client) -> int:
    count: int = get_json(client, "/api/v1/summary")["readings_stored"]
    return count


def test_batches_are_stored_with_seq_and_source_time_and_deduplicated(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    first = batch(range(1, 6))
    publisher.publish(READINGS, first)
    publisher.publish(READINGS, first)  # redelivered
    publisher.publish(BACKLOG, batch(range(4, 9)))  # overlaps 4, 5
    wait_until(lambda: stored(client) == 8, timeout_s=5, message="8 distinct readings stored")

    readings = readings_of(client)
    assert [r["seq"] for r in readings] == [8, 7, 6, 5, 4, 3, 2, 1]  # newest first
    by_seq = {r["seq"]: r for r in readings}
    assert by_seq[3]["ts_ms"] == 1_700_000_000_000 + 3000  # the source timestamp, untouched
    assert by_seq[3]["value"] == pytest.approx(100.3)
    assert by_seq[3]["unit"] == "cm"
    assert by_seq[3]["lane"] == "live"
    assert by_seq[7]["lane"] == "backlog"

    device = get_json(client, "/api/v1/devices")[0]
    assert device["id"] == "gw-a.gauge-1"
    assert device["last_seq"] == 8


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (READINGS, b"{not json", "not_json"),
        (READINGS, b'{"v": 1, "session": 1, "readings": []}', "invalid"),
        (READINGS, b'{"v": 2, "session": 1, "readings": []}', "schema_version"),
        ("edgewatch/v1/gw-a/telemetry", b"{}", "unknown_topic"),
        ("edgewatch/v1/GW_BAD/readings", b"{}", "unknown_topic"),
        (wire.topic_for("gw-a", wire.TopicKind.STATUS), b'{"state": "maybe"}', "invalid"),
    ],
)
def test_a_bad_message_is_counted_and_the_next_good_batch_is_stored(
    controller: Controller,
    publisher: Publisher,
    client: httpx.Client,
    topic: str,
    payload: bytes,
    reason: str,
) -> None:
    publisher.publish(topic, payload)
    publisher.publish(topic, payload)
    publisher.publish(READINGS, batch([1]))
    wait_until(lambda: stored(client) == 1, timeout_s=5, message="the good batch stored")
    assert get_json(client, "/api/v1/summary")["rejected"] == {reason: 2}


def test_an_oversized_payload_is_refused_by_the_controller_too(controller: Controller) -> None:
    """The test broker (like production's) drops it first (message_size_limit); a broker
    without that limit hands it on, and the controller refuses it before parsing."""
    acks: list[int] = []
    oversized = b"[" + b" " * wire.MAX_PAYLOAD_BYTES + b"]"
    controller.ingest.handle_message(READINGS, oversized, lambda: acks.append(1))
    assert acks == [1]
    assert controller.rejections.counts() == {"oversized": 1}


def test_rejections_are_logged_once_per_gateway_and_reason(
    controller: Controller, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        publisher.publish(READINGS, b"garbage")
    publisher.publish(READINGS, batch([1]))
    wait_until(lambda: controller.rejections.counts().get("not_json") == 3, timeout_s=5)
    logged = [r for r in caplog.records if "rejected a message" in r.getMessage()]
    assert len(logged) == 1
    assert "gw-a" in logged[0].getMessage()


def gateway(client: httpx.Client, gateway_id: str = "gw-a") -> dict[str, Any]:
    result: dict[str, Any] = get_json(client, f"/api/v1/gateways/{gateway_id}")
    return result


def test_birth_brings_a_gateway_online_and_its_will_takes_it_offline(
    controller: Controller, client: httpx.Client, mosquitto: Mosquitto
) -> None:
    status_topic = wire.topic_for("gw-a", wire.TopicKind.STATUS)
    will = (status_topic, wire.encode(wire.Status(state=wire.GatewayState.OFFLINE, session=3)))
    with Publisher(mosquitto, client_id="gw-a", will=will) as agent:
        agent.publish(status_topic, birth(3), retain=True)
        wait_until(lambda: gateway(client)["state"] == "online", timeout_s=5)
        agent.drop_connection()  # the broker publishes the will
        wait_until(lambda: gateway(client)["state"] == "offline", timeout_s=10)

    detail = gateway(client)
    assert detail["session"] == 3
    assert detail["agent_version"] == "test"
    assert [(t["from_state"], t["to_state"]) for t in detail["transitions"]] == [
        ("online", "offline"),
        ("unknown", "online"),
    ]
    assert "session 3" in detail["transitions"][0]["reason"]
    assert get_json(client, "/api/v1/summary")["gateways"]["offline"] == 1


def test_an_offline_of_an_older_session_is_ignored(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    status_topic = wire.topic_for("gw-a", wire.TopicKind.STATUS)
    publisher.publish(status_topic, birth(5), retain=True)
    wait_until(lambda: gateway(client)["state"] == "online", timeout_s=5)
    publisher.publish(status_topic, wire.Status(state=wire.GatewayState.OFFLINE, session=4))
    publisher.publish(READINGS, batch([1], session=5))  # a marker behind the stale will
    wait_until(lambda: stored(client) == 1, timeout_s=5)
    detail = gateway(client)
    assert detail["state"] == "online"
    assert detail["session"] == 5
    assert len(detail["transitions"]) == 1


def test_a_gateway_silent_for_three_heartbeats_goes_offline_and_returns_on_a_heartbeat(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    status_topic = wire.topic_for("gw-a", wire.TopicKind.STATUS)
    publisher.publish(status_topic, birth(1, heartbeat_interval_s=0.1), retain=True)
    wait_until(lambda: gateway(client)["state"] == "online", timeout_s=5)
    wait_until(lambda: gateway(client)["state"] == "offline", timeout_s=5)
    reason = gateway(client)["state_reason"]
    assert "no heartbeat" in reason
    assert "3 x 0.1 s" in reason

    publisher.publish(wire.topic_for("gw-a", wire.TopicKind.HEALTH), health(1, 5.0))
    wait_until(lambda: gateway(client)["state"] == "online", timeout_s=5)
    detail = gateway(client)
    assert detail["health"]["heartbeat_interval_s"] == 5.0
    assert detail["transitions"][0]["reason"] == "heartbeat resumed (session 1)"
    assert get_json(client, "/api/v1/devices")[0]["state"] == "ok"


def test_what_arrives_while_the_controller_is_down_is_stored_after_restart(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = config_for(tmp_path, mosquitto, gateways={"gw-a": "cq/yuzhong"})
    status_topic = wire.topic_for("gw-a", wire.TopicKind.STATUS)
    with Publisher(mosquitto) as agent:
        with Controller(config) as first:
            wait_until(lambda: first.mqtt_connected, timeout_s=5)
            agent.publish(status_topic, birth(2), retain=True)
            agent.publish(READINGS, batch(range(1, 4), session=2))
            wait_until(lambda: first.tracker.state_of("gw-a").value == "online", timeout_s=5)
            wait_until(
                lambda: first.rejections.counts() == {} and stored_in(first) == 3, timeout_s=5
            )
        # The broker queues for the controller's persistent session meanwhile.
        agent.publish(READINGS, batch(range(4, 8), session=2))
        agent.publish(status_topic, wire.Status(state=wire.GatewayState.OFFLINE, session=1))
        with Controller(config) as second, api(second.api_url) as client:
            wait_until(lambda: stored(client) == 7, timeout_s=5)
            detail = gateway(client)
    assert detail["state"] == "online"  # state and session survived; the stale offline did not
    assert detail["session"] == 2


def stored_in(controller: Controller) -> int:
    return controller.store.read(queries.readings_stored)


def test_ingest_survives_the_broker_going_away_and_no_gateway_is_judged_meanwhile(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    clock = FakeClock()
    config = config_for(tmp_path, mosquitto, gateways={"gw-a": "cq/yuzhong"})
    status_topic = wire.topic_for("gw-a", wire.TopicKind.STATUS)

    def ticks_pass(controller: Controller) -> None:
        target = controller.health_ticks + 3
        wait_until(lambda: controller.health_ticks >= target, timeout_s=5)

    with Controller(config, clock=clock) as controller, api(controller.api_url) as client:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5)
        with Publisher(mosquitto) as agent:
            agent.publish(status_topic, birth(1, heartbeat_interval_s=1.0))
            wait_until(lambda: gateway(client)["state"] == "online", timeout_s=5)
        mosquitto.stop()
        wait_until(lambda: not controller.mqtt_connected, timeout_s=5)
        clock.now_s += 60  # a long outage of our own: no verdict on the gateways
        ticks_pass(controller)
        assert gateway(client)["state"] == "online"
        mosquitto.start()
        wait_until(lambda: controller.mqtt_connected, timeout_s=10)
        ticks_pass(controller)
        assert gateway(client)["state"] == "online"  # a fresh timeout after reconnecting
        with Publisher(mosquitto) as agent:
            agent.publish(READINGS, batch([1, 2]))
            wait_until(lambda: stored(client) == 2, timeout_s=5)
        clock.now_s += 3.1  # and then silence is judged again
        wait_until(lambda: gateway(client)["state"] == "offline", timeout_s=5)
