"""The agent's MQTT session: birth and will, QoS 1 publishing, PUBACK-driven acks, commands.

Reconnection is an explicit loop this module owns (one paho client per connection, capped
exponential backoff with jitter from tenacity) rather than paho's automatic reconnect,
because every connection needs its own will: the will carries the session number, which is
bumped and persisted before each connect. Each publish records ``mid -> callbacks``; only
paho's ``on_publish`` for that mid (the broker's PUBACK) runs ``on_acked`` (e.g. acking the
rows in the buffer). When a connection ends its in-flight mids are forgotten and
``on_connection_closed`` runs (the rows are unsent again and go out on the next connection;
the controller de-duplicates on (gateway, seq)).

On every connection the session subscribes to the controller's retained status
(``controller_online``: False until an online status is seen on this connection, because a
broker that restarted has forgotten it) and to the gateway's commands (``cmd/+``), which go
to ``on_command``. Callbacks are guarded: an exception in one is logged, never fatal to
paho's network thread.

TLS: with ``[mqtt] tls_ca_file`` (and optionally a client certificate and key) every
connection is TLS, the broker's certificate checked against that CA and its name against
``host`` (``tls_insecure`` skips the name check; config allows it for loopback only). A
handshake that fails is a failed connection like any other: logged, retried with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from tenacity import Retrying, retry_if_result, wait_exponential_jitter

from agent.buffer.store import Buffer
from agent.config import MqttConfig
from agent.uplink.client import (
    CONNECT_TIMEOUT_S,
    Callback,
    Connection,
    Pending,
    guarded,
    new_client,
)
from wire import (
    CONTROLLER_STATUS_TOPIC,
    CommandRequest,
    ControllerStatus,
    GatewayState,
    PayloadError,
    Status,
    TopicKind,
    decode,
    encode,
    topic_for,
)
from wire.clock import wall_ms
from wire.lifecycle import Lifecycle

log = logging.getLogger(__name__)


class MqttSession(Lifecycle):
    """A supervised MQTT connection for one gateway; a context manager.

    ``on_online`` runs (on paho's thread; keep it short) after each birth is published and
    when the controller comes online; ``on_command`` gets each decoded command (on paho's
    thread: hand it on); ``on_connection_closed`` runs after a connection ended.
    """

    def __init__(
        self,
        *,
        gateway_id: str,
        mqtt: MqttConfig,
        heartbeat_interval_s: float,
        buffer: Buffer,
        agent_version: str = "",
        now_ms: Callable[[], int] = wall_ms,
        on_online: Callback | None = None,
        on_command: Callable[[CommandRequest], None] | None = None,
        on_connection_closed: Callback | None = None,
    ) -> None:
        self._gateway_id = gateway_id
        self._mqtt = mqtt
        self._heartbeat_interval_s = heartbeat_interval_s
        self._buffer = buffer
        self._agent_version = agent_version
        self._now_ms = now_ms
        self._on_online = on_online
        self._on_command = on_command
        self._on_connection_closed = on_connection_closed
        self._cond = threading.Condition()
        self._stopping = False
        self._conn: Connection | None = None  # the connection publishing may use
        self._thread: threading.Thread | None = None
        self._stop_timeout_s = 1.5
        self._unused_session: int | None = None
        self._outage_logged = False
        self._controller_logged: bool | None = None
        # Last contact with the broker (wall ms; None: not yet): for data_dir/status.json.
        self.last_connected_ms: int | None = None
        self.last_disconnected_ms: int | None = None
        self.last_puback_ms: int | None = None
        self.status_topic = topic_for(gateway_id, TopicKind.STATUS)
        self.command_filter = topic_for(gateway_id, TopicKind.CMD, "x")[:-1] + "+"

    def topic(self, kind: TopicKind, command_id: str | None = None) -> str:
        return topic_for(self._gateway_id, kind, command_id)

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

    @property
    def alive(self) -> bool:
        """The connection loop's thread runs (whether or not the broker is reachable)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.online and not conn.done

    @property
    def controller_online(self) -> bool:
        """The controller's retained status, seen on this connection, says online."""
        conn = self._conn
        return conn is not None and conn.controller_online

    @property
    def session(self) -> int:
        conn = self._conn
        return conn.session if conn is not None else self._buffer.session

    def inflight_messages(self) -> int:
        with self._cond:
            return len(self._conn.pending) if self._conn is not None else 0

    def wait_for_capacity(self, max_inflight: int, timeout_s: float) -> bool:
        """Block until fewer than ``max_inflight`` messages await PUBACK (or timeout/stop)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (
                    self._stopping or self._conn is None or len(self._conn.pending) < max_inflight
                ),
                timeout=timeout_s,
            )

    # -- publishing -----------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        on_acked: Callback | None = None,
        on_refused: Callback | None = None,
        retain: bool = False,
    ) -> bool:
        """Publish at QoS 1; False if it was not handed to a live connection (nothing will
        be called then). ``on_acked`` runs on the broker's PUBACK, ``on_refused`` if the
        broker refuses it; neither runs if the connection ends first."""
        conn = self._conn
        if conn is None or not conn.online or conn.done:
            return False
        info = conn.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        with self._cond:
            acked_now = info.mid in conn.early_acks
            if acked_now:
                conn.early_acks.discard(info.mid)
            else:
                conn.pending[info.mid] = Pending(on_acked, on_refused)
        if acked_now:
            guarded("on_acked", on_acked)
        return True

    # -- the connection loop --------------------------------------------------------------

    def _supervise(self) -> None:
        """Connect, serve, reconnect: capped exponential backoff with jitter while the broker
        is away, reset once a connection was up. An outage is logged once (its first
        failure, or the lost connection); the return of the broker once."""
        while not self._stopping:
            retrying = Retrying(
                wait=wait_exponential_jitter(
                    multiplier=self._mqtt.reconnect_min_s,
                    max=self._mqtt.reconnect_max_s,
                    jitter=self._mqtt.reconnect_min_s,
                ),
                retry=retry_if_result(lambda was_online: not was_online and not self._stopping),
                sleep=self._pause,
                reraise=True,
            )
            retrying(self._attempt)
            if not self._stopping:
                self._pause(self._mqtt.reconnect_min_s)

    def _pause(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._stopping, timeout=seconds)

    def _attempt(self) -> bool:
        if self._stopping:
            return False
        try:
            was_online = self._one_connection(log_failure=not self._outage_logged)
        except Exception:
            log.exception("MQTT connection loop failed; retrying")
            was_online = False
        self._outage_logged = True  # its first failure, or the lost connection, is logged
        return was_online

    def _one_connection(self, *, log_failure: bool) -> bool:
        # A session number is spent once a CONNECT carrying its will may have reached the
        # broker; a connect that failed at TCP level keeps it for the next attempt, so a
        # long outage does not burn (and fsync) a number every few seconds.
        if self._unused_session is None:
            self._unused_session = self._buffer.bump_session()
        session = self._unused_session
        client = self._new_client(session)
        conn = Connection(client=client, session=session)
        client.user_data_set(conn)
        where = f"{self._mqtt.host}:{self._mqtt.port}"
        try:
            client.connect(self._mqtt.host, self._mqtt.port, keepalive=self._mqtt.keepalive_s)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
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
            if conn.online:
                self.last_disconnected_ms = self._now_ms()
            guarded("on_connection_closed", self._on_connection_closed)
            if not said_goodbye:
                client.disconnect()  # ends paho's loop if the socket is still open
            client.loop_stop()
        return conn.online

    def _say_goodbye(self, conn: Connection) -> None:
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
        client = new_client(
            self._mqtt, gateway_id=self._gateway_id, will_topic=self.status_topic, session=session
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- paho callbacks (paho's network thread) --------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        conn: Connection,
        flags: Any,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self._ended(conn, reason_code)
            return
        client.subscribe([(CONTROLLER_STATUS_TOPIC, 1), (self.command_filter, 1)])
        birth = Status(
            state=GatewayState.ONLINE,
            session=conn.session,
            ts_ms=self._now_ms(),
            agent_version=self._agent_version,
            heartbeat_interval_s=self._heartbeat_interval_s,
        )
        info = client.publish(self.status_topic, encode(birth), qos=1, retain=True)
        with self._cond:
            conn.pending[info.mid] = Pending(None, None)
            conn.online = True
            self._cond.notify_all()
        self.last_connected_ms = self._now_ms()
        log.info(
            "connected to MQTT broker %s:%d (session %d)",
            self._mqtt.host,
            self._mqtt.port,
            conn.session,
        )
        guarded("on_online", self._on_online)

    def _on_disconnect(
        self,
        client: paho.Client,
        conn: Connection,
        flags: Any,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        self._ended(conn, reason_code)

    def _ended(self, conn: Connection, reason_code: ReasonCode) -> None:
        """The connection was refused or is over: wake the connection loop."""
        with self._cond:
            conn.done = True
            conn.reason = str(reason_code)
            self._cond.notify_all()

    def _on_publish(
        self,
        client: paho.Client,
        conn: Connection,
        mid: int,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        with self._cond:
            pending = conn.pending.pop(mid, None)
            if pending is None:
                conn.early_acks.add(mid)
            self._cond.notify_all()
        if not reason_code.is_failure:
            self.last_puback_ms = self._now_ms()
        if pending is None:
            return
        if reason_code.is_failure:
            log.warning("broker refused a message (mid %d): %s", mid, reason_code)
            guarded("on_refused", pending.on_refused)
        else:
            guarded("on_acked", pending.on_acked)

    def _on_message(self, client: paho.Client, conn: Connection, msg: paho.MQTTMessage) -> None:
        try:
            if msg.topic == CONTROLLER_STATUS_TOPIC:
                self._controller_status(conn, bytes(msg.payload))
            elif self._on_command is not None:
                self._on_command(decode(CommandRequest, bytes(msg.payload)))
        except PayloadError as exc:
            log.warning("ignored a malformed message on %s: %s", msg.topic, exc)
        except Exception:
            log.exception("handling a message on %s failed; going on", msg.topic)

    def _controller_status(self, conn: Connection, payload: bytes) -> None:
        online = bool(payload) and (decode(ControllerStatus, payload).state is GatewayState.ONLINE)
        with self._cond:
            conn.controller_online = online
            self._cond.notify_all()
        if online != self._controller_logged:
            self._controller_logged = online
            if online:
                log.info("the controller is online: publishing")
            else:
                log.warning("the controller is offline: buffering until it returns")
        if online:
            guarded("on_online", self._on_online)
