"""Commands end to end: a paho client answers as the gateway; lifecycle, waiting, expiry."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import wire
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, birth, get_json, health, offline

STATUS = wire.topic_for("gw-a", wire.TopicKind.STATUS)
HEALTH = wire.topic_for("gw-a", wire.TopicKind.HEALTH)


class FakeGatewayAgent:
    """Subscribes to gw-a's commands and answers each with ``outcome``."""

    def __init__(self, broker: Mosquitto, outcome: str = "succeeded") -> None:
        self.outcome = outcome
        self.received: list[wire.CommandRequest] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-gw-a")
        self.client.on_message = self._on_message
        self.broker = broker

    def __enter__(self) -> FakeGatewayAgent:
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()
        wait_until(self.client.is_connected, timeout_s=5, message="fake agent connected")
        self.client.subscribe("edgewatch/v1/gw-a/cmd/#", qos=1)[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        request = wire.decode(wire.CommandRequest, bytes(message.payload))
        with self._lock:
            self.received.append(request)
        topic = wire.topic_for("gw-a", wire.TopicKind.CMD_RESULT, request.id)
        for outcome in ("accepted", self.outcome):
            result = wire.CommandResult(
                id=request.id, outcome=outcome, detail=f"did {request.type}"
            )
            client.publish(topic, wire.encode(result), qos=1)


@pytest.fixture
def agent(mosquitto: Mosquitto) -> Iterator[FakeGatewayAgent]:
    with FakeGatewayAgent(mosquitto) as fake:
        yield fake


def command(client: httpx.Client, cid: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(client, f"/api/v1/gateways/gw-a/commands/{cid}")
    return found


def test_a_command_to_an_online_gateway_succeeds(
    controller: Controller, publisher: Publisher, client: httpx.Client, agent: FakeGatewayAgent
) -> None:
    publisher.publish(STATUS, birth(1), retain=True)
    wait_until(lambda: get_json(client, "/api/v1/gateways/gw-a")["state"] == "online", timeout_s=5)
    created = client.post(
        "/api/v1/gateways/gw-a/commands",
        json={"type": "set-interval", "args": {"device": "gauge-1", "interval_s": 2.5}},
    )
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    done = wait_until(
        lambda: command(client, cid)["state"] == "succeeded" and command(client, cid),
        timeout_s=5,
        message="command succeeded",
    )
    assert done["detail"] == "did set-interval"
    assert done["delivered_ms"] is not None
    [request] = agent.received
    assert request.args == {"device": "gauge-1", "interval_s": 2.5}
    assert request.deadline_ms == created.json()["deadline_ms"]
    audit = get_json(client, "/api/v1/audit", params={"action": "command.finish"})
    assert audit[0]["outcome"] == "succeeded"
    assert json.loads(json.dumps(audit[0]["detail"]))["command"] == cid


def test_a_command_waits_for_an_offline_gateway_then_goes(
    controller: Controller, publisher: Publisher, client: httpx.Client, agent: FakeGatewayAgent
) -> None:
    publisher.publish(STATUS, birth(1), retain=True)
    publisher.publish(STATUS, offline(1), retain=True)
    wait_until(lambda: get_json(client, "/api/v1/gateways/gw-a")["state"] == "offline", timeout_s=5)
    cid = client.post(
        "/api/v1/gateways/gw-a/commands",
        json={"type": "replay", "args": {"from_seq": 5, "to_seq": 9}},
    ).json()["id"]
    assert command(client, cid)["state"] == "queued"
    assert agent.received == []
    publisher.publish(STATUS, birth(2), retain=True)
    wait_until(lambda: command(client, cid)["state"] == "succeeded", timeout_s=5)
    assert [r.type for r in agent.received] == ["replay"]


def test_a_command_expires_at_its_deadline(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    publisher.publish(HEALTH, health(1, 5.0))  # seen, then nothing answers commands
    cid = client.post(
        "/api/v1/gateways/gw-a/commands", json={"type": "ping", "deadline_s": 0.3}
    ).json()["id"]
    expired = wait_until(
        lambda: command(client, cid)["state"] == "expired" and command(client, cid),
        timeout_s=5,
        message="expired",
    )
    assert expired["detail"].startswith("deadline passed while")
    listed = get_json(client, "/api/v1/gateways/gw-a/commands", params={"state": "expired"})
    assert [c["id"] for c in listed] == [cid]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "reboot-into-shell"}, "type"),
        ({"type": "set-interval", "args": {"device": "g"}}, "interval_s"),
        ({"type": "set-interval", "args": {"device": "g", "interval_s": 0}}, "interval_s"),
        ({"type": "replay", "args": {"from_seq": 9, "to_seq": 5}}, "args"),
        ({"type": "ping", "deadline_s": -1}, "deadline_s"),
        ({"type": "ping", "args": {"shell": "rm -rf /"}}, "shell"),
    ],
)
def test_bad_commands_are_422_naming_the_field(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/gateways/gw-a/commands", json=body)
    assert response.status_code == 422, response.text
    assert any(field in [str(p) for p in e["loc"]] for e in response.json()["detail"]), (
        response.text
    )


def test_maintenance_needs_a_known_device(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/gateways/gw-a/commands",
        json={"type": "maintenance", "args": {"device": "nope", "on": True}},
    )
    assert response.status_code == 404
    assert "args.device" in response.json()["detail"]


def test_desired_config_versions_drift_and_push(
    controller: Controller, publisher: Publisher, client: httpx.Client, agent: FakeGatewayAgent
) -> None:
    config = {"gateway": {"id": "gw-a", "heartbeat_interval_s": 5.0}, "devices": []}
    assert get_json(client, "/api/v1/gateways/gw-a/config")["drift"] == "no_desired"
    first = client.put("/api/v1/gateways/gw-a/config", json={"config": config}).json()
    assert first["changed"] is True
    assert first["desired"]["version"] == 1
    same = client.put("/api/v1/gateways/gw-a/config", json={"config": config}).json()
    assert same["changed"] is False
    changed = {**config, "devices": [{"name": "gauge-1"}]}
    second = client.put("/api/v1/gateways/gw-a/config", json={"config": changed}).json()
    assert second["desired"]["version"] == 2
    versions = get_json(client, "/api/v1/gateways/gw-a/config/versions")
    assert [v["version"] for v in versions] == [2, 1]

    publisher.publish(STATUS, birth(1), retain=True)
    publisher.publish(HEALTH, health(1, 5.0, config_hash=first["desired"]["hash"]))
    wait_until(
        lambda: get_json(client, "/api/v1/gateways/gw-a/config")["drift"] == "drift", timeout_s=5
    )
    pushed = client.post("/api/v1/gateways/gw-a/config/push", json={})
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["type"] == "reload-config"
    wait_until(lambda: command(client, pushed.json()["id"])["state"] == "succeeded", timeout_s=5)
    assert agent.received[0].args["config"] == changed
    publisher.publish(HEALTH, health(1, 5.0, config_hash=second["desired"]["hash"]))
    wait_until(
        lambda: get_json(client, "/api/v1/gateways/gw-a/config")["drift"] == "in_sync",
        timeout_s=5,
    )
    actions = [a["action"] for a in get_json(client, "/api/v1/audit")]
    assert actions.count("config.set") == 3
