"""The whole chain with real processes, driven by firmware-sim's rainstorm.

Three hours of storm run 300 times faster (36 s): rain, a river and a slope on a pty, the
real agent reading them, mosquitto, the controller and three reference centers verifying
every webhook's signature. The river climbs through blue, yellow and orange; the slope
starts sliding. Each alert reaches the tiers its colour asks for; nobody acknowledges in
time, so the river's alert climbs a tier, and the trail says so; then an operator
acknowledges it through the API. The controller has pushed the agent its rules.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewatch.broker import Mosquitto
from edgewatch.processes import ProcessGroup
from edgewatch.system import CENTERS, GatewayTiming, LocalSystem, get_json
from edgewatch.waiting import wait_until
from wire.webhook import SIGNATURE_HEADER, sign

GATEWAY = "gw-demo-1"  # in cq/yuzhong/jiefangbei/grid-1: every center's place contains it
SECRET = "rainstorm-test-secret"
TIME_SCALE = 300.0  # scenario seconds per real second
SEVERE = ("orange", "red")
# Rates are per hour of real time: the storm runs TIME_SCALE times faster than the hillside.
RULES = """
[alert_routing]
blue = {tiers = ["street"], ack_deadline_s = 1.5}
yellow = {tiers = ["street", "district"], ack_deadline_s = 1.5}
orange = {tiers = ["street", "district", "city"], ack_deadline_s = 1.5}
red = {tiers = ["street", "district", "city"], ack_deadline_s = 1.5}

[[risk_points]]
id = "river-jfb"
name = "River below Jiefangbei"
category = "water_level"
place = "cq/yuzhong/jiefangbei/grid-1"
[[risk_points.metrics]]
device = "gw-demo-1.river-1"
metric = "level_cm"
warning_level = 300.0    # blue 250, yellow 300, orange 350, red 400 cm
guarantee_level = 400.0

[[risk_points]]
id = "slope-jfb"
name = "Slope above the river road"
category = "slope"
place = "cq/yuzhong/jiefangbei/grid-1"
[[risk_points.metrics]]
device = "gw-demo-1.slope-1"
metric = "displacement_mm"
preset = "slope_rate"    # rate per hour, either way
window_s = 5.0
min_span_s = 2.0
thresholds = {orange = 2000.0, red = 10000.0}

