"""One paho client per MQTT connection (``agent.uplink.session``): building it, and what it holds.

``new_client`` sets the client id, credentials, TLS (``[mqtt] tls_ca_file``, an optional
client certificate and key, ``tls_insecure``) and the will carrying the connection's
session number; ``Connection`` is that client from connect to disconnect with the
messages in flight on it. ``guarded`` runs a callback on paho's thread without letting it
raise there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import MqttConfig
from wire import GatewayState, Status, encode

log = logging.getLogger("agent.uplink.session")

CONNECT_TIMEOUT_S = 5.0
Callback = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Pending:
    on_acked: Callback | None
    on_refused: Callback | None


@dataclass
class Connection:
    """One paho client from connect to disconnect, and what is in flight on it."""

    client: paho.Client
    session: int
    online: bool = False  # CONNACK accepted
    done: bool = False  # refused, lost or closed
    reason: str = ""
    controller_online: bool = False  # the retained controller status says online
    pending: dict[int, Pending] = field(default_factory=dict)  # mid -> awaiting PUBACK
    early_acks: set[int] = field(default_factory=set)  # PUBACKs that beat their registration


def guarded(name: str, callback: Callable[[], object] | None) -> None:
    """Run ``callback``; log (never raise) what it raises."""
    if callback is None:
        return
    try:
        callback()
    except Exception:
        log.exception("%s callback failed; going on", name)


class WantedDisconnectNoise(logging.Filter):
    """Drops paho's ``Client is not connected ... State: MQTT_CS_DISCONNECTED`` error.

    The race behind "once in four stops": after the network thread writes the DISCONNECT
    that ``disconnect()`` queued, paho closes the socket and returns success, and its loop
    goes round once more unless ``loop_stop()`` (on the stopping thread) set its terminate
    flag first; that extra round finds no socket and logs an ERROR. paho puts its state to
    DISCONNECTED only for a disconnection the client asked for, so with that state the
    message is no error: dropped. Any other "not connected" (a lost link) still shows.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Client is not connected") and message.endswith(
            "State: MQTT_CS_DISCONNECTED"
        ):
            self.dropped += 1
            return False
        return True


PAHO_LOGGER = "agent.uplink.session.paho"
_paho_log = logging.getLogger(PAHO_LOGGER)
WANTED_DISCONNECT_NOISE = WantedDisconnectNoise()
_paho_log.addFilter(WANTED_DISCONNECT_NOISE)


def new_client(mqtt: MqttConfig, *, gateway_id: str, will_topic: str, session: int) -> paho.Client:
    """A paho client for one connection: credentials, TLS and the will of ``session``; the
    caller sets the callbacks and connects."""
    client_id = mqtt.client_id or f"edgewatch-agent-{gateway_id}"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=paho.MQTTv311,
        reconnect_on_failure=False,  # MqttSession reconnects, with a fresh will
    )
    client.connect_timeout = CONNECT_TIMEOUT_S
    client.suppress_exceptions = True  # a bug in a callback must not kill the session
    client.enable_logger(_paho_log)
    if mqtt.username is not None:
        client.username_pw_set(mqtt.username, mqtt.password)
    if mqtt.tls_ca_file is not None:
        cert, key = mqtt.tls_cert_file, mqtt.tls_key_file
        client.tls_set(
            ca_certs=str(mqtt.tls_ca_file),
            certfile=str(cert) if cert is not None else None,
            keyfile=str(key) if key is not None else None,
        )
        client.tls_insecure_set(mqtt.tls_insecure)
    will = Status(state=GatewayState.OFFLINE, session=session)
    client.will_set(will_topic, encode(will), qos=1, retain=True)
    return client
