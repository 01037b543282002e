"""The alert chain end to end: real mosquitto, SQLite, HTTP centers; an injected clock.

A risk point in Jiefangbei's grid 1 watches ``gw-jfb.gauge-1``/``level_cm``; the three
reference centers (street, district, city) verify every webhook's signature.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import wire
import wire.risk
from controller.service import Controller
from edgewatch.broker import Mosquitto, free_port
from edgewatch.center import ReferenceCenter
from edgewatch.waiting import wait_until
from tests.clock import FakeClock
from tests.controller.support import Publisher, api, config_for, get_json

SECRET = "s3cret-shared-with-centers"
PLACES = {"street": "cq/yuzhong/jiefangbei", "district": "cq/yuzhong", "city": "cq"}
RISK_POINT = {
    "id": "jfb-river",
    "name": "Jialing river at Jiefangbei",
    "category": "water_level",
    "place": "cq/yuzhong/jiefangbei/grid-1",
    "stale_after_s": 60,
    "metrics": [
        {
            "device": "gw-jfb.gauge-1",
            "metric": "level_cm",
            "thresholds": {"blue": 100, "yellow": 200, "orange": 300, "red": 400},
            "hold_s": 30,
        }
    ],
}
ROUTING = {
    colour: {"tiers": tiers, "ack_deadline_s": 10}
    for colour, tiers in {
        "blue": ["street"],
        "yellow": ["street", "district"],
        "orange": ["street", "district", "city"],
        "red": ["street", "district", "city"],
    }.items()
}


@dataclass
class Rig:
    controller: Controller
    clock: FakeClock
    centers: dict[str, ReferenceCenter]
    publisher: Publisher
    client: httpx.Client
    seq: int = 0

    def reading(self, value: float, *, lane: wire.TopicKind = wire.TopicKind.READINGS) -> int:
        """Publish one reading taken now (the injected clock) as gw-jfb would."""
        self.seq += 1
        ts_ms = self.clock.wall_ms()
        batch = wire.ReadingBatch(
            session=1,
            readings=[wire.Reading(seq=self.seq, ts_ms=ts_ms, device="gauge-1",
                                   metric="level_cm", value=value, unit="cm")],
        )  # fmt: skip
        self.publisher.publish(wire.topic_for("gw-jfb", lane), batch)
        return ts_ms

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = get_json(self.client, "/api/v1/alerts", params)
        return result

    def alert(self, alert_id: int) -> dict[str, Any]:
        result: dict[str, Any] = get_json(self.client, f"/api/v1/alerts/{alert_id}")
        return result

    def move(self, alert_id: int, to: str, note: str = "") -> httpx.Response:
        return self.client.post(
            f"/api/v1/alerts/{alert_id}/transitions", json={"to": to, "note": note}
        )

    def wait_actions(self, tier: str, wanted: list[tuple[int, str]]) -> None:
        center = self.centers[tier]
        wait_until(
            lambda: center.alert_actions() == wanted,
            timeout_s=5,
            message=lambda: f"{tier} to have {wanted}, has {center.alert_actions()}",
        )


def stored_readings(rig: Rig) -> int:
    count: int = rig.controller.store.read(
        lambda conn: conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    )
    return count


def center_entry(center: ReferenceCenter, tier: str, url: str | None = None) -> dict[str, str]:
    return {"name": center.name, "tier": tier, "place": PLACES[tier],
            "url": url or center.url, "secret": SECRET}  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    with ExitStack() as stack:
        centers = {
            tier: stack.enter_context(ReferenceCenter(f"{tier}-c", tier, secret=SECRET))
            for tier in PLACES
        }
        yield stack.enter_context(start_rig(tmp_path, mosquitto, centers))


@contextmanager
def start_rig(
    tmp_path: Path,
    mosquitto: Mosquitto,
    centers: dict[str, ReferenceCenter],
    urls: dict[str, str] | None = None,
    clock: FakeClock | None = None,
) -> Iterator[Rig]:
    if clock is None:
        clock = FakeClock.from_now(time.time())
    config = config_for(
        tmp_path,
        mosquitto,
        gateways={"gw-jfb": "cq/yuzhong/jiefangbei/grid-1"},
        centers=[center_entry(c, t, (urls or {}).get(t)) for t, c in centers.items()],
        extra={"risk_points": [RISK_POINT], "alert_routing": ROUTING},
    )
    with (
        Controller(config, clock=clock) as controller,
        Publisher(mosquitto) as publisher,
        api(controller.api_url) as client,
    ):
        wait_until(lambda: controller.mqtt_connected, timeout_s=5)
        yield Rig(controller, clock, centers, publisher, client)


def test_a_red_reading_reaches_street_district_and_city_once(rig: Rig) -> None:
    ts_ms = rig.reading(450)
    for tier in PLACES:
        rig.wait_actions(tier, [(1, "raised")])
    message = rig.centers["city"].alerts[0]
    assert message["colour"] == "red"
    assert message["point"] == "jfb-river"
    assert message["source_ts_ms"] == ts_ms
    assert message["tiers"] == ["street", "district", "city"]
    rig.reading(470)  # the same episode: nothing new
    rig.reading(90, lane=wire.TopicKind.BACKLOG)  # history: raises and lowers nothing
    wait_until(lambda: stored_readings(rig) == 3, timeout_s=5)
    (alert,) = rig.alerts()
    assert (alert["state"], alert["colour"], alert["source"]) == ("raised", "red", "controller")
    risk = get_json(rig.client, "/api/v1/risk-map", {"place": "cq/yuzhong"})
    assert [(p["id"], p["colour"]) for p in risk["points"]] == [("jfb-river", "red")]
    assert risk["places"]["cq"]["red"] == 1
    assert risk["places"]["cq/yuzhong/jiefangbei/grid-1"]["red"] == 1
    assert get_json(rig.client, "/api/v1/risk-map", {"place": "cq/jiangbei"})["points"] == []
    for center in rig.centers.values():
        assert center.rejected_signatures == 0
        assert center.alert_actions() == [(1, "raised")]
    by_name = {c["name"]: c for c in get_json(rig.client, "/api/v1/centers")}
    assert by_name["city-c"]["priority_delivered"] == 1
    metrics = rig.client.get("/metrics").text
    assert 'edgewatch_center_delivered_total{center="city-c",tier="city",lane="priority"} 1' in (
        metrics
    )
    assert 'edgewatch_center_queued{center="city-c",tier="city",lane="readings"}' in metrics
    assert 'edgewatch_alerts_open{colour="red"} 1' in metrics
    # One endpoint: the fleet's families beside the forwarding lanes.
    assert 'edgewatch_mqtt_messages_total{kind="readings"} 2' in metrics
    assert "# TYPE edgewatch_gateways gauge" in metrics


def test_the_lifecycle_with_who_when_and_why(rig: Rig) -> None:
    rig.reading(250)  # yellow: street and district, not the city
    rig.wait_actions("district", [(1, "raised")])
    response = rig.move(1, "reviewed")
    assert response.status_code == 409
    assert "raised: it can go to acknowledged next, not reviewed" in response.json()["detail"]
    assert rig.move(1, "bogus").status_code == 422
    who = rig.client.post("/api/v1/alerts/1/transitions", json={"to": "handling", "by": "x"})
    assert who.status_code == 422  # who acts is the caller's token, never the body
    assert who.json()["detail"][0]["field"] == "body.by"
    assert rig.move(99, "acknowledged").status_code == 404
    for step in ("acknowledged", "handling", "resolved", "reviewed"):
        response = rig.move(1, step, note=f"{step} note")
        assert response.status_code == 200, response.text
    assert rig.move(1, "acknowledged").status_code == 409
    detail = rig.alert(1)
    assert detail["state"] == "reviewed"
    assert not detail["open"]
    # Demo mode: no tokens, every caller is "demo" (test_scoped_alerts: a token's name).
    assert [(t["action"], t["by"]) for t in detail["trail"]] == [
        ("raised", "system"), ("acknowledged", "demo"), ("handling", "demo"),
        ("resolved", "demo"), ("reviewed", "demo"),
    ]  # fmt: skip
    assert detail["trail"][1]["note"] == "acknowledged note"
    actions = [(1, a) for a in ("raised", "acknowledged", "handling", "resolved", "reviewed")]
    rig.wait_actions("street", actions)
    rig.wait_actions("district", actions)
    assert rig.centers["city"].alert_actions() == []
    assert rig.alerts(state="reviewed", colour="yellow", place="cq/yuzhong")[0]["id"] == 1
    assert rig.alerts(state="raised") == []
    assert rig.alerts(place="cq/jiangbei") == []


def test_an_unacknowledged_alert_climbs_one_tier_per_deadline(rig: Rig) -> None:
    rig.reading(150)  # blue: the street only
    rig.wait_actions("street", [(1, "raised")])
    rig.clock.advance(11)
    rig.wait_actions("district", [(1, "escalated")])
    assert rig.alert(1)["tiers"] == ["street", "district"]
    rig.clock.advance(11)
    rig.wait_actions("city", [(1, "escalated")])
    rig.wait_actions("street", [(1, "raised"), (1, "escalated"), (1, "escalated")])
    assert rig.move(1, "acknowledged").status_code == 200
    rig.clock.advance(60)
    rig.wait_actions("city", [(1, "escalated"), (1, "acknowledged")])
    trail = rig.alert(1)["trail"]
    assert [t["action"] for t in trail] == ["raised", "escalated", "escalated", "acknowledged"]
    assert "escalated to district" in trail[1]["note"]
    assert "escalated to city" in trail[2]["note"]


def test_colour_rises_within_the_episode_and_closes_after_the_hold_time(rig: Rig) -> None:
    rig.reading(150)
    rig.wait_actions("street", [(1, "raised")])
    assert rig.alert(1)["value"] == 150
    rig.reading(4207 * 0.1)  # blue -> red: the same alert, now told to the city at once
    rig.wait_actions("city", [(1, "colour_raised")])
    # The alert shows the value that made it red, as a person reads it (not 420.70000000000005).
    assert repr(rig.alert(1)["value"]) == "420.7"
    assert rig.move(1, "acknowledged").status_code == 200  # no escalation in the way
    rig.reading(50)  # below every bound: held for 30 s before it closes
    rig.clock.advance(29)
    rig.reading(50)
    assert rig.alert(1)["open"]
    rig.clock.advance(2)
    rig.wait_actions("city", [(1, "colour_raised"), (1, "acknowledged"), (1, "resolved")])
    detail = rig.alert(1)
    assert (detail["state"], detail["colour"], detail["peak_colour"]) == (
        "resolved",
        "green",
        "red",
    )
    rig.reading(410)  # a new episode
    rig.wait_actions(
        "city", [(1, "colour_raised"), (1, "acknowledged"), (1, "resolved"), (2, "raised")]
    )


def test_edge_alerts_are_deduplicated_against_the_controllers_own_evaluation(rig: Rig) -> None:
    ts_ms = rig.clock.wall_ms()
    edge = wire.EdgeAlert(
        session=1, id="a-1", point="jfb-river", colour=wire.Colour.RED, ts_ms=ts_ms,
        device="gauge-1", metric="level_cm", value=430, seq=1,
    )  # fmt: skip
    topic = wire.topic_for("gw-jfb", wire.TopicKind.ALERTS)
    rig.publisher.publish(topic, edge)
    rig.wait_actions("city", [(1, "raised")])
    rig.reading(430)  # the reading behind it
    rig.publisher.publish(topic, edge)  # redelivered
    rig.publisher.publish(topic, wire.EdgeAlert.model_validate({**edge.model_dump(), "point": "x"}))
    wait_until(lambda: rig.controller.alerts.edge_alerts_ignored >= 1, timeout_s=5)
    rig.move(1, "acknowledged")
    rig.wait_actions("city", [(1, "raised"), (1, "acknowledged")])  # nothing in between
    (alert,) = rig.alerts()
    assert alert["source"] == "edge:gw-jfb"


def test_a_quiet_device_is_a_blind_spot_and_maintenance_raises_nothing(rig: Rig) -> None:
    rig.clock.advance(61)
    rig.wait_actions("district", [(1, "raised")])
    (blind,) = rig.alerts()
    assert (blind["kind"], blind["device"], blind["colour"]) == (
        "blind_spot",
        "gw-jfb.gauge-1",
        "yellow",
    )
    assert get_json(rig.client, "/api/v1/risk-map")["points"][0]["blind_devices"] == [
        "gw-jfb.gauge-1"
    ]
    health = wire.Health(session=1, ts_ms=rig.clock.wall_ms(), uptime_s=1, heartbeat_interval_s=5,
                         buffer_rows=0, buffer_bytes=0, oldest_unsent_age_s=0, last_seq=0,
                         devices={"gauge-1": wire.DeviceHealth(state="maintenance")})  # fmt: skip
    rig.publisher.publish(wire.topic_for("gw-jfb", wire.TopicKind.HEALTH), health)
    evaluator = rig.controller.alerts.evaluator
    wait_until(lambda: evaluator.in_maintenance("gw-jfb.gauge-1"), timeout_s=5)
    rig.reading(480)  # red, but a technician is on it
    rig.publisher.publish(wire.topic_for("gw-jfb", wire.TopicKind.HEALTH), health.model_copy(
        update={"devices": {"gauge-1": wire.DeviceHealth(state="ok")}}))  # fmt: skip
    wait_until(lambda: not evaluator.in_maintenance("gw-jfb.gauge-1"), timeout_s=5)
    rig.reading(90)  # green: reports again, the blind spot closes
    rig.wait_actions("district", [(1, "raised"), (1, "resolved")])
    assert [a["kind"] for a in rig.alerts()] == ["blind_spot"]  # the 480 raised nothing


def test_a_district_center_that_is_down_gets_everything_in_order_when_back(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    port = free_port()
    district = ReferenceCenter("district-c", "district", port=port, secret=SECRET)
    with ExitStack() as stack:
        centers = {
            "street": stack.enter_context(ReferenceCenter("street-c", "street", secret=SECRET)),
            "district": district,
            "city": stack.enter_context(ReferenceCenter("city-c", "city", secret=SECRET)),
        }
        rig = stack.enter_context(
            start_rig(tmp_path, mosquitto, centers, {"district": f"http://127.0.0.1:{port}/ingest"})
        )
        rig.reading(450)
        wait_until(rig.alerts, timeout_s=5, message="the alert raised")  # ingest is async
        assert rig.move(1, "acknowledged").status_code == 200
        assert rig.move(1, "handling").status_code == 200
        expected = [(1, "raised"), (1, "acknowledged"), (1, "handling")]
        rig.wait_actions("street", expected)
        rig.wait_actions("city", expected)

        def by_name() -> dict[str, Any]:
            return {c["name"]: c for c in get_json(rig.client, "/api/v1/centers")}

        wait_until(lambda: by_name()["district-c"]["failed_attempts"] >= 1, timeout_s=5)
        assert by_name()["district-c"]["priority_queued"] == 3
        lanes = {lane["lane"]: lane for lane in by_name()["district-c"]["lanes"]}
        assert lanes["priority"]["queued"] == 3
        assert lanes["priority"]["failed_attempts"] >= 1
        metrics = rig.client.get("/metrics").text
        failed = 'edgewatch_center_failed_attempts_total{center="district-c",tier="district",'
        assert failed + 'lane="priority"}' in metrics
        with district:
            rig.wait_actions("district", expected)
            wait_until(lambda: by_name()["district-c"]["priority_queued"] == 0, timeout_s=5)
        assert district.rejected_signatures == 0


def test_the_rules_an_agent_loads_for_its_edge_alerts(rig: Rig) -> None:
    rules = wire.risk.RuleSet.model_validate(
        get_json(rig.client, "/api/v1/risk-rules", {"gateway": "gw-jfb"})
    )
    (point,) = rules.points
    assert point.id == "jfb-river"
    assert point.metrics[0].thresholds.red == 400
    assert get_json(rig.client, "/api/v1/risk-rules", {"gateway": "gw-other"})["points"] == []
