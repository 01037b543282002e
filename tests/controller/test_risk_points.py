"""Risk points registered through the API are judged like the config's, in the same table."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import wire
from controller.risk import points as risk_points
from controller.service import Controller
from controller.store.sqlite import Store
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, api, config_for, get_json, now_ms
from wire.risk import MetricRule, Thresholds

ROOT = Path(__file__).resolve().parents[2]
STREET = "cq/yuzhong/jiefangbei"
CONFIGURED = {
    "id": "jfb-river",
    "category": "water_level",
    "place": f"{STREET}/grid-1",
    "metrics": [{"device": "gw-a.gauge-1", "metric": "level_cm", "thresholds": {"red": 400}}],
}


class Gateway:
    """Publishes live readings as gateway ``gw-a`` would."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.seq = 0

    def reading(self, device: str, metric: str, value: float) -> None:
        self.seq += 1
        batch = wire.ReadingBatch(
            session=1,
            readings=[wire.Reading(seq=self.seq, ts_ms=now_ms(), device=device,
                                   metric=metric, value=value, unit="u")],
        )  # fmt: skip
        self.publisher.publish(wire.topic_for("gw-a", wire.TopicKind.READINGS), batch)


def config(tmp_path: Path, mosquitto: Mosquitto) -> Any:
    return config_for(
        tmp_path, mosquitto, gateways={"gw-a": STREET}, extra={"risk_points": [CONFIGURED]}
    )


@pytest.fixture
def running(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Controller]:
    with Controller(config(tmp_path, mosquitto)) as controller:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5)
        yield controller


@pytest.fixture
def gateway(mosquitto: Mosquitto) -> Iterator[Gateway]:
    with Publisher(mosquitto) as publisher:
        yield Gateway(publisher)


def open_alerts(client: httpx.Client, point: str) -> list[dict[str, Any]]:
    return [a for a in get_json(client, "/api/v1/alerts", {"open": True}) if a["point"] == point]


def colour(client: httpx.Client, point: str) -> str:
    points = get_json(client, "/api/v1/risk-map")["points"]
    found: str = next(p["colour"] for p in points if p["id"] == point)
    return found


def test_a_registered_point_gets_its_categorys_rules_and_raises_alerts(
    running: Controller, gateway: Gateway
) -> None:
    with api(running.api_url) as client:
        body = {"id": "gas-7", "name": "Gas main, Jiefangbei", "place": STREET,
                "category": "gas", "devices": ["gw-a.gas-1"]}  # fmt: skip
        created = client.post("/api/v1/risk-points", json=body)
        assert created.status_code == 201, created.text
        point = created.json()
        assert (point["source"], point["colour"]) == ("api", "green")
        (rule,) = point["metrics"]
        assert (rule["device"], rule["metric"], rule["thresholds"]["red"]) == (
            "gw-a.gas-1",
            "gas_lel_pct",
            50.0,
        )
        gateway.reading("gas-1", "gas_lel_pct", 60)
        wait_until(lambda: open_alerts(client, "gas-7"), timeout_s=5, message="an alert")
        (alert,) = open_alerts(client, "gas-7")
        assert (alert["colour"], alert["place"], alert["device"]) == ("red", STREET, "gw-a.gas-1")
        assert colour(client, "gas-7") == "red"

        # A second device: the defaults are re-derived, the first rule keeps its state.
        both = ["gw-a.gas-1", "gw-a.gas-2"]
        patched = client.patch("/api/v1/risk-points/gas-7", json={"devices": both})
        assert patched.status_code == 200, patched.text
        assert [m["device"] for m in patched.json()["metrics"]] == both
        assert running.alerts.evaluator.colour_of("gas-7").value == "red"
        assert running.alerts.evaluator.watches("gw-a.gas-2", "gas_lel_pct")
        assert [a["id"] for a in open_alerts(client, "gas-7")] == [alert["id"]]


def test_an_operators_maintenance_silences_a_registered_point(
    running: Controller, gateway: Gateway
) -> None:
    with api(running.api_url) as client:
        device = {"gateway": "gw-a", "name": "smoke-1", "family": "smoke"}
        assert client.post("/api/v1/devices", json=device).status_code == 201
        body = {"id": "hall", "name": "Market hall", "place": STREET, "category": "fire",
                "devices": ["gw-a.smoke-1"]}  # fmt: skip
        assert client.post("/api/v1/risk-points", json=body).status_code == 201
        on = client.patch("/api/v1/devices/gw-a.smoke-1", json={"maintenance": True})
        assert on.status_code == 200, on.text
        assert running.alerts.evaluator.in_maintenance("gw-a.smoke-1")
        gateway.reading("smoke-1", "smoke_alarm", 1)  # a technician's test: nothing raised
        gateway.reading("gas-9", "gas_lel_pct", 1)  # a barrier: the readings are in
        wait_until(lambda: running.metrics.snapshot()[1] >= 2, timeout_s=5)
        assert open_alerts(client, "hall") == []
        assert (
            client.patch("/api/v1/devices/gw-a.smoke-1", json={"maintenance": False}).status_code
            == 200
        )
        gateway.reading("smoke-1", "smoke_alarm", 1)
        wait_until(lambda: open_alerts(client, "hall"), timeout_s=5, message="an alert")


