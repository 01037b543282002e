"""Provisioning against a real mosquitto with password and ACL files the controller keeps."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import wire
from controller.config import BrokerConfig, ControllerConfig, MqttConfig
from controller.fleet.provisioning import (
    Provisioner,
    ProvisioningError,
    acl_text,
    mosquitto_hash,
    password_users,
    write_atomically,
)
from controller.service import Controller, StartupRefusedError
from controller.store.sqlite import Store
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
def secured_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, BrokerConfig, MqttConfig]]:
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


BRIDGE_USER, BRIDGE_PASSWORD = "city-bridge", "the-bridge-own-password-7"
CERT_USER = "monitor"  # logs in with a client certificate: an ACL block, no password line


def secured_config(
    tmp_path: Path, broker: Mosquitto, broker_config: BrokerConfig, mqtt_config: MqttConfig
) -> ControllerConfig:
    config = config_for(tmp_path, broker)
    return config.model_copy(
        update={
            "broker": broker_config,
            "mqtt": mqtt_config.model_copy(update={"port": broker.port, "keepalive_s": 5}),
        }
    )


def add_user_by_hand(broker_config: BrokerConfig, user: str, password: str) -> None:
    """What an operator does for a login the controller does not manage: a password line
    and an ACL block, appended to the files."""
    assert broker_config.password_file is not None
    assert broker_config.acl_file is not None
    with broker_config.password_file.open("a") as passwords:
        passwords.write(f"{user}:{mosquitto_hash(password)}\n")
    with broker_config.acl_file.open("a") as acl:
        acl.write(f"\nuser {user}\ntopic read {wire.PREFIX}/+/status\n")


def users_in(path: Path | None) -> list[str]:
    assert path is not None
    return password_users(path.read_text())


def test_a_gateway_named_like_a_broker_user_is_refused_and_other_users_are_kept(
    tmp_path: Path, secured_broker: tuple[Mosquitto, BrokerConfig, MqttConfig]
) -> None:
    """Regression: an operator could register a gateway named like the controller's own MQTT
    user; the password file then held that user twice (its ACL: readwrite #)."""
    broker, broker_config, mqtt_config = secured_broker
    add_user_by_hand(broker_config, BRIDGE_USER, BRIDGE_PASSWORD)
    with broker_config.acl_file.open("a") as acl:  # type: ignore[union-attr]
        acl.write(f"\nuser {CERT_USER}\ntopic read {wire.PREFIX}/+/health\n")  # a certificate login
    config = secured_config(tmp_path, broker, broker_config, mqtt_config)
    with Controller(config) as controller, api(controller.api_url) as client:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5, message="controller connected")
        place = "cq/yuzhong/jiefangbei"
        own = client.post("/api/v1/gateways", json={"id": CONTROLLER_USER, "place": place})
        assert own.status_code == 409
        assert "this controller's own MQTT user (mqtt.username)" in own.json()["detail"]
        for other in (BRIDGE_USER, CERT_USER):
            taken = client.post("/api/v1/gateways", json={"id": other, "place": place})
            assert taken.status_code == 409
            assert "a user of the broker's password or ACL file" in taken.json()["detail"]
        for refused in (CONTROLLER_USER, BRIDGE_USER, CERT_USER):  # not registered either
            assert client.get(f"/api/v1/gateways/{refused}").status_code == 404
        assert (
            client.post("/api/v1/gateways", json={"id": "gw-a", "place": place}).status_code == 201
        )

        # The hand-made login survived every rewrite, with its ACL block, and still works.
        assert users_in(broker_config.password_file) == [CONTROLLER_USER, "gw-a", BRIDGE_USER]
        acl = broker_config.acl_file.read_text()  # type: ignore[union-attr]
        assert f"user {BRIDGE_USER}\ntopic read {wire.PREFIX}/+/status" in acl
        assert f"user {CERT_USER}\ntopic read {wire.PREFIX}/+/health" in acl
        bridge_client = connect(broker, BRIDGE_USER, BRIDGE_PASSWORD)
        assert connected(bridge_client)
        bridge_client.disconnect()
        bridge_client.loop_stop()


def test_a_sync_that_would_write_a_user_twice_fails_and_the_controller_will_not_start(
    tmp_path: Path, secured_broker: tuple[Mosquitto, BrokerConfig, MqttConfig]
) -> None:
    """Credentials issued to a gateway named like the controller's user (as an older
    controller allowed): the sync refuses to write the file, naming the user."""
    broker, broker_config, mqtt_config = secured_broker
    config = secured_config(tmp_path, broker, broker_config, mqtt_config)
    before = broker_config.password_file.read_text()  # type: ignore[union-attr]
    store = Store(config.storage.path)
    store.start()
    try:
        unmanaged_user = Provisioner(broker_config, MqttConfig())
        store.call(lambda db: unmanaged_user.issue(db, CONTROLLER_USER, now_ms=1))
        provisioner = Provisioner(broker_config, config.mqtt)
        with pytest.raises(ProvisioningError, match=f"user '{CONTROLLER_USER}' would appear twice"):
            store.read(provisioner.sync)
    finally:
        store.stop()
    assert broker_config.password_file.read_text() == before  # type: ignore[union-attr]
    with pytest.raises(StartupRefusedError, match=r"broker files: .* would appear twice"):
        Controller(config).start()


