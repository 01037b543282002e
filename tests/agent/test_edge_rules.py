"""Edge alert rules pushed by the controller (``set-rules``): a real agent on a simulated
gauge, a real controller and mosquitto; and the agent's rule store on its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.edge_rules import RULES_FILE, EdgeRules
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.agent.command_rig import GATEWAY, Site, running_site
from tests.agent.conftest import GATEWAY_ID, WAIT_S, Recorder
from tests.controller.support import get_json
from wire import EdgeAlert, TopicKind
from wire.risk import Category, Colour, MetricRule, RiskPointRules, RuleSet, Thresholds

DEVICE = f"{GATEWAY_ID}.gauge-1"  # about 230-270 cm


def point_body(point_id: str, red_cm: float) -> dict[str, Any]:
    return {
        "id": point_id, "name": "River at the pump room", "place": "cq/yuzhong/jiefangbei",
        "category": "other", "devices": [DEVICE],
        "metrics": [{"device": DEVICE, "metric": "level_cm",
                     "thresholds": {"yellow": red_cm / 2, "red": red_cm}}],
    }  # fmt: skip


@pytest.fixture
def site(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Site]:
    with running_site(tmp_path, mosquitto) as running:
        yield running


def rules_commands(site: Site) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = get_json(site.client, f"{GATEWAY}/commands")
    return [c for c in found if c["type"] == "set-rules"]


def wanted_digest(site: Site) -> str:
    rules = get_json(site.client, "/api/v1/risk-rules", {"gateway": GATEWAY_ID})
    return RuleSet.model_validate(rules).digest()


def test_a_point_registered_through_the_api_reaches_the_agent_at_once(
    site: Site, recorder: Recorder
) -> None:
    empty = RuleSet().digest()
    site.wait_heartbeat("the empty rules' digest", lambda h: h["risk_rules_hash"] == empty)
    assert rules_commands(site) == []  # nothing to push: both sides have no rules

    created = site.client.post("/api/v1/risk-points", json=point_body("pump-room", 200))
    assert created.status_code == 201, created.text
    digest = wanted_digest(site)
    site.wait_heartbeat("the new rules", lambda h: h["risk_rules_hash"] == digest)
    (command,) = rules_commands(site)
    assert (command["state"], command["actor"]) == ("succeeded", "system")
    assert command["args"]["hash"] == digest
    assert "1 points, 1 metrics" in command["detail"]
    recorder.wait_for(
        lambda: [
            a for a in recorder.decoded(TopicKind.ALERTS, EdgeAlert) if a.point == "pump-room"
        ],
        "the agent's edge alert for the new point",
    )
    alert = recorder.decoded(TopicKind.ALERTS, EdgeAlert)[0]
    assert (alert.colour, alert.device, alert.metric) == (Colour.RED, "gauge-1", "level_cm")
    kept = json.loads((site.data_dir / RULES_FILE).read_text())
    assert kept["hash"] == digest  # a restarted agent judges by them at once

    # Changed rules go out again; the engine's alert is the same episode either way.
    patched = site.client.patch(
        "/api/v1/risk-points/pump-room",
        json={"metrics": point_body("pump-room", 9000)["metrics"]},
    )
    assert patched.status_code == 200, patched.text
    changed = wanted_digest(site)
    assert changed != digest
    site.wait_heartbeat("the changed rules", lambda h: h["risk_rules_hash"] == changed)
    assert [c["args"]["hash"] for c in rules_commands(site)] == [changed, digest]
    wait_until(
        lambda: all(c["state"] == "succeeded" for c in rules_commands(site)),
        timeout_s=WAIT_S,
        message="both set-rules succeeded",
    )


def rules(red: float, point_id: str = "p1") -> RuleSet:
    metric = MetricRule(device="gw.d1", metric="m", thresholds=Thresholds(red=red))
    point = RiskPointRules(id=point_id, category=Category.OTHER, place="cq", metrics=[metric])
    return RuleSet(points=[point])


def test_pushed_rules_win_over_the_configs_and_survive_a_restart(tmp_path: Path) -> None:
    from_config, pushed = rules(10), rules(50, "p2")
    edge = EdgeRules(tmp_path, from_config)
    assert edge.digest == from_config.digest()
    assert [type(e).__name__ for e in edge.observe("gw.d1", "m", 1000, 20, "good")] == [
        "ColourChange"
    ]
    refused = edge.push(pushed, "0" * 64, now_ms=2000)
    assert refused == (False, f"rules {'0' * 12}: their hash does not match: not applied")
    assert edge.push(pushed, pushed.digest(), now_ms=2000)[0]
    assert edge.push(pushed, pushed.digest(), now_ms=3000)[1].startswith("unchanged")
    assert edge.digest == pushed.digest()
    assert edge.observe("gw.d1", "m", 4000, 20, "good") == []  # 20 is below p2's red
    edge.use_config(rules(5), now_ms=5000)  # a reloaded config: the push still wins
    assert edge.digest == pushed.digest()

    again = EdgeRules(tmp_path, from_config)  # the agent restarted
    assert again.digest == pushed.digest()
    assert again.active
    (tmp_path / RULES_FILE).write_text("{not json")
    assert EdgeRules(tmp_path, from_config).digest == from_config.digest()
    assert not EdgeRules(tmp_path / "fresh", RuleSet()).active