def test_rules_given_through_the_api_and_what_is_refused(
    running: Controller, gateway: Gateway
) -> None:
    with api(running.api_url) as client:
        river = {"id": "river-2", "name": "River at the steps", "place": STREET,
                 "category": "water_level"}  # fmt: skip
        assert client.post("/api/v1/risk-points", json=river).status_code == 201
        assert client.get("/api/v1/risk-points", params={"category": "water_level"}).json()
        # A water level has no default: its thresholds are the section's own levels.
        refused = client.patch("/api/v1/risk-points/river-2", json={"devices": ["gw-a.lv-1"]})
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["field"] == "body.metrics"
        assert "warning_level" in refused.json()["detail"][0]["msg"]
        metrics = [{"device": "gw-a.lv-1", "metric": "level_cm", "preset": "water_level",
                    "warning_level": 100, "guarantee_level": 200}]  # fmt: skip
        patched = client.patch("/api/v1/risk-points/river-2", json={"metrics": metrics})
        assert patched.status_code == 200, patched.text
        assert patched.json()["devices"] == ["gw-a.lv-1"]
        assert patched.json()["metrics"][0]["thresholds"]["red"] == 200
        gateway.reading("lv-1", "level_cm", 250)
        wait_until(lambda: open_alerts(client, "river-2"), timeout_s=5, message="an alert")

        bad_preset = {**river, "id": "river-3", "metrics": [{**metrics[0], "preset": "nope"}]}
        response = client.post("/api/v1/risk-points", json=bad_preset)
        assert response.status_code == 422
        assert "unknown preset 'nope'" in response.json()["detail"][0]["msg"]
        unknown = client.post("/api/v1/risk-points", json={**river, "category": "geological"})
        assert unknown.status_code == 422
        assert unknown.json()["detail"][0]["field"] == "body.category"
        not_a_number = client.post(
            "/api/v1/risk-points",
            content=json.dumps({**bad_preset, "metrics": [{**metrics[0], "preset": None,
                                "thresholds": {"red": float("nan")}}]}),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert not_a_number.status_code == 422
        assert not_a_number.json()["detail"][0]["field"] == "body.metrics.0.thresholds.red"
        configured = client.patch("/api/v1/risk-points/jfb-river", json={"name": "x"})
        assert configured.status_code == 409
        assert "[[risk_points]]" in configured.json()["detail"]


def test_registered_points_survive_a_restart_beside_the_config(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    body = {"id": "fire-1", "name": "Market hall", "place": STREET, "category": "fire",
            "devices": ["gw-a.smoke-1"]}  # fmt: skip
    with Controller(config(tmp_path, mosquitto)) as controller, api(controller.api_url) as client:
        assert client.post("/api/v1/risk-points", json=body).status_code == 201
    with Controller(config(tmp_path, mosquitto)) as controller, api(controller.api_url) as client:
        assert sorted(controller.alerts.points) == ["fire-1", "jfb-river"]
        listed = {p["id"]: p["source"] for p in get_json(client, "/api/v1/risk-points")}
        assert listed == {"fire-1": "api", "jfb-river": "config"}
    # Dropped from the config: gone; the registered point stays.
    changed = config(tmp_path, mosquitto).model_copy(update={"risk_points": []})
    with Controller(changed) as controller:
        assert sorted(controller.alerts.points) == ["fire-1"]


def test_the_documented_registration_example(running: Controller) -> None:
    text = (ROOT / "docs" / "risk-and-alerts.md").read_text()
    section = text.split("### Risk points registered through the API", 1)[1]
    match = re.search(r"```json\n(.*?)```", section, re.S)
    assert match, "docs/risk-and-alerts.md has no registration example"
    with api(running.api_url) as client:
        response = client.post("/api/v1/risk-points", json=json.loads(match.group(1)))
        assert response.status_code == 201, response.text
        assert [m["metric"] for m in response.json()["metrics"]] == ["displacement_mm"]


def test_a_stored_point_whose_rules_do_not_load_is_skipped_not_fatal(tmp_path: Path) -> None:
    good = risk_points.dump_rules(
        [MetricRule(device="gw-a.g", metric="m", thresholds=Thresholds(red=1))]
    )
    with Store(tmp_path / "c.db") as store:
        store.call(
            lambda db: db.conn.executemany(
                "INSERT INTO risk_points (id, name, place, category, rules_json, created_ms,"
                " updated_ms) VALUES (?, ?, 'cq', 'other', ?, 1, 1)",
                [("good", "Good", good), ("bad", "Bad", '[{"device": 1}]')],
            )
        )
        stored = store.read(risk_points.load_points)
    assert list(stored.rules) == ["good"]
    assert stored.names == {"good": "Good", "bad": "Bad"}
