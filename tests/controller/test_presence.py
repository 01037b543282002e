"""The controller's retained status says online only while every session that must receive
the gateways' topics is subscribed (issue 11: a loss window after a broker restart)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import wire
from controller.fleet.presence import ControllerPresence
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import batch, config_for

ONLINE, OFFLINE = wire.GatewayState.ONLINE, wire.GatewayState.OFFLINE


class Recorder:
    """A status publisher that records what it was asked to publish, and at which QoS."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[wire.GatewayState, int]] = []

    def __call__(self, payload: bytes, qos: int) -> bool:
        if not self.connected:
            return False
        self.sent.append((wire.decode(wire.ControllerStatus, payload).state, qos))
        return True


def test_online_only_once_every_session_has_subscribed() -> None:
    presence, said = ControllerPresence(["live", "backlog"]), Recorder()
    presence.publish_with(said)
    presence.subscribed("live")
    assert said.sent == []  # the backlog session is not subscribed yet
    presence.subscribed("backlog")
    assert said.sent == [(ONLINE, 0)]
    assert presence.online
    presence.subscribed("live")  # a repeated SUBACK says nothing new
    assert said.sent == [(ONLINE, 0)]


def test_offline_while_a_session_is_down_and_online_again_when_it_is_back() -> None:
    presence, said = ControllerPresence(["live", "backlog"]), Recorder()
    presence.publish_with(said)
    presence.subscribed("live")
    presence.subscribed("backlog")
    presence.lost("backlog")
    assert said.sent[-1] == (OFFLINE, 1)
    assert not presence.online
    presence.lost("backlog")  # lost again before it came back: nothing new
    presence.subscribed("backlog")
    assert said.sent == [(ONLINE, 0), (OFFLINE, 1), (ONLINE, 0)]


def test_a_lost_publisher_leaves_it_to_its_will_and_says_online_after_its_return() -> None:
    presence, said = ControllerPresence(["live", "backlog"]), Recorder()
    presence.publish_with(said)
    presence.subscribed("live")
    presence.subscribed("backlog")
    said.connected = False  # the live session's connection is gone: its will says offline
    presence.lost("live")
    presence.lost("backlog")  # a broker restart takes both
    said.connected = True
    presence.subscribed("live")
    assert said.sent == [(ONLINE, 0)]  # nothing until the backlog session is back too
    presence.subscribed("backlog")
    assert said.sent == [(ONLINE, 0), (ONLINE, 0)]


def test_a_broker_that_lost_its_state_makes_every_session_subscribe_again() -> None:
    """The live session reconnects to a broker that kept no session for it: the backlog
    session's subscriptions are gone too, though its own connection (half-open: a host that
    went down without closing it) has not noticed. Nothing is online until it subscribes
    again."""
    presence, said = ControllerPresence(["live", "backlog"]), Recorder()
    presence.publish_with(said)
    asked: list[str] = []
    presence.resubscribe_with("backlog", lambda: asked.append("backlog"))
    presence.resubscribe_with("live", lambda: asked.append("live"))
    presence.subscribed("live")
    presence.subscribed("backlog")
    said.connected = False
    presence.lost("live")  # the backlog session did not notice anything
    said.connected = True
    presence.forgotten("live")  # CONNACK: session present = 0
    assert asked == ["backlog"]
    presence.subscribed("live")
    assert said.sent == [(ONLINE, 0)]  # not again: the backlog session has no SUBACK yet
    presence.subscribed("backlog")
    assert said.sent == [(ONLINE, 0), (ONLINE, 0)]


class StatusWatcher:
    """A client subscribed to the controller's status across reconnects, as an agent is.
    Like an agent, it sends what it holds the moment it sees ``online``, on the same
    connection, from paho's callback."""

    def __init__(self, broker: Mosquitto) -> None:
        self.states: list[wire.GatewayState] = []
        self.holding: list[tuple[str, bytes]] = []  # sent at the next online
        self.changed = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(wire.CONTROLLER_STATUS_TOPIC, qos=1)
        self.client.on_message = self._on_message
        # Back before the controller's sessions (they wait 1 s): it hears online at once.
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.2)  # type: ignore[arg-type]
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload:
            return
        state = wire.decode(wire.ControllerStatus, bytes(msg.payload)).state
        with self.changed:
            holding, self.holding = (self.holding, []) if state is ONLINE else ([], self.holding)
            self.states.append(state)
            self.changed.notify_all()
        for topic, payload in holding:
            client.publish(topic, payload, qos=1)

    def says(self) -> wire.GatewayState | None:
        with self.changed:
            return self.states[-1] if self.states else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def controller(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Controller]:
    config = config_for(tmp_path, mosquitto, gateways={"gw-a": "cq/yuzhong/jiefangbei"})
    with Controller(config) as running:
        wait_until(lambda: running.mqtt_connected, timeout_s=10)
        yield running


def test_a_backlog_session_that_is_down_takes_the_controller_offline(
    controller: Controller, mosquitto: Mosquitto
) -> None:
    watcher = StatusWatcher(mosquitto)
    try:
        wait_until(lambda: watcher.says() is ONLINE, timeout_s=10)
        controller.backlog_ingest.stop()
        wait_until(lambda: watcher.says() is OFFLINE, timeout_s=10, message="offline")
        assert controller.ingest.subscribed  # the live session is fine: it said so
        controller.backlog_ingest.start()
        wait_until(lambda: watcher.says() is ONLINE, timeout_s=10, message="online again")
    finally:
        watcher.close()


RESTARTS = 8


def test_after_each_broker_restart_online_means_every_topic_has_a_subscriber(
    controller: Controller, mosquitto: Mosquitto
) -> None:
    """A broker without persistence restarted: the first thing a gateway that waits for
    ``online`` sends, on either lane, reaches the store. Before, the live session said
    online at once and the backlog session subscribed up to seconds later."""
    watcher = StatusWatcher(mosquitto)
    readings = wire.topic_for("gw-a", wire.TopicKind.READINGS)
    backlog = wire.topic_for("gw-a", wire.TopicKind.BACKLOG)
    seq = 0

    def stored() -> int:
        count: int = controller.store.read(
            lambda conn: conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        )
        return count

    try:
        wait_until(lambda: watcher.says() is ONLINE, timeout_s=10, message="online at first")
        for restart in range(1, RESTARTS + 1):
            mosquitto.stop()
            with watcher.changed:
                watcher.states.clear()
                watcher.holding = [
                    (backlog, wire.encode(batch(range(seq + 1, seq + 6)))),
                    (readings, wire.encode(batch(range(seq + 6, seq + 11)))),
                ]
            mosquitto.start()  # no persistence: no subscriptions, no retained status
            wait_until(lambda: watcher.says() is ONLINE, timeout_s=20, message="online")
            seq += 10
            # Stored before the next restart (a broker without persistence that stops
            # loses what it has not delivered yet, whatever the controller says).
            wait_until(
                lambda want=seq: stored() == want,  # type: ignore[misc]
                timeout_s=10,
                message=f"after restart {restart}: the readings sent right after 'online' stored",
            )
    finally:
        watcher.close()
