"""Provisioning against a real mosquitto with password and ACL files the controller keeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import wire
from controller.config import BrokerConfig, MqttConfig
from controller.fleet.provisioning import Provisioner, acl_text, mosquitto_hash
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import api, batch, config_for, get_json

CONTROLLER_USER, CONTROLLER_PASSWORD = "edgewatch-controller", "a-long-random-secret-42"


def connect(broker: Mosquitto, username: str | None, password: str | None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.user_data_set([])
    client.on_connect = lambda c, answers, flags, code, props: answers.append(code)
    if username is not None:
        client.username_pw_set(username, password)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def connected(client: mqtt.Client) -> bool:
    """Wait for the broker's CONNACK; True if it accepted the connection."""
    answers: list[Any] = client.user_data_get()
    wait_until(lambda: answers, timeout_s=5, message="CONNACK")
    accepted = not answers[0].is_failure
    if not accepted:
        client.loop_stop()
    return accepted


@pytest.fixture
def secured_broker(
    tmp_path: Path, mosquitto_cli: str
) -> Iterator[tuple[Mosquitto, BrokerConfig, MqttConfig]]:
    files = tmp_path / "broker-files"
    password_file, acl_file = files / "passwd", files / "acl"
    mqtt_config = MqttConfig(username=CONTROLLER_USER, password=CONTROLLER_PASSWORD)
    broker_config = BrokerConfig(password_file=password_file, acl_file=acl_file)
    Provisioner(broker_config, mqtt_config).sync_files_only([])  # the controller's own user
    broker = Mosquitto(
        tmp_path / "broker",
        allow_anonymous=False,
        # As root, mosquitto would drop to the "mosquitto" user, who cannot read tmp_path.
        extra_config=f"user root\npassword_file {password_file}\nacl_file {acl_file}\n",
    )
    with broker:
        reload = ["kill", "-HUP", str(broker.pid)]
        yield broker, broker_config.model_copy(update={"reload_command": reload}), mqtt_config


def test_mosquitto_hash_format() -> None:
    line = mosquitto_hash("pw", salt=b"0123456789ab")
    assert line.startswith("$7$101$MDEyMzQ1Njc4OWFi$")
    assert "user gw-a\ntopic write edgewatch/v1/gw-a/#" in acl_text("ctl", ["gw-a"])


def test_provisioned_gateway_publishes_only_as_itself_and_revocation_cuts_it_off(
    tmp_path: Path, secured_broker: tuple[Mosquitto, BrokerConfig, MqttConfig]
) -> None:
    broker, broker_config, mqtt_config = secured_broker
    config = config_for(tmp_path, broker)
    config = config.model_copy(
        update={
            "broker": broker_config,
            "mqtt": mqtt_config.model_copy(update={"port": broker.port, "keepalive_s": 5}),
        }
    )
    with Controller(config) as controller, api(controller.api_url) as client:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5, message="controller connected")
        creds: dict[str, Any] = {}
        for gateway in ("gw-a", "gw-b"):
            response = client.post(
                "/api/v1/gateways", json={"id": gateway, "place": "cq/yuzhong/jiefangbei"}
            )
            assert response.status_code == 201, response.text
            creds[gateway] = response.json()["mqtt"]
            assert creds[gateway]["username"] == gateway
        assert creds["gw-a"]["password"] != creds["gw-b"]["password"]
        assert creds["gw-a"]["password"] not in broker_config.password_file.read_text()  # type: ignore[union-attr]

        # Anonymous clients get nothing: the broker refuses the connection.
        anonymous = connect(broker, None, None)
        assert not connected(anonymous)

        gw_a = connect(broker, "gw-a", creds["gw-a"]["password"])
        assert connected(gw_a)
        spoof = batch(range(1, 4), device="spoofed")
        gw_a.publish(
            wire.topic_for("gw-b", wire.TopicKind.READINGS), wire.encode(spoof), qos=1
        ).wait_for_publish(5)
        own = batch(range(1, 4), device="honest")
        gw_a.publish(
            wire.topic_for("gw-a", wire.TopicKind.READINGS), wire.encode(own), qos=1
        ).wait_for_publish(5)
        wait_until(lambda: get_json(client, "/api/v1/summary")["readings_stored"] == 3, timeout_s=5)
        devices = [d["id"] for d in get_json(client, "/api/v1/devices")]
        assert devices == ["gw-a.honest"]  # the spoofed batch never arrived

        gw_a.disconnect()
        gw_a.loop_stop()
        assert client.delete("/api/v1/gateways/gw-a/credentials").status_code == 204
        assert "gw-a" not in broker_config.password_file.read_text()  # type: ignore[union-attr]
        revoked = connect(broker, "gw-a", creds["gw-a"]["password"])
        assert not connected(revoked)
        actions = [a["action"] for a in get_json(client, "/api/v1/audit")]
        assert actions[:1] == ["gateway.revoke"]
        assert actions.count("gateway.create") == 2
