"""The agent's MQTT session: birth and will, QoS 1 publishing, PUBACK-driven buffer acks.

Reconnection is an explicit loop this module owns (one paho client per connection, capped
exponential backoff) rather than paho's automatic reconnect, because every connection
needs its own will: the will carries the session number, which is bumped and persisted
before each connect. Publishing a batch records ``mid -> seqs``; only paho's
``on_publish`` for that mid (the broker's PUBACK) acks the rows in the buffer. When a
connection ends its in-flight mids are forgotten and the rows are unsent again; they go
out again on the next connection (the controller de-duplicates on (gateway, seq)).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from agent.buffer import Buffer, wall_clock_ms
from agent.config import MqttConfig
from wire import (
    EdgeAlert,
    GatewayState,
    Health,
    Reading,
    ReadingBatch,
    Status,
    TopicKind,
    encode,
    topic_for,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0


@dataclass
class _Connection:
    """One paho client from connect to disconnect, and what is in flight on it."""

    client: paho.Client
    session: int
    online: bool = False  # CONNACK accepted
    done: bool = False  # refused, lost or closed
    reason: str = ""
    pending: dict[int, list[int]] = field(default_factory=dict)  # mid -> seqs awaiting PUBACK
    early_acks: set[int] = field(default_factory=set)  # PUBACKs that beat their registration


class MqttSession:
    """A supervised MQTT connection for one gateway; a context manager.

    ``on_online`` runs (on paho's thread; keep it short) after each birth is published.
    """

    def __init__(
        self,
        *,
        gateway_id: str,
        mqtt: MqttConfig,
        heartbeat_interval_s: float,
        buffer: Buffer,
        agent_version: str = "",
        now_ms: Callable[[], int] = wall_clock_ms,
        on_online: Callable[[], None] | None = None,
    ) -> None:
        self._gateway_id = gateway_id
        self._mqtt = mqtt
        self._heartbeat_interval_s = heartbeat_interval_s
        self._buffer = buffer
        self._agent_version = agent_version
        self._now_ms = now_ms
        self._on_online = on_online
        self._cond = threading.Condition()
        self._stopping = False
        self._conn: _Connection | None = None  # the connection publishing may use
        self._thread: threading.Thread | None = None
        self._stop_timeout_s = 1.5
        self._unused_session: int | None = None
        self.status_topic = topic_for(gateway_id, TopicKind.STATUS)
        self.readings_topic = topic_for(gateway_id, TopicKind.READINGS)
        self.alerts_topic = topic_for(gateway_id, TopicKind.ALERTS)
        self.health_topic = topic_for(gateway_id, TopicKind.HEALTH)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="mqtt-session")
        self._thread.start()

    def stop(self, timeout_s: float = 1.5) -> None:
        """Publish the retained offline status (waiting up to ``timeout_s`` for its PUBACK),
        disconnect and join."""
        with self._cond:
            self._stopping = True
            self._stop_timeout_s = timeout_s
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s + CONNECT_TIMEOUT_S + 2)
            self._thread = None

    def __enter__(self) -> MqttSession:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.online and not conn.done

    @property
    def session(self) -> int:
        conn = self._conn
        return conn.session if conn is not None else self._buffer.session

    def inflight_messages(self) -> int:
        with self._cond:
            return len(self._conn.pending) if self._conn is not None else 0

    def wait_for_capacity(self, max_inflight: int, timeout_s: float) -> bool:
        """Block until fewer than ``max_inflight`` batches await PUBACK (or timeout/stop)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (
                    self._stopping or self._conn is None or len(self._conn.pending) < max_inflight
                ),
                timeout=timeout_s,
            )

    # -- publishing -----------------------------------------------------------------------

    def publish_readings(self, readings: Sequence[Reading]) -> bool:
        """Publish one batch at QoS 1; False if it was not handed to a live connection
        (the caller releases the rows). The rows are acked on PUBACK, not here."""
        if not readings:
            return True
        batch = ReadingBatch(session=self.session, readings=list(readings))
        return self._publish(self.readings_topic, encode(batch), [r.seq for r in readings])

    def publish_alert(self, alert: EdgeAlert) -> bool:
        """An edge alert on its own lane, straight away: never behind buffered readings."""
        return self._publish(self.alerts_topic, encode(alert), [])

    def publish_health(self, health: Health) -> bool:
        return self._publish(self.health_topic, encode(health), [])

    def _publish(
        self, topic: str, payload: bytes, seqs: list[int], *, retain: bool = False
    ) -> bool:
        conn = self._conn
        if conn is None or not conn.online or conn.done:
            return False
        info = conn.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        with self._cond:
            if info.mid in conn.early_acks:
                conn.early_acks.discard(info.mid)
                acked_now = True
            else:
                conn.pending[info.mid] = seqs
                acked_now = False
        if acked_now and seqs:
            self._buffer.ack(seqs)
        return True

    # -- the connection loop --------------------------------------------------------------

    def _supervise(self) -> None:
        """Connect, serve, reconnect: capped exponential backoff while the broker is away.

        An outage is logged once (its first failure, or the lost connection); the return
        of the broker once (``connected``), never a line per attempt.
        """
        delay_s = self._mqtt.reconnect_min_s
        outage_logged = False
        while not self._stopping:
            try:
                was_online = self._one_connection(log_failure=not outage_logged)
            except Exception:
                log.exception("MQTT connection loop failed; retrying")
                was_online = False
            outage_logged = True
            if self._stopping:
                break
            delay_s = self._mqtt.reconnect_min_s if was_online else delay_s
            with self._cond:
                self._cond.wait_for(lambda: self._stopping, timeout=delay_s)
            if not was_online:
                delay_s = min(delay_s * 2, self._mqtt.reconnect_max_s)

    def _one_connection(self, *, log_failure: bool) -> bool:
        # A session number is spent once a CONNECT carrying its will may have reached the
        # broker; a connect that failed at TCP level keeps it for the next attempt, so a
        # long outage does not burn (and fsync) a number every few seconds.
        if self._unused_session is None:
            self._unused_session = self._buffer.bump_session()
        session = self._unused_session
        client = self._new_client(session)
        conn = _Connection(client=client, session=session)
        client.user_data_set(conn)
        where = f"{self._mqtt.host}:{self._mqtt.port}"
        try:
            client.connect(self._mqtt.host, self._mqtt.port, keepalive=self._mqtt.keepalive_s)
        except (OSError, ValueError) as exc:
            (log.warning if log_failure else log.debug)(
                "cannot connect to MQTT broker %s: %s (retrying, backoff up to %.0f s)",
                where,
                exc,
                self._mqtt.reconnect_max_s,
            )
            return False
        self._unused_session = None
        with self._cond:
            self._conn = conn
        client.loop_start()
        said_goodbye = False
        try:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or conn.done)
            if conn.online and not conn.done:  # stopping while connected
                self._say_goodbye(conn)
                said_goodbye = True
            elif conn.done and not conn.online:
                if log_failure:
                    log.warning("MQTT broker %s refused the connection: %s", where, conn.reason)
            elif conn.done:
                log.warning("lost the MQTT connection to %s (%s); reconnecting", where, conn.reason)
        finally:
            with self._cond:
                self._conn = None
                self._cond.notify_all()
            self._buffer.release_all()
            if not said_goodbye:
                client.disconnect()  # ends paho's loop if the socket is still open
            client.loop_stop()
        return conn.online

    def _say_goodbye(self, conn: _Connection) -> None:
        """Graceful stop: a retained offline status the controller sees at once."""
        offline = Status(state=GatewayState.OFFLINE, session=conn.session, ts_ms=self._now_ms())
        info = conn.client.publish(self.status_topic, encode(offline), qos=1, retain=True)
        try:
            info.wait_for_publish(timeout=self._stop_timeout_s)
        except (RuntimeError, ValueError) as exc:
            log.warning("could not publish the offline status: %s", exc)
        conn.client.disconnect()
        log.info("disconnected from the MQTT broker (graceful stop, session %d)", conn.session)

    def _new_client(self, session: int) -> paho.Client:
        client_id = self._mqtt.client_id or f"edgewatch-agent-{self._gateway_id}"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,  # _supervise reconnects, with a fresh will
        )
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.suppress_exceptions = True  # a bug in a callback must not kill the session
        client.enable_logger(logging.getLogger("agent.mqtt.paho"))
        if self._mqtt.username is not None:
            client.username_pw_set(self._mqtt.username, self._mqtt.password)
        will = Status(state=GatewayState.OFFLINE, session=session)
        client.will_set(self.status_topic, encode(will), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- paho callbacks (paho's network thread) --------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        conn: _Connection,
        flags: Any,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            with self._cond:
                conn.done = True
                conn.reason = str(reason_code)
                self._cond.notify_all()
            return
        birth = Status(
            state=GatewayState.ONLINE,
            session=conn.session,
            ts_ms=self._now_ms(),
            agent_version=self._agent_version,
            heartbeat_interval_s=self._heartbeat_interval_s,
        )
        info = client.publish(self.status_topic, encode(birth), qos=1, retain=True)
        with self._cond:
            conn.pending[info.mid] = []
            conn.online = True
            self._cond.notify_all()
        log.info(
            "connected to MQTT broker %s:%d (session %d)",
            self._mqtt.host,
            self._mqtt.port,
            conn.session,
        )
        if self._on_online is not None:
            self._on_online()

    def _on_disconnect(
        self,
        client: paho.Client,
        conn: _Connection,
        flags: Any,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        with self._cond:
            conn.done = True
            conn.reason = str(reason_code)
            self._cond.notify_all()

    def _on_publish(
        self,
        client: paho.Client,
        conn: _Connection,
        mid: int,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        with self._cond:
            seqs = conn.pending.pop(mid, None)
            if seqs is None:
                conn.early_acks.add(mid)
            self._cond.notify_all()
        if not seqs:
            return
        if reason_code.is_failure:
            log.warning("broker refused readings batch (mid %d): %s", mid, reason_code)
            self._buffer.release(seqs)
        else:
            self._buffer.ack(seqs)
