"""The controller sends a gateway its risk rules when its heartbeat shows stale ones: a
gateway coming online after its points changed gets them once, an older agent nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

import wire
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, api, config_for, get_json
from wire.risk import RuleSet

POINT = {
    "id": "slope-7", "category": "slope", "place": "cq/yuzhong/jiefangbei",
    "metrics": [{"device": "gw-a.incl-1", "metric": "displacement_mm"},
                {"device": "gw-b.incl-2", "metric": "displacement_mm"}],
}  # fmt: skip


def heartbeat(**extra: Any) -> wire.Health:
    return wire.Health.model_validate(
        {"session": 1, "ts_ms": 1, "uptime_s": 1, "heartbeat_interval_s": 5, "buffer_rows": 0,
         "buffer_bytes": 0, "oldest_unsent_age_s": 0, "last_seq": 0, **extra}
    )  # fmt: skip


def rules_commands(client: httpx.Client, gateway: str) -> list[dict[str, Any]]:
    found = get_json(client, f"/api/v1/gateways/{gateway}/commands")
    return [c for c in found if c["type"] == "set-rules"]


def test_stale_rules_in_a_heartbeat_get_the_rules_sent_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = config_for(
        tmp_path, mosquitto, gateways={"gw-a": "cq/yuzhong/jiefangbei"},
        extra={"risk_points": [POINT]},
    )  # fmt: skip
    with (
        Controller(config) as controller,
        Publisher(mosquitto) as publisher,
        api(controller.api_url) as client,
    ):
        wait_until(lambda: controller.mqtt_connected, timeout_s=5)
        wanted = RuleSet.model_validate(get_json(client, "/api/v1/risk-rules", {"gateway": "gw-a"}))
        assert [m.device for p in wanted.points for m in p.metrics] == ["gw-a.incl-1"]
        topic = wire.topic_for("gw-a", wire.TopicKind.HEALTH)
        publisher.publish(topic, heartbeat(risk_rules_hash=RuleSet().digest()))  # none yet
        (command,) = wait_until(
            lambda: rules_commands(client, "gw-a"), timeout_s=5, message="a set-rules command"
        )
        assert command["args"] == {"rules": wanted.model_dump(mode="json"),
                                   "hash": wanted.digest()}  # fmt: skip
        assert command["actor"] == "system"
        publisher.publish(topic, heartbeat(risk_rules_hash="0" * 64))  # still stale
        publisher.publish(topic, heartbeat(risk_rules_hash=wanted.digest()))  # in sync
        # An agent that does not report its rules is not sent any.
        publisher.publish(wire.topic_for("gw-b", wire.TopicKind.HEALTH), heartbeat())

        def gw_b_heartbeat_seen() -> bool:
            found = client.get("/api/v1/gateways/gw-b")  # 404 until its heartbeat is in
            return found.status_code == 200 and found.json()["health"] is not None

        wait_until(gw_b_heartbeat_seen, timeout_s=5, message="gw-b's heartbeat")
        ticks = controller.health_ticks
        wait_until(lambda: controller.health_ticks > ticks + 2, timeout_s=5)
        assert len(rules_commands(client, "gw-a")) == 1
        assert rules_commands(client, "gw-b") == []
        assert controller.edge_rules.pushed == 1
