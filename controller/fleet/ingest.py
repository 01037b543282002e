"""MQTT ingest: one paho-mqtt 2 session subscribed to every gateway's topics.

Topics are parsed with ``wire.parse_topic`` and payloads decoded with ``wire.decode``.
Anything malformed, oversized or on an unknown topic is counted by reason, logged once per
(gateway, reason) and dropped; no message can stop the MQTT loop. Readings are acknowledged
(manual PUBACK) only once the store has committed them, on a persistent session, so a
controller that stops mid-batch gets the batch again from the broker.

The controller announces itself on the retained ``edgewatch/v1/controller/status`` (online
on connect, offline on a clean stop, and offline as its will).

Two sessions, so a replayed backlog never delays an alert: the *live* session subscribes to
each known kind but ``backlog`` (status, health, readings, alerts, cmd-result); the
*backlog* session (client id ``<id>-backlog``) subscribes to everything, handles the backlog
lane and counts unknown topics, and acknowledges the rest unread. Each has its own broker
queue and network thread.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

import wire
from controller.config import MqttConfig
from controller.store.sqlite import Lane
from wire.clock import wall_ms

log = logging.getLogger(__name__)

_LANES = {wire.TopicKind.READINGS: Lane.LIVE, wire.TopicKind.BACKLOG: Lane.BACKLOG}
_LIVE_KINDS = ("status", "health", "readings", "alerts", "cmd-result/+")


class IngestRole(StrEnum):
    LIVE = "live"
    BACKLOG = "backlog"


UNKNOWN_TOPIC = "unknown_topic"
INTERNAL_ERROR = "internal_error"


class IngestSink(Protocol):
    def on_status(self, gateway: str, status: wire.Status) -> None: ...

    def on_health(self, gateway: str, health: wire.Health) -> None: ...

    def on_readings(
        self,
        gateway: str,
        lane: Lane,
        batch: wire.ReadingBatch,
        on_stored: Callable[[], None] | None = None,
    ) -> None: ...

    def on_edge_alert(self, gateway: str, alert: wire.EdgeAlert) -> None: ...

    def handle_command_result(self, gateway: str, result: wire.CommandResult) -> None: ...


class MessageCounter(Protocol):
    def message(self, kind: str, readings: int = 0) -> None: ...


class Rejections:
    """Refused messages counted by reason; each (gateway, reason) is logged once."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def reject(self, gateway: str, reason: str, detail: str, topic: str) -> None:
        with self._lock:
            self._counts[reason] += 1
            first = (gateway, reason) not in self._logged
            self._logged.add((gateway, reason))
        if first:
            log.warning(
                "rejected a message from %s on %r: %s: %s (logged once per gateway and reason;"
                " counted in /api/v1/summary)",
                gateway,
                topic,
                reason,
                detail,
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def _gateway_level(topic: str) -> str:
    """The gateway level of a topic that did not parse, for the log."""
    parts = topic.split("/")
    return parts[2] if topic.startswith(wire.PREFIX + "/") and len(parts) > 2 else "?"


class MqttIngest:
    def __init__(
        self,
        config: MqttConfig,
        sink: IngestSink,
        *,
        rejections: Rejections | None = None,
        on_subscribed: Callable[[], None] | None = None,
        role: IngestRole = IngestRole.LIVE,
        counter: MessageCounter | None = None,
    ) -> None:
        self.config = config
        self.role = role
        self.client_id = config.client_id + ("-backlog" if role is IngestRole.BACKLOG else "")
        self.subscriptions = (
            [wire.gateway_subscription()]
            if role is IngestRole.BACKLOG
            else [wire.gateway_subscription(kind=kind) for kind in _LIVE_KINDS]
        )
        self.sink = sink
        self.counter = counter
        self.on_subscribed = on_subscribed
        self._connect_failures = 0
        self.rejections = rejections or Rejections()
        self._subscribed = threading.Event()
        self._was_connected = False
        self._client: mqtt.Client | None = None

    @property
    def subscribed(self) -> bool:
        """Connected to the broker and subscribed to the gateways' topics."""
        return self._subscribed.is_set()

    def start(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if self.role is IngestRole.LIVE:
            client.will_set(
                wire.CONTROLLER_STATUS_TOPIC,
                self._status(wire.GatewayState.OFFLINE),
                qos=1,
                retain=True,
            )
        if self.config.username is not None:
            client.username_pw_set(self.config.username, self.config.password)
        if self.config.tls_ca_file is not None:
            client.tls_set(
                ca_certs=str(self.config.tls_ca_file),
                certfile=str(self.config.tls_cert_file) if self.config.tls_cert_file else None,
                keyfile=str(self.config.tls_key_file) if self.config.tls_key_file else None,
            )
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        client.loop_start()
        self._client = client

    def stop(self, timeout_s: float = 3.0) -> None:
        """Say offline (retained), disconnect cleanly and stop the network thread."""
        client, self._client = self._client, None
        if client is None:
            return
        if self._subscribed.is_set() and self.role is IngestRole.LIVE:
            try:
                info = client.publish(
                    wire.CONTROLLER_STATUS_TOPIC,
                    self._status(wire.GatewayState.OFFLINE),
                    qos=1,
                    retain=True,
                )
                info.wait_for_publish(timeout=timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish the controller's offline status: %s", exc)
        client.disconnect()
        client.loop_stop()
        self._subscribed.clear()

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """Publish at QoS 1 (commands); None when there is no session to publish on."""
        client = self._client
        if client is None or not self._subscribed.is_set():
            return None
        return client.publish(topic, payload, qos=1)

    # -- paho callbacks (network thread) --------------------------------------------------

    @staticmethod
    def _status(state: wire.GatewayState) -> bytes:
        return wire.encode(wire.ControllerStatus(state=state, ts_ms=wall_ms()))

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", *self._where(), reason_code)
            return
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        if self.role is IngestRole.LIVE:
            client.publish(
                wire.CONTROLLER_STATUS_TOPIC,
                self._status(wire.GatewayState.ONLINE),
                qos=1,
                retain=True,
            )

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("MQTT broker refused the subscriptions %s", self.subscriptions)
            return
        if not self._was_connected:
            log.info(
                "MQTT: connected to %s:%d, ingesting %s gateway topics",
                *self._where(),
                self.role.value,
            )
        self._was_connected = True
        self._connect_failures = 0
        if self.on_subscribed is not None:
            self.on_subscribed()
        self._subscribed.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._connect_failures += 1
        if self._connect_failures == 1:
            log.warning("MQTT: cannot reach %s:%d; retrying", *self._where())

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._subscribed.is_set() and self._client is not None:
            log.warning("MQTT: lost %s:%d (%s); reconnecting", *self._where(), reason_code)
            self._was_connected = False
        self._subscribed.clear()

    def _where(self) -> tuple[str, int]:
        return self.config.host, self.config.port

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        def ack() -> None:
            client.ack(message.mid, message.qos)

        try:
            topic = message.topic
        except UnicodeDecodeError:
            self.rejections.reject("?", UNKNOWN_TOPIC, "topic is not UTF-8", "?")
            ack()
            return
        self.handle_message(topic, bytes(message.payload), ack)

    def handle_message(self, topic_text: str, payload: bytes, ack: Callable[[], None]) -> None:
        """Handle one message off the wire; ``ack`` is called once it is safe (never raises)."""
        try:
            if self._handle(topic_text, payload, ack):
                return  # the store acknowledges once committed
        except Exception as exc:
            log.debug("ingest failed on a message", exc_info=True)
            self.rejections.reject("?", INTERNAL_ERROR, repr(exc), repr(topic_text))
        ack()

    def _handle(self, topic_text: str, payload: bytes, ack: Callable[[], None]) -> bool:
        """Handle one message; True if ``ack`` was handed on to be called later."""
        if topic_text == wire.CONTROLLER_STATUS_TOPIC:
            return False
        try:
            topic = wire.parse_topic(topic_text)
        except wire.TopicError as exc:
            if self.role is IngestRole.BACKLOG:  # it sees every topic: it counts them once
                gateway = _gateway_level(topic_text)
                self.rejections.reject(gateway, UNKNOWN_TOPIC, str(exc), topic_text)
            return False
        if (topic.kind is wire.TopicKind.BACKLOG) != (self.role is IngestRole.BACKLOG):
            return False  # the other session's
        gateway = topic.gateway_id
        try:
            if topic.kind is wire.TopicKind.STATUS:
                if payload:  # an empty retained message clears the status: nothing to do
                    self.sink.on_status(gateway, wire.decode(wire.Status, payload))
            elif topic.kind is wire.TopicKind.HEALTH:
                self.sink.on_health(gateway, wire.decode(wire.Health, payload))
            elif topic.kind in _LANES:
                batch = wire.decode(wire.ReadingBatch, payload)
                self._count(topic.kind, len(batch.readings))
                self.sink.on_readings(gateway, _LANES[topic.kind], batch, ack)
                return True
            elif topic.kind is wire.TopicKind.ALERTS:
                self.sink.on_edge_alert(gateway, wire.decode(wire.EdgeAlert, payload))
            elif topic.kind is wire.TopicKind.CMD_RESULT:
                result = wire.decode(wire.CommandResult, payload)
                if result.id != topic.command_id:
                    raise wire.PayloadError("invalid", "id differs from the topic's command id")
                self.sink.handle_command_result(gateway, result)
            # cmd: our own, echoed; not handled here.
            self._count(topic.kind)
        except wire.PayloadError as exc:
            self.rejections.reject(gateway, exc.reason, exc.detail, topic_text)
        return False

    def _count(self, kind: wire.TopicKind, readings: int = 0) -> None:
        if self.counter is not None:
            self.counter.message(kind.value, readings)
