"""The load generator speaks enough MQTT, in the contract's words: births, readings and
heartbeats reach a paho subscriber and decode as ``wire`` messages."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

import wire
from bench.fleet_sim import FleetSim, gateway_ids, publish_packet, readings_payload
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until


def test_publish_packet_encodes_a_long_remaining_length() -> None:
    packet = publish_packet("t", b"x" * 200, 7)
    assert packet[0] == 0x32  # PUBLISH, QoS 1
    assert packet[1:3] == bytes([0xCD, 0x01])  # 205 = 3 (topic) + 2 (id) + 200


def test_a_readings_batch_is_a_valid_contract_message() -> None:
    batch = wire.decode(wire.ReadingBatch, readings_payload(3, 41, 5, 1_700_000_000_000))
    assert batch.session == 3
    assert [r.seq for r in batch.readings] == [41, 42, 43, 44, 45]
    assert {r.device for r in batch.readings} == {"gauge-1"}


def test_many_gateways_publish_through_mosquitto(mosquitto: Mosquitto) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    not_contract: list[str] = []
    lock = threading.Lock()

    models: dict[str, type[BaseModel]] = {
        "status": wire.Status,
        "readings": wire.ReadingBatch,
        "health": wire.Health,
    }

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        kind = wire.parse_topic(message.topic).kind
        try:
            wire.decode(models[kind], bytes(message.payload))  # each is a contract message
        except wire.PayloadError as exc:
            not_contract.append(f"{message.topic}: {exc}")
        with lock:
            received.append((message.topic, json.loads(message.payload)))

    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2)
    subscriber.on_message = on_message
    subscriber.connect(mosquitto.host, mosquitto.port)
    subscriber.subscribe("edgewatch/v1/#", qos=1)
    subscriber.loop_start()
    try:
        ids = gateway_ids(20)
        with FleetSim(mosquitto.host, mosquitto.port, ids) as fleet:
            for gateway_id in ids:
                fleet.readings(gateway_id, 3)
                fleet.heartbeat(gateway_id)

            def all_acked() -> bool:
                fleet.pump(0.01)
                return fleet.pending() == 0

            wait_until(all_acked, timeout_s=5, message="every publish acknowledged")
            fleet.kill(ids[0], mode="close")
            wait_until(
                lambda: any(
                    t == f"edgewatch/v1/{ids[0]}/status" and p["state"] == "offline"
                    for t, p in list(received)
                ),
                timeout_s=5,
                message="the will of the killed gateway",
            )
        assert not not_contract
        kinds = {t.rsplit("/", 1)[1] for t, _ in received}
        assert {"status", "readings", "health"} <= kinds
        batches = [p for t, p in received if t.endswith("/readings")]
        assert len(batches) == 20
        assert [r["seq"] for r in batches[0]["readings"]] == [1, 2, 3]
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
