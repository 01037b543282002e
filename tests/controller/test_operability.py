"""Operability: /metrics (Prometheus text), /readyz, JSON-lines logs."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

import wire
from controller.config import LogFormat
from controller.logs import JsonFormatter, setup_logging
from controller.metrics import Metrics
from controller.service import Controller
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, batch, birth, get_json

READINGS = wire.topic_for("gw-a", wire.TopicKind.READINGS)


def test_metrics_in_prometheus_text_format(
    controller: Controller, publisher: Publisher, client: httpx.Client
) -> None:
    publisher.publish(wire.topic_for("gw-a", wire.TopicKind.STATUS), birth(1), retain=True)
    publisher.publish(READINGS, batch(range(1, 11)))
    publisher.publish(READINGS, b"{broken")
    wait_until(lambda: get_json(client, "/api/v1/summary")["readings_stored"] == 10, timeout_s=5)
    client.post("/api/v1/gateways/gw-a/commands", json={"type": "ping"})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE edgewatch_readings_stored_total counter" in text
    assert "edgewatch_readings_stored_total 10" in text
    assert 'edgewatch_rejected_messages_total{reason="not_json"} 1' in text
    assert 'edgewatch_gateways{state="online"} 1' in text
    assert 'edgewatch_mqtt_messages_total{kind="readings"} 1' in text
    assert 'edgewatch_commands{type="ping",state=' in text
    assert "edgewatch_ingest_readings_per_second" in text


def test_readyz_says_what_is_not_ready(controller: Controller, client: httpx.Client) -> None:
    assert get_json(client, "/readyz") == {
        "ready": True,
        "database": True,
        "broker": True,
        "ingest": True,
        "detail": "ready",
    }
    controller.ingest.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["detail"] == "broker: not connected"


def test_rate_over_a_window() -> None:
    metrics = Metrics()
    assert metrics.readings_rate_per_s(0, now_s=100.0) == 0.0
    assert metrics.readings_rate_per_s(500, now_s=105.0) == pytest.approx(100.0)


def test_json_log_lines() -> None:
    record = logging.LogRecord(
        "controller.fleet.messages", logging.INFO, "f", 1, "gateway %s: %s", ("gw-a", "x"), None
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "gateway gw-a: x"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "controller.fleet.messages"
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        setup_logging("INFO", LogFormat.JSON)
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
