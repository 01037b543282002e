"""Size before parsing: request bodies are capped (413), and an agent config is bounded by
``wire.MAX_CONFIG_BYTES`` whichever way it is sent, ``PUT /config`` or a ``reload-config``
command; the broker drops what exceeds the contract's payload limit."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import wire
from controller.service import Controller
from edgewatch.broker import Mosquitto
from wire.commands import canonical_json

DOCS = Path(__file__).parents[2] / "docs"
SHA = "0" * 64


def config_of(size: int) -> dict[str, Any]:
    """An agent config document whose canonical JSON is exactly ``size`` bytes."""
    document: dict[str, Any] = {"gateway": {"id": "gw-a"}, "note": ""}
    document["note"] = "x" * (size - len(canonical_json(document).encode()))
    assert len(canonical_json(document).encode()) == size
    return document


def test_a_body_over_the_limit_is_answered_413_before_it_is_read(
    controller: Controller, client: httpx.Client
) -> None:
    limit = controller.config.http.max_body_bytes
    response = client.put(
        "/api/v1/gateways/gw-a/config",
        content=b"{" + b" " * limit + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body larger than {limit} bytes"}


def test_a_chunked_body_over_the_limit_is_cut_off_with_413(
    controller: Controller, client: httpx.Client
) -> None:
    """No Content-Length to trust: the bytes are counted as they arrive."""
    limit = controller.config.http.max_body_bytes
    chunk = b" " * 65536

    def body() -> Iterator[bytes]:
        yield b"{"
        for _ in range(limit // len(chunk) + 2):
            yield chunk
        yield b"}"

    response = client.put(
        "/api/v1/gateways/gw-a/config",
        content=body(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "request body larger than" in response.json()["detail"]
    assert client.get("/readyz").status_code == 200  # and the API goes on


def test_a_file_upload_has_its_own_larger_limit(
    controller: Controller, client: httpx.Client
) -> None:
    """Risk-point imports and place outlines are files: they read their bodies in bounded
    chunks up to their own limit (64 MiB), so the general cap does not cut them off."""
    limit = controller.config.http.max_body_bytes
    garbage = b"not,a,risk,point,file\n" * (limit // 20)
    assert len(garbage) > limit
    response = client.post("/api/v1/risk-points/import", params={"format": "csv"}, content=garbage)
    assert response.status_code == 422, response.text  # read and refused for what it says


def test_a_body_within_the_limit_is_served(client: httpx.Client) -> None:
    response = client.put("/api/v1/gateways/gw-a/config", json={"config": config_of(1000)})
    assert response.status_code == 200, response.text


def test_the_config_limit_holds_for_put_config_and_for_reload_config_commands(
    client: httpx.Client,
) -> None:
    fits, too_big = config_of(wire.MAX_CONFIG_BYTES), config_of(wire.MAX_CONFIG_BYTES + 1)
    assert client.put("/api/v1/gateways/gw-a/config", json={"config": fits}).status_code == 200
    refused = client.put("/api/v1/gateways/gw-a/config", json={"config": too_big})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["field"] == "body.config"
    assert f"larger than {wire.MAX_CONFIG_BYTES} bytes" in refused.json()["detail"][0]["msg"]

    def reload(config: dict[str, Any]) -> httpx.Response:
        command = {
            "type": "reload-config",
            "args": {"config": config, "version": 1, "hash": SHA},
        }
        return client.post("/api/v1/gateways/gw-a/commands", json=command)

    response = reload(too_big)
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["field"] == "body.reload-config.args.config"
    assert f"larger than {wire.MAX_CONFIG_BYTES} bytes" in detail["msg"]
    assert client.get("/api/v1/gateways/gw-a/commands").json() == []
    assert reload(fits).status_code == 201


def test_the_largest_reload_config_fits_the_payload_limit() -> None:
    """A config of MAX_CONFIG_BYTES, however escaped, still goes as one CommandRequest."""
    for filler in ("x", "\u00e9", "\U0001f30a", '"', "\n"):
        document: dict[str, Any] = {"note": ""}
        room = wire.MAX_CONFIG_BYTES - len(canonical_json(document).encode())
        document["note"] = filler * (room // len(json.dumps(filler)[1:-1].encode()))
        args = wire.ReloadConfigArgs(config=document, version=2**31, hash=SHA)
        request = wire.CommandRequest(
            id="c" * 64, type="reload-config", args=args.model_dump(), deadline_ms=wire.MAX_TS_MS
        )
        assert len(wire.encode(request)) <= wire.MAX_PAYLOAD_BYTES, filler


def test_the_broker_drops_a_payload_over_the_contract_limit(mosquitto: Mosquitto) -> None:
    """message_size_limit: the oversized message never reaches a subscriber (the publisher
    still gets its PUBACK), and the next one does."""
    received: list[int] = []
    arrived = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        received.append(len(message.payload))
        if len(message.payload) == 1:
            arrived.set()

    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        client.subscribe("probe/#", qos=1)
        assert subscribed.wait(5)
        for size in (wire.MAX_PAYLOAD_BYTES, wire.MAX_PAYLOAD_BYTES + 1, 1):
            client.publish("probe/x", b"x" * size, qos=1).wait_for_publish(5)
        assert arrived.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()
    assert received == [wire.MAX_PAYLOAD_BYTES, 1]
    assert f"message_size_limit {wire.MAX_PAYLOAD_BYTES}" in mosquitto.config_path.read_text()


def test_the_production_broker_example_sets_the_same_limit() -> None:
    text = (DOCS / "mqtt-contract.md").read_text()
    example = re.search(r"```conf\n(.*?)```", text, re.DOTALL)
    assert example is not None, "docs/mqtt-contract.md has no mosquitto config example"
    assert f"\nmessage_size_limit {wire.MAX_PAYLOAD_BYTES}\n" in example.group(1)
    assert "\npersistence true\n" in example.group(1)
