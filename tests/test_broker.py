"""The private brokers the demo and the tests start: real processes on free loopback ports."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgewatch.broker import Amqtt, Mosquitto, port_accepts


def roundtrip(host: str, port: int) -> bytes:
    """Subscribe, publish one QoS 1 message, return what came back."""
    received = threading.Event()
    payloads: list[bytes] = []

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        payloads.append(bytes(message.payload))
        received.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.connect(host, port)
    client.loop_start()
    try:
        client.subscribe("probe/#", qos=1)
        client.publish("probe/x", b"hello", qos=1).wait_for_publish(5)
        assert received.wait(5), "no message came back"
    finally:
        client.disconnect()
        client.loop_stop()
    return payloads[0]


@pytest.mark.parametrize("broker_class", [Mosquitto, Amqtt])
def test_broker_serves_a_roundtrip_and_frees_its_port(
    tmp_path: Path, broker_class: type[Mosquitto]
) -> None:
    with broker_class(tmp_path) as broker:
        assert broker.running
        assert roundtrip(broker.host, broker.port) == b"hello"
    assert not port_accepts(broker.host, broker.port)


def test_broker_restarts_on_the_same_port(mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    mosquitto.stop()
    assert not port_accepts("127.0.0.1", port)
    mosquitto.start()
    assert mosquitto.port == port
    assert roundtrip(mosquitto.host, port) == b"hello"