[[risk_points]]
id = "rain-jfb"
name = "Rain gauge at Jiefangbei"
category = "rainfall"
place = "cq/yuzhong/jiefangbei/grid-1"
[[risk_points.metrics]]
device = "gw-demo-1.rain-1"
metric = "rain_mm_increment"
"""


@pytest.fixture
def storm(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[LocalSystem]:
    with ProcessGroup(tmp_path / "logs") as procs:
        system = LocalSystem(tmp_path, mosquitto.port, procs, center_secret=SECRET)
        system.start_centers()
        system.start_controller(RULES)
        yield system


def alert_of(system: LocalSystem, point: str) -> dict[str, Any] | None:
    found: list[dict[str, Any]] = get_json(f"{system.api}/alerts?open=true&limit=50")
    mine = [a for a in found if a["point"] == point and a["kind"] == "risk"]
    if not mine:
        return None
    detail: dict[str, Any] = get_json(f"{system.api}/alerts/{mine[0]['id']}")
    return detail


def received(system: LocalSystem, tier: str) -> dict[str, Any]:
    (spec,) = [c for c in CENTERS if c.tier == tier]
    found: dict[str, Any] = get_json(f"{system.center_url(spec)}/received")
    return found


def told(system: LocalSystem, tier: str, alert_id: int) -> list[dict[str, Any]]:
    """The messages of one alert a center has received, in order."""
    return [a for a in received(system, tier)["last_alerts"] if a["alert_id"] == alert_id]


def wait_told(
    system: LocalSystem, tier: str, alert_id: int, action: str | None = None
) -> list[dict[str, Any]]:
    """Wait until a center has received a message of the alert (with ``action``)."""

    def found() -> list[dict[str, Any]]:
        messages = told(system, tier, alert_id)
        return messages if any(action in (None, m["action"]) for m in messages) else []

    return wait_until(found, timeout_s=10, message=f"the {tier} center told of {alert_id}")


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_rainstorm_from_the_sensors_to_the_three_centers(storm: LocalSystem) -> None:
    timing = GatewayTiming(poll_interval_s=0.25, heartbeat_interval_s=1.0, keepalive_s=5)
    storm.start_scenario_gateway(GATEWAY, "rainstorm", time_scale=TIME_SCALE, timing=timing)

    # The slope starts sliding: orange at once, so street, district and city at once.
    slope = wait_until(
        lambda: alert_of(storm, "slope-jfb"), timeout_s=30, message="the slope's alert"
    )
    assert slope is not None
    assert slope["colour"] in SEVERE
    for tier in ("street", "district", "city"):
        first = wait_told(storm, tier, slope["id"])[0]
        assert first["action"] == "raised"
        assert first["colour"] in SEVERE

    # The river climbs; nobody acknowledges within 1.5 s: its alert climbs the tiers.
    def river_escalated() -> dict[str, Any] | None:
        river = alert_of(storm, "river-jfb")
        steps = {t["action"] for t in river["trail"]} if river else set()
        return river if river and "escalated" in steps and river["peak_colour"] in SEVERE else None

    river = wait_until(river_escalated, timeout_s=30, message="the river's alert escalated")
    assert river is not None
    trail = river["trail"]
    assert trail[0]["action"] == "raised"
    assert trail[0]["state"] == "raised"
    escalated = [t for t in trail if t["action"] == "escalated"]
    assert all(t["by"] == "system" for t in escalated)
    assert "not acknowledged after" in escalated[0]["note"]
    assert river["tiers"] == ["street", "district", "city"]
    assert river["state"] == "raised"
    # Graded: raised blue or yellow, it went to the street (and district), not the city;
    # the city heard of it only when it climbed (by colour or by its missed deadline).
    assert wait_told(storm, "street", river["id"])[0]["colour"] in ("blue", "yellow")
    assert wait_told(storm, "city", river["id"])[0]["action"] in ("escalated", "colour_raised")

    # An operator acknowledges it; the step joins the trail and reaches every center told.
    request = urllib.request.Request(
        f"{storm.api}/alerts/{river['id']}/transitions",
        data=json.dumps({"to": "acknowledged", "note": "crew on the river road"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        acked = json.load(response)
    assert acked["state"] == "acknowledged"
    assert (acked["trail"][-1]["action"], acked["trail"][-1]["by"]) == ("acknowledged", "demo")
    assert acked["trail"][-1]["note"] == "crew on the river road"
    for tier in ("street", "district", "city"):
        wait_told(storm, tier, river["id"], "acknowledged")

    # The rain gauge's tips add up too; the agent judges by the rules the controller pushed.
    wait_until(
        lambda: any(
            p["id"] == "rain-jfb" and p["colour"] != "green"
            for p in get_json(f"{storm.api}/risk-map")["points"]
        ),
        timeout_s=20,
        message="the rain point coloured",
    )
    commands = get_json(f"{storm.api}/gateways/{GATEWAY}/commands")
    assert [c["state"] for c in commands if c["type"] == "set-rules"] == ["succeeded"]

    # Every webhook of the chain carried a good signature; a forged one is refused.
    for tier in ("street", "district", "city"):
        assert received(storm, tier)["rejected_signatures"] == 0
    (street,) = [c for c in CENTERS if c.tier == "street"]
    body = json.dumps({"kind": "alerts", "alerts": [{"alert_id": 999}]}).encode()
    forged = sign("not-" + SECRET, body, int(time.time()))
    status = post(
        f"{storm.center_url(street)}/ingest",
        body,
        {"Content-Type": "application/json", SIGNATURE_HEADER: forged},
    )
    assert status == 401
    assert received(storm, "street")["rejected_signatures"] == 1
