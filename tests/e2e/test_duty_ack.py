"""A red reading at a simulated gauge reaches the grid's duty person as a message with a
link; the link acknowledges the alert from a "phone" (no token), and the escalation to the
street does not fire. Real processes: simulator, agent, mosquitto, controller."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from edgewatch.broker import Mosquitto
from edgewatch.processes import ProcessGroup
from edgewatch.system import GatewayTiming, LocalSystem, get_json
from edgewatch.waiting import wait_until
from tests.notify.receivers import JsonReceiver

FAST = GatewayTiming(poll_interval_s=0.2, heartbeat_interval_s=1.0, keepalive_s=5)
ESCALATE_AFTER_S = 4


def duty_config(hook: JsonReceiver) -> str:
    week = (
        'days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\nstart = "00:00"\nend = "00:00"'
    )
    return f"""
[[risk_points]]
id = "jfb-river"
name = "Jialing river at Jiefangbei"
category = "water_level"
place = "cq/yuzhong/jiefangbei/grid-1"
[[risk_points.metrics]]
device = "gw-demo-1.river-gauge-1"
metric = "level_cm"
thresholds = {{red = 100}}

[notify]
link_secret = "an-end-to-end-link-secret-of-32-bytes-or-more"
allowed_hosts = ["127.0.0.1"]
[[notify.channels]]
name = "hook"
kind = "webhook"
url = "{hook.url}?:to={{to}}"
[[notify.routes]]
colours = ["red"]
layers = ["grid"]
escalate_after_s = {ESCALATE_AFTER_S}

[[notify.rosters]]
place = "cq/yuzhong/jiefangbei/grid-1"
[[notify.rosters.people]]
id = "li-wei"
name = "Li Wei"
contacts = [{{channel = "hook", to = "li-wei"}}]
[[notify.rosters.shifts]]
person = "li-wei"
{week}

[[notify.rosters]]
place = "cq/yuzhong/jiefangbei"
[[notify.rosters.people]]
id = "zhang-min"
name = "Zhang Min"
contacts = [{{channel = "hook", to = "zhang-min"}}]
[[notify.rosters.shifts]]
person = "zhang-min"
{week}
"""


def test_a_red_alert_reaches_the_grid_on_duty_and_the_link_stops_the_escalation(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with JsonReceiver() as hook, ProcessGroup(tmp_path / "logs") as procs:
        system = LocalSystem(tmp_path, mosquitto.port, procs)
        system.start_centers()
        system.start_controller(duty_config(hook))
        system.start_gateway("gw-demo-1", FAST)
        wait_until(lambda: hook.to("li-wei"), timeout_s=30, message="the grid's duty person told")
        [message] = hook.to("li-wei")
        assert message["title"].startswith("[RED] alert #1: jfb-river")
        link = next(w for w in message["message"].split() if "/m/a/" in w)
        assert link.startswith(system.base_url)

        with httpx.Client(trust_env=False, timeout=5) as phone:  # no token, no login
            page = phone.get(link)
            assert page.status_code == 200
            assert "RED alert: Jialing river at Jiefangbei" in page.text
            seen = page.text.split("name='seen' value='")[1].split("'")[0]
            done = phone.post(link, data={"action": "acknowledge", "seen": seen})
            assert "Acknowledged: thank you, Li Wei." in done.text

        alert: dict[str, Any] = get_json(f"{system.api}/alerts/1")
        assert alert["state"] == "acknowledged"
        acks = [t for t in alert["trail"] if t["action"] == "acknowledged"]
        assert [a["by"] for a in acks] == ["Li Wei (grid cq/yuzhong/jiefangbei/grid-1)"]
        [told] = get_json(f"{system.api}/alerts/1/notifications")
        assert told["link_action"] == "acknowledge"

        # The deadline passes (and the controller's ticker runs after it): nobody else.
        deadline_s = told["link_expires_ms"] / 1000
        wait_until(lambda: time.time() > deadline_s + 3, timeout_s=ESCALATE_AFTER_S + 10)
        trail = [t["action"] for t in get_json(f"{system.api}/alerts/1")["trail"]]
        assert "duty_escalated" not in trail
        assert hook.to("zhang-min") == []
        assert len(hook.to("li-wei")) == 1