def overlap_recording_reload(folder: Path, broker: Mosquitto) -> list[str]:
    """A reload command that notes when it runs while another reload still runs, then
    SIGHUPs the broker. It lingers a little, as ``systemctl reload`` does, so that syncs
    which are not one at a time do overlap."""
    script = (
        'mkdir "$1/reloading" 2>/dev/null || echo overlap >> "$1/overlaps"\n'
        "sleep 0.05\n"
        'rmdir "$1/reloading" 2>/dev/null\n'
        'kill -HUP "$2"\n'
    )
    return ["sh", "-c", script, "reload", str(folder), str(broker.pid)]


def test_concurrent_credential_requests_leave_whole_private_files(
    tmp_path: Path, secured_broker: tuple[Mosquitto, BrokerConfig, MqttConfig]
) -> None:
    """Regression: the files were written under one fixed temp name, without a lock, from
    concurrent API threads, and made 0640 only after the text was in them."""
    broker, broker_config, mqtt_config = secured_broker
    folder = broker_config.password_file.parent  # type: ignore[union-attr]
    reloads = tmp_path / "reloads"
    reloads.mkdir()
    broker_config = broker_config.model_copy(
        update={"reload_command": overlap_recording_reload(reloads, broker)}
    )
    config = secured_config(tmp_path, broker, broker_config, mqtt_config)
    gateways = [f"gw-{n}" for n in range(12)]
    readable: set[str] = set()
    done = threading.Event()

    def watch() -> None:  # any file of the folder readable by others, even for a moment
        while not done.is_set():
            for entry in os.scandir(folder):
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mode & 0o007:
                        readable.add(entry.name)

    with Controller(config) as controller, api(controller.api_url) as client:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5, message="controller connected")
        watcher = threading.Thread(target=watch, name="mode-watcher")
        watcher.start()

        def register(gateway: str) -> tuple[int, dict[str, Any]]:
            with api(controller.api_url) as own:
                body = {"id": gateway, "place": "cq/yuzhong/jiefangbei"}
                created = own.post("/api/v1/gateways", json=body)
                if created.status_code != 201:
                    return created.status_code, created.json()
                rotated = own.post(f"/api/v1/gateways/{gateway}/credentials")
                return rotated.status_code, rotated.json()

        try:
            with ThreadPoolExecutor(max_workers=len(gateways)) as pool:
                answers = dict(zip(gateways, pool.map(register, gateways), strict=True))
        finally:
            done.set()
            watcher.join()
        assert {g: code for g, (code, _) in answers.items()} == dict.fromkeys(gateways, 201)
        assert not (reloads / "overlaps").exists(), "two syncs ran at once"
        assert sorted(users_in(broker_config.password_file)) == sorted([CONTROLLER_USER, *gateways])
        acl = broker_config.acl_file.read_text()  # type: ignore[union-attr]
        assert all(acl.count(f"user {g}\n") == 1 for g in gateways)
        assert readable == set()
        assert sorted(os.listdir(folder)) == ["acl", "passwd"]  # no temp file left
        for path in (broker_config.password_file, broker_config.acl_file):
            assert path is not None
            assert stat.S_IMODE(path.stat().st_mode) == 0o640
        for gateway in gateways:  # the password each gateway was given last is the one in force
            login = connect(broker, gateway, answers[gateway][1]["password"])
            assert connected(login), gateway
            login.disconnect()
            login.loop_stop()
        assert len(get_json(client, "/api/v1/gateways")) == len(gateways)


def test_files_written_at_once_from_many_threads_are_whole_and_never_readable_by_others(
    tmp_path: Path,
) -> None:
    """Each write is a private temp file of its own, renamed over the target: the file is
    always one writer's whole text, and no moment shows a file others may read, whatever
    the umask (0 here: what a careless service manager might set)."""
    target = tmp_path / "broker" / "passwd"
    texts = [f"{n:02d}:" + "x" * 300_000 + "\n" for n in range(16)]
    readable: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(target.parent):
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat().st_mode & 0o007:
                            readable.add(entry.name)

    old_umask = os.umask(0)
    watcher = threading.Thread(target=watch, name="mode-watcher")
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            list(pool.map(lambda text: write_atomically(target, text), texts))
    finally:
        os.umask(old_umask)
        done.set()
        watcher.join()
    assert target.read_text() in texts
    assert readable == set()
    assert os.listdir(target.parent) == ["passwd"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
