"""The fleet API over real HTTP: shapes, 404s naming the id, validated limits, OpenAPI."""

from __future__ import annotations

import re
import socket

import httpx
import pytest

import wire
from controller.service import Controller
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, batch, birth, get_json

READINGS = wire.topic_for("gw-a", wire.TopicKind.READINGS)


def test_gateways_lists_configured_gateways_before_they_speak(client: httpx.Client) -> None:
    gateways = get_json(client, "/api/v1/gateways")
    assert [(g["id"], g["place"], g["state"]) for g in gateways] == [
        ("gw-a", "cq/yuzhong/jiefangbei", "unknown")
    ]
    assert get_json(client, "/api/v1/summary") == {
        "gateways": {"unknown": 1, "online": 0, "degraded": 0, "offline": 0},
        "readings_stored": 0,
        "centers": {},
        "rejected": {},
    }


def test_unknown_gateway_is_404_naming_the_id(client: httpx.Client) -> None:
    response = client.get("/api/v1/gateways/gw-nowhere")
    assert response.status_code == 404
    assert "gw-nowhere" in response.json()["detail"]


@pytest.mark.parametrize("device", ["gw-a.nothing", "no-dot", "gw-a."])
def test_unknown_device_is_404_naming_the_id(client: httpx.Client, device: str) -> None:
    response = client.get(f"/api/v1/devices/{device}/readings")
    assert response.status_code == 404
    assert device in response.json()["detail"]


@pytest.mark.parametrize("limit", ["0", "10001", "-5", "many"])
def test_readings_limit_out_of_range_is_422(client: httpx.Client, limit: str) -> None:
    response = client.get("/api/v1/devices/gw-a.gauge-1/readings", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


def test_devices_and_readings_with_limit_and_metric(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    publisher.publish(wire.topic_for("gw-a", wire.TopicKind.STATUS), birth(1), retain=True)
    publisher.publish(READINGS, batch(range(1, 21)))
    publisher.publish(READINGS, batch(range(21, 24), device="rain.gauge:2"))
    wait_until(lambda: get_json(client, "/api/v1/summary")["readings_stored"] == 23, timeout_s=5)

    devices = get_json(client, "/api/v1/devices", params={"gateway": "gw-a"})
    assert [d["id"] for d in devices] == ["gw-a.gauge-1", "gw-a.rain.gauge:2"]
    readings = get_json(client, "/api/v1/devices/gw-a.gauge-1/readings", params={"limit": 5})
    assert readings["gateway"] == "gw-a"
    assert readings["name"] == "gauge-1"
    assert [r["seq"] for r in readings["readings"]] == [20, 19, 18, 17, 16]
    dotted = get_json(client, "/api/v1/devices/gw-a.rain.gauge:2/readings")
    assert len(dotted["readings"]) == 3
    none = get_json(client, "/api/v1/devices/gw-a.gauge-1/readings", params={"metric": "rain_mm"})
    assert none["readings"] == []

    detail = get_json(client, "/api/v1/gateways/gw-a")
    assert detail["state"] == "online"
    assert detail["devices"] == ["gw-a.gauge-1", "gw-a.rain.gauge:2"]
    summary = get_json(client, "/api/v1/summary")
    assert summary["gateways"]["online"] == 1
    assert summary["readings_stored"] == 23


def test_healthz_and_openapi(client: httpx.Client) -> None:
    assert get_json(client, "/healthz") == {
        "status": "ok",
        "store_writer": True,
        "mqtt_connected": True,
    }
    assert client.get("/api/v1/healthz").status_code == 404  # probes live at the root only
    paths = get_json(client, "/openapi.json")["paths"]
    assert {"/api/v1/gateways", "/api/v1/centers", "/api/v1/summary"} <= set(paths)


def test_the_docs_page_and_its_assets_come_from_the_controller(client: httpx.Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text
    assert all(url.startswith("/docs/assets/") for url in sources), sources
    for url in sources:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
    assert '"validatorUrl": null' in page.text  # no badge fetched from a public validator


def test_the_api_socket_sends_answers_without_nagle_delay(controller: Controller) -> None:
    """Regression: the listening socket was made with proto 0, so asyncio never set
    TCP_NODELAY on its connections and every answer on a kept-alive connection waited
    ~40 ms for the client's delayed ACK (the API served ~22 requests a second)."""
    listener = controller.api.listener
    assert listener is not None
    assert listener.proto == socket.IPPROTO_TCP
    assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
