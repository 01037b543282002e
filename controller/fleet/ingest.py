"""MQTT ingest: one paho-mqtt 2 session subscribed to every gateway's topics.

Topics are parsed with ``wire.parse_topic`` and payloads decoded with ``wire.decode``.
Anything malformed, oversized or on an unknown topic is counted by reason, logged once per
(gateway, reason) and dropped; no message can stop the MQTT loop. Readings are acknowledged
(manual PUBACK) only once the store has committed them, on a persistent session, so a
controller that stops mid-batch gets the batch again from the broker; a batch the store
cannot write is acknowledged too, counted as ``store_failed`` (its seqs go back to the gap
tracker as missing). Every message is acknowledged exactly once, whatever path it takes: an
un-acknowledged one would hold one of the broker's in-flight slots for this session for
good, and once they are all held the session receives nothing more. ``unacked`` says how
long the oldest received message has waited (``/readyz`` reads it).

The controller's retained ``edgewatch/v1/controller/status`` is ``controller.fleet.presence``:
online once every session has subscribed, offline as the live session's will.

Two sessions, so a replayed backlog never delays an alert: the *live* session subscribes to
each known kind but ``backlog`` (status, health, readings, alerts, cmd-result); the
*backlog* session (client id ``<id>-backlog``) subscribes to everything, handles the backlog
lane and counts unknown topics, and acknowledges the rest unread. Each has its own broker
queue and network thread.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

import wire
from controller.config import MqttConfig
from controller.fleet.once import LoggedOnce, quoted
from controller.fleet.presence import ControllerPresence, status_payload
from controller.store.sqlite import Lane

log = logging.getLogger(__name__)

_LANES = {wire.TopicKind.READINGS: Lane.LIVE, wire.TopicKind.BACKLOG: Lane.BACKLOG}
_LIVE_KINDS = ("status", "health", "readings", "alerts", "cmd-result/+")


class IngestRole(StrEnum):
    LIVE = "live"
    BACKLOG = "backlog"


UNKNOWN_TOPIC = "unknown_topic"
INTERNAL_ERROR = "internal_error"
STORE_FAILED = "store_failed"
MAX_DETAIL_CHARS = 300


class IngestSink(Protocol):
    def on_status(self, gateway: str, status: wire.Status) -> None: ...

    def on_health(self, gateway: str, health: wire.Health) -> None: ...

    def on_readings(
        self,
        gateway: str,
        lane: Lane,
        batch: wire.ReadingBatch,
        on_stored: Callable[[], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
    ) -> None: ...

    def on_edge_alert(self, gateway: str, alert: wire.EdgeAlert) -> None: ...

    def handle_command_result(self, gateway: str, result: wire.CommandResult) -> None: ...


class MessageCounter(Protocol):
    def message(self, kind: str, readings: int = 0) -> None: ...


class Rejections:
    """Refused messages counted by reason; each (gateway, reason) is logged once (of the
    last few thousand pairs: a sender making up gateway levels cannot grow the memory)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._logged = LoggedOnce()
        self._lock = threading.Lock()

    def reject(self, gateway: str, reason: str, detail: str, topic: str) -> None:
        gateway = quoted(gateway)
        with self._lock:
            self._counts[reason] += 1
        if self._logged.first((gateway, reason)):
            log.warning(
                "rejected a message from %s on %r: %s: %s (logged once per gateway and reason;"
                " counted in /api/v1/summary)",
                gateway,
                quoted(topic, MAX_DETAIL_CHARS),
                reason,
                quoted(detail, MAX_DETAIL_CHARS),
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def remembered(self) -> int:
        """How many (gateway, reason) pairs the logged-once memory holds."""
        return len(self._logged)


class Unacked:
    """Messages received and not yet acknowledged, oldest first (on either session)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._since: OrderedDict[int, float] = OrderedDict()
        self._tokens = itertools.count()
        self._lock = threading.Lock()

    def hold(self) -> int:
        with self._lock:
            token = next(self._tokens)
            self._since[token] = self._monotonic()
            return token

    def release(self, token: int) -> None:
        with self._lock:
            self._since.pop(token, None)

    def count(self) -> int:
        with self._lock:
            return len(self._since)

    def oldest_age_s(self) -> float:
        """How long the oldest un-acknowledged message has waited (0 when none waits)."""
        with self._lock:
            if not self._since:
                return 0.0
            first = next(iter(self._since.values()))
        return max(0.0, self._monotonic() - first)


class _AckOnce:
    """Acknowledges a message once, from whichever thread gets there first."""

    __slots__ = ("_ack", "_done", "_token", "_unacked")

    def __init__(self, ack: Callable[[], None], unacked: Unacked) -> None:
        self._ack = ack
        self._unacked = unacked
        self._token = unacked.hold()
        self._done = threading.Lock()

    def __call__(self) -> None:
        if not self._done.acquire(blocking=False):
            return  # already acknowledged
        try:
            self._ack()
        finally:
            self._unacked.release(self._token)


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
        presence: ControllerPresence | None = None,
        unacked: Unacked | None = None,
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
        self.unacked = unacked or Unacked()
        # Alone (tests, tools), a live session is the only one that must be subscribed.
        self.presence = presence or ControllerPresence([self.role.value])
        if self.role is IngestRole.LIVE:
            self.presence.publish_with(self._publish_status)
        self.presence.resubscribe_with(self.role.value, self._resubscribe)
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
                status_payload(wire.GatewayState.OFFLINE),
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
        # Before the network thread runs: its first SUBACK may make this client publish
        # the controller's status (presence), from either session's thread.
        self._client = client
        client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        client.loop_start()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Say offline (retained), disconnect cleanly and stop the network thread."""
        client, self._client = self._client, None
        if client is None:
            return
        if self._subscribed.is_set() and self.role is IngestRole.LIVE:
            try:
                info = client.publish(
                    wire.CONTROLLER_STATUS_TOPIC,
                    status_payload(wire.GatewayState.OFFLINE),
                    qos=1,
                    retain=True,
                )
                info.wait_for_publish(timeout=timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish the controller's offline status: %s", exc)
        # Said offline already (live) or about to be said by the live session (backlog,
        # stopped first): the gateways hold their data until every session is back.
        self._subscribed.clear()
        self.presence.lost(self.role.value)
        client.disconnect()
        client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """Publish at QoS 1 (commands); None when there is no session to publish on."""
        client = self._client
        if client is None or not self._subscribed.is_set():
            return None
        return client.publish(topic, payload, qos=1)

    def _publish_status(self, payload: bytes, qos: int) -> bool:
        """The presence's publisher: the retained status on this (live) session's client."""
        client = self._client
        if client is None:
            return False
        info = client.publish(wire.CONTROLLER_STATUS_TOPIC, payload, qos=qos, retain=True)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def _resubscribe(self) -> None:
        """Subscribe again on the current connection (another session found the broker had
        lost its state); the SUBACK makes this session ready again."""
        client = self._client
        if client is not None and client.is_connected():
            client.subscribe([(topic, 1) for topic in self.subscriptions])

    # -- paho callbacks (network thread) --------------------------------------------------

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
        # online is said only once every session has its SUBACK (controller.fleet.presence).
        if not flags.session_present:  # the broker lost its state: every session's too
            self.presence.forgotten(self.role.value)
        client.subscribe([(topic, 1) for topic in self.subscriptions])

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
        self.presence.subscribed(self.role.value)

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
        self.presence.lost(self.role.value)

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
        """Handle one message off the wire; ``ack`` is called exactly once, when it is safe
        (now, or once the store is done with the batch). Never raises."""
        ack_once = _AckOnce(ack, self.unacked)
        try:
            if self._handle(topic_text, payload, ack_once):
                return  # the store acknowledges once it committed (or gave up on) the batch
        except Exception as exc:
            log.debug("ingest failed on a message", exc_info=True)
            self.rejections.reject(
                _gateway_level(topic_text), INTERNAL_ERROR, repr(exc), repr(topic_text)
            )
        ack_once()

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

                def failed(why: str) -> None:  # the store gave up on the batch
                    self.rejections.reject(gateway, STORE_FAILED, why, topic_text)
                    ack()

                self.sink.on_readings(gateway, _LANES[topic.kind], batch, ack, failed)
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
