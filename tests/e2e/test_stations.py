"""A simulated SL651 river station dials in to a real agent's listener; when the river rises
past its alarm bound it sends a 33H, and the alarm reaches all three tier centers.

Real processes: the simulator (the station, over TCP), the agent, mosquitto, the controller
and three reference centers. The river section's rules (pushed by the controller) would not
raise anything at 15.8 m (orange from 20 m): the alert is the station's own 33H, raised on
the gateway's alarm lane at the station's alarm colour (orange: every tier at once).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewatch.broker import Mosquitto
from edgewatch.processes import ProcessGroup
from edgewatch.system import CENTERS, GatewayTiming, LocalSystem, get_json
from edgewatch.waiting import wait_until
from firmware_sim.control import send

GATEWAY = "gw-demo-1"  # in cq/yuzhong/jiefangbei/grid-1: every center's place contains it
POINT = "river-station-jfb"
RULES = f"""
[[risk_points]]
id = "{POINT}"
name = "River at the Jiefangbei station"
category = "other"
place = "cq/yuzhong/jiefangbei/grid-1"
[[risk_points.metrics]]
device = "{GATEWAY}.river-st-1"
metric = "level_m"
thresholds = {{orange = 20.0, red = 30.0}}
"""
SCENARIO = """
name = "one-river-station"

[[stations]]
name = "river-st-1"
model = "sl651_river"
station = "0012345678"
password = "1234"
transport = "tcp"
options = { period_s = 1.0, alarm_level_m = 15.0, keepalive_s = 5 }
"""


@pytest.fixture
def system(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[LocalSystem]:
    with ProcessGroup(tmp_path / "logs") as procs:
        local = LocalSystem(tmp_path, mosquitto.port, procs)
        local.start_centers()
        local.start_controller(RULES)
        yield local


def rules_in_force(system: LocalSystem) -> bool:
    commands = get_json(f"{system.api}/gateways/{GATEWAY}/commands")
    return any(c["type"] == "set-rules" and c["state"] == "succeeded" for c in commands)


def station_readings(system: LocalSystem) -> list[dict[str, Any]]:
    try:
        found = get_json(f"{system.api}/devices/{GATEWAY}.river-st-1/readings")
    except OSError:  # 404 until the first reading is stored
        return []
    readings: list[dict[str, Any]] = found["readings"]
    return readings


def alert_of(system: LocalSystem) -> dict[str, Any] | None:
    found: list[dict[str, Any]] = get_json(f"{system.api}/alerts?open=true&limit=50")
    mine = [a for a in found if a["point"] == POINT]
    if not mine:
        return None
    detail: dict[str, Any] = get_json(f"{system.api}/alerts/{mine[0]['id']}")
    return detail


def told(system: LocalSystem, tier: str, alert_id: int) -> list[dict[str, Any]]:
    (spec,) = [c for c in CENTERS if c.tier == tier]
    received = get_json(f"{system.center_url(spec)}/received")
    return [a for a in received["last_alerts"] if a["alert_id"] == alert_id]


def wait_told(system: LocalSystem, tier: str, alert_id: int) -> list[dict[str, Any]]:
    return wait_until(
        lambda: told(system, tier, alert_id), timeout_s=20, message=f"the {tier} center told"
    )


def test_a_stations_alarm_report_reaches_all_three_centers(
    system: LocalSystem, tmp_path: Path
) -> None:
    scenario = tmp_path / "station.toml"
    scenario.write_text(SCENARIO)
    timing = GatewayTiming(heartbeat_interval_s=1.0)
    system.start_scenario_gateway(GATEWAY, str(scenario), time_scale=1.0, timing=timing)

    readings = wait_until(
        lambda: station_readings(system), timeout_s=30, message="the station's readings"
    )
    assert all(r["ts_ms"] % 60_000 == 0 for r in readings)  # its observation minute
    wait_until(lambda: rules_in_force(system), timeout_s=30, message="rules pushed")
    assert alert_of(system) is None  # a 12 m river raises nothing by the rules

    manifest = json.loads((tmp_path / f"{GATEWAY}-sim.json").read_text())
    (station,) = manifest["devices"]
    answer = send(
        station["control"], {"cmd": "values", "device": "river-st-1", "values": {"Z": 15.8}}
    )
    assert answer["ok"], answer

    alert = wait_until(lambda: alert_of(system), timeout_s=20, message="the station's alert")
    assert alert is not None
    assert (alert["colour"], alert["device"], alert["metric"]) == (
        "orange",
        f"{GATEWAY}.river-st-1",
        "level_m",
    )
    raised = alert["trail"][0]
    assert (raised["action"], raised["by"]) == ("raised", f"edge:{GATEWAY}")
    for tier in ("street", "district", "city"):
        messages = wait_told(system, tier, alert["id"])
        assert messages[0]["action"] == "raised"
        assert messages[0]["colour"] == "orange"
