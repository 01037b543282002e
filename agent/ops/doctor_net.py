"""``agent doctor``: the broker, step by step, so the failure names the broken layer.

1. ``broker-reachable``: a TCP connection to ``mqtt.host:port`` (name resolution, route,
   firewall, a broker that listens);
2. ``broker-tls``: with ``mqtt.tls_ca_file``, the TLS handshake as the agent makes it
   (the broker's certificate against the CA and its name, the client certificate);
3. ``broker-login``: a real MQTT CONNECT with the config's settings, under a client id of
   its own (the agent's would throw a running agent off the broker); the CONNACK's reason
   is shown.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import LOOPBACK_HOSTS, AgentConfig, MqttConfig
from agent.ops.checks import CheckName, CheckResult, failed, passed, skipped, warned

NETWORK_TIMEOUT_S = 5.0

LOGIN_FIXES = {
    "Not authorized": "the broker refused these credentials: set mqtt.username and"
    " mqtt.password to the ones issued for this gateway (an operator issues them on the"
    " controller)",
    "Bad user name or password": "the broker refused these credentials: set mqtt.username"
    " and mqtt.password to the ones issued for this gateway",
    "Identifier rejected": "the broker refused the client id: check mqtt.client_id",
    "Server unavailable": "the broker is up but not serving: ask the operators",
}


def check_broker(config: AgentConfig) -> Iterator[CheckResult]:
    mqtt = config.mqtt
    subject = f"{mqtt.host}:{mqtt.port}"
    reachable = _check_tcp(mqtt, subject)
    yield reachable
    if reachable.outcome != "PASS":
        yield skipped(CheckName.BROKER_TLS, "the broker is not reachable", subject)
        yield skipped(CheckName.BROKER_LOGIN, "the broker is not reachable", subject)
        return
    tls = _check_tls(mqtt, subject)
    yield tls
    if tls.outcome == "FAIL":
        yield skipped(CheckName.BROKER_LOGIN, "no TLS session (see above)", subject)
        return
    yield _check_login(config, subject)


def _check_tcp(mqtt: MqttConfig, subject: str) -> CheckResult:
    try:
        with socket.create_connection((mqtt.host, mqtt.port), timeout=NETWORK_TIMEOUT_S):
            return passed(CheckName.BROKER_REACHABLE, "TCP connection accepted", subject)
    except socket.gaierror as exc:
        return failed(
            CheckName.BROKER_REACHABLE,
            f"cannot resolve {mqtt.host!r}: {exc.strerror}",
            "check mqtt.host, and DNS on this gateway (`resolvectl status`; mobile APN)",
            subject,
        )
    except TimeoutError:
        return failed(
            CheckName.BROKER_REACHABLE,
            f"no answer within {NETWORK_TIMEOUT_S:g} s",
            "no route or a firewall drops it: check the uplink (`ping`, the modem's signal),"
            " and that the port is open on the way",
            subject,
        )
    except ConnectionRefusedError:
        return failed(
            CheckName.BROKER_REACHABLE,
            "connection refused: nothing listens there",
            "check mqtt.host and mqtt.port (1883 plain, 8883 TLS), and that the broker runs",
            subject,
        )
    except OSError as exc:
        return failed(
            CheckName.BROKER_REACHABLE,
            f"cannot connect: {exc.strerror or exc}",
            "check the uplink (`ip route`, the modem), mqtt.host and mqtt.port",
            subject,
        )


def tls_context(mqtt: MqttConfig) -> ssl.SSLContext:
    """The TLS settings the agent's session uses (paho's tls_set with the config's files)."""
    assert mqtt.tls_ca_file is not None
    context = ssl.create_default_context(cafile=str(mqtt.tls_ca_file))
    if mqtt.tls_cert_file is not None and mqtt.tls_key_file is not None:
        context.load_cert_chain(str(mqtt.tls_cert_file), str(mqtt.tls_key_file))
    context.check_hostname = not mqtt.tls_insecure
    return context


