"""Risk map, alerts and risk points under tokens: place scope, roles, who acted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import wire
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import (
    Publisher,
    as_,
    config_for,
    get_json,
    make_token,
    now_ms,
    river,
)

STREET_A = "cq/yuzhong/jiefangbei"
STREET_B = "cq/yuzhong/chaotianmen"


@dataclass
class Secured:
    admin: httpx.Client
    op_a: httpx.Client
    viewer_a: httpx.Client
    alert_a: int
    alert_b: int


@pytest.fixture
def secured(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> Iterator[Secured]:
    db = tmp_path / "controller.db"
    tokens = {
        "admin": make_token(db, capsys, "admin"),
        "op-a": make_token(db, capsys, "operator", STREET_A),
        "viewer-a": make_token(db, capsys, "viewer", STREET_A),
    }
    config = config_for(
        tmp_path, mosquitto, gateways={"gw-a": STREET_A, "gw-b": STREET_B}, auth="tokens"
    )
    with ExitStack() as stack:
        controller = stack.enter_context(Controller(config))
        wait_until(lambda: controller.mqtt_connected, timeout_s=5)
        clients = {
            name: stack.enter_context(as_(controller.api_url, token))
            for name, token in tokens.items()
        }
        admin = clients["admin"]
        publisher = stack.enter_context(Publisher(mosquitto))
        for gateway, place in (("gw-a", STREET_A), ("gw-b", STREET_B)):
            created = admin.post("/api/v1/risk-points", json=river(gateway, place))
            assert created.status_code == 201, created.text
            reading = wire.Reading(
                seq=1, ts_ms=now_ms(), device="gauge-1", metric="level_cm", value=450, unit="cm"
            )
            publisher.publish(
                wire.topic_for(gateway, wire.TopicKind.READINGS),
                wire.ReadingBatch(session=1, readings=[reading]),
            )
        wait_until(lambda: len(get_json(admin, "/api/v1/alerts")) == 2, timeout_s=5)
        ids = {a["point"]: a["id"] for a in get_json(admin, "/api/v1/alerts")}
        yield Secured(
            admin, clients["op-a"], clients["viewer-a"], ids["river-gw-a"], ids["river-gw-b"]
        )


def test_a_street_operator_sees_only_its_streets_points_and_alerts(secured: Secured) -> None:
    op_a = secured.op_a
    assert [a["id"] for a in get_json(op_a, "/api/v1/alerts")] == [secured.alert_a]
    assert get_json(op_a, "/api/v1/alerts", {"place": STREET_B}) == []
    risk_map = get_json(op_a, "/api/v1/risk-map")
    assert [p["id"] for p in risk_map["points"]] == ["river-gw-a"]
    assert risk_map["totals"]["red"] == 1
    assert [p["id"] for p in get_json(op_a, "/api/v1/risk-points")] == ["river-gw-a"]
    assert [
        p["id"] for p in get_json(op_a, "/api/v1/risk-rules", {"gateway": "gw-b"})["points"]
    ] == []
    assert op_a.get(f"/api/v1/alerts/{secured.alert_b}").status_code == 404
    moved = op_a.post(f"/api/v1/alerts/{secured.alert_b}/transitions", json={"to": "acknowledged"})
    assert moved.status_code == 404
    assert op_a.patch("/api/v1/risk-points/river-gw-b", json={"name": "x"}).status_code == 404
    assert op_a.post("/api/v1/risk-points", json=river("gw-c", STREET_B)).status_code == 403
    # Its own street, but watching another street's gateway: refused.
    sneaky = {**river("gw-b", STREET_A), "id": "sneaky"}
    refused = op_a.post("/api/v1/risk-points", json=sneaky)
    assert refused.status_code == 403
    assert "gw-b" in refused.json()["detail"]
    admin_view = get_json(secured.admin, "/api/v1/alerts")
    assert {a["id"] for a in admin_view} == {secured.alert_a, secured.alert_b}


def test_acting_on_an_alert_needs_an_operator_and_records_the_token(secured: Secured) -> None:
    path = f"/api/v1/alerts/{secured.alert_a}"
    assert secured.viewer_a.get(path).status_code == 200
    denied = secured.viewer_a.post(f"{path}/transitions", json={"to": "acknowledged"})
    assert denied.status_code == 403
    moved = secured.op_a.post(f"{path}/transitions", json={"to": "acknowledged", "note": "here"})
    assert moved.status_code == 200, moved.text
    assert [(t["action"], t["by"]) for t in moved.json()["trail"]] == [
        ("raised", "system"),
        ("acknowledged", "operator-jiefangbei"),
    ]
    audit = get_json(secured.admin, "/api/v1/audit", {"action": "alert.transition"})
    assert [(e["actor"], e["target"], e["place"], e["outcome"]) for e in audit] == [
        ("operator-jiefangbei", f"alert:{secured.alert_a}", STREET_A, "ok")
    ]
    anonymous = secured.op_a.post(
        f"{path}/transitions", json={"to": "handling"}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