def _check_tls(mqtt: MqttConfig, subject: str) -> CheckResult:
    if mqtt.tls_ca_file is None:
        if mqtt.host in LOOPBACK_HOSTS:
            return passed(CheckName.BROKER_TLS, "plain MQTT to a broker on this machine", subject)
        return warned(
            CheckName.BROKER_TLS,
            "plain MQTT: readings and the password cross the network unencrypted",
            "set mqtt.tls_ca_file (and port 8883) where the broker offers TLS",
            subject,
        )
    try:
        context = tls_context(mqtt)
        with (
            socket.create_connection((mqtt.host, mqtt.port), timeout=NETWORK_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=mqtt.host) as tls,
        ):
            version = tls.version()
            peer = tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as exc:
        return failed(
            CheckName.BROKER_TLS,
            f"the broker's certificate is not accepted: {exc.verify_message}",
            "mqtt.tls_ca_file must be the CA that signed the broker's certificate, and"
            " mqtt.host the name in it; a clock far off also fails this (see `clock`)",
            subject,
        )
    except (ssl.SSLError, OSError) as exc:
        return failed(
            CheckName.BROKER_TLS,
            f"TLS handshake failed: {exc}",
            "is the port a TLS listener (8883)? does the broker want a client certificate"
            " (mqtt.tls_cert_file, mqtt.tls_key_file)?",
            subject,
        )
    return passed(CheckName.BROKER_TLS, f"{version}, broker {_subject_name(peer)}", subject)


def _subject_name(peer: dict[str, Any]) -> str:
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return f"CN={value}"
    return "certificate accepted"


def _check_login(config: AgentConfig, subject: str) -> CheckResult:
    mqtt = config.mqtt
    done = threading.Event()
    outcome: dict[str, str] = {}

    def on_connect(client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, p: Any) -> None:
        outcome["reason"] = str(rc)
        outcome["failure"] = "yes" if rc.is_failure else ""
        done.set()

    def on_disconnect(client: paho.Client, userdata: Any, flags: Any, rc: Any, p: Any) -> None:
        outcome.setdefault("reason", f"closed before CONNACK ({rc})")
        outcome.setdefault("failure", "yes")
        done.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"edgewatch-doctor-{config.gateway.id}-{os.getpid()}",
        clean_session=True,
        protocol=paho.MQTTv311,
        reconnect_on_failure=False,
    )
    client.connect_timeout = NETWORK_TIMEOUT_S
    if mqtt.username is not None:
        client.username_pw_set(mqtt.username, mqtt.password)
    if mqtt.tls_ca_file is not None:
        client.tls_set_context(tls_context(mqtt))
        client.tls_insecure_set(mqtt.tls_insecure)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    who = f"as {mqtt.username!r}" if mqtt.username else "anonymously"
    try:
        client.connect(mqtt.host, mqtt.port, keepalive=10)
    except (OSError, ValueError) as exc:
        return failed(
            CheckName.BROKER_LOGIN, f"connect failed: {exc}", "see broker-tls above", subject
        )
    client.loop_start()
    try:
        answered = done.wait(NETWORK_TIMEOUT_S)
    finally:
        client.disconnect()
        client.loop_stop()
    if not answered:
        return failed(
            CheckName.BROKER_LOGIN,
            f"no CONNACK within {NETWORK_TIMEOUT_S:g} s",
            "the broker accepted TCP but does not speak MQTT there: check mqtt.port",
            subject,
        )
    reason = outcome["reason"]
    if outcome["failure"]:
        fix = LOGIN_FIXES.get(
            reason,
            "the broker closed the connection: with TLS it may want a client certificate"
            " (mqtt.tls_cert_file, mqtt.tls_key_file); see the broker's log",
        )
        return failed(CheckName.BROKER_LOGIN, f"refused {who}: CONNACK {reason}", fix, subject)
    return passed(CheckName.BROKER_LOGIN, f"connected {who}: CONNACK {reason}", subject)
