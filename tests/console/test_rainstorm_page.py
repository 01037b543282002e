"""The operator's view of the rainstorm: real agents read the simulated storm on ptys, the
slope's alert turns red, and it appears live on the console's alerts page, where it is
acknowledged (issue 7's browser test on the firmware-sim scenario)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from edgewatch.broker import Mosquitto
from edgewatch.processes import ProcessGroup
from edgewatch.system import GatewayTiming, LocalSystem, get_json
from tests.e2e.test_rainstorm import GATEWAY, RULES, SECRET, TIME_SCALE

if TYPE_CHECKING:
    from playwright.sync_api import Page

# The storm's slope reaches orange at 2,000 mm/h in the end-to-end test; here it must go red.
SLOPE_AS_IN_E2E = "thresholds = {orange = 2000.0, red = 10000.0}"
SLOPE_RED_SOONER = "thresholds = {orange = 1000.0, red = 2000.0}"


@pytest.fixture
def storm(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[LocalSystem]:
    assert SLOPE_AS_IN_E2E in RULES
    with ProcessGroup(tmp_path / "logs") as procs:
        system = LocalSystem(tmp_path, mosquitto.port, procs, center_secret=SECRET)
        system.start_centers()
        system.start_controller(RULES.replace(SLOPE_AS_IN_E2E, SLOPE_RED_SOONER))
        yield system


def test_the_storms_red_alert_appears_live_and_is_acknowledged(
    storm: LocalSystem, page: Page
) -> None:
    page.goto(f"{storm.base_url}/console/#/alerts")
    page.locator("#live.live-live").wait_for()  # the event stream is open before the storm

    timing = GatewayTiming(poll_interval_s=0.25, heartbeat_interval_s=1.0, keepalive_s=5)
    storm.start_scenario_gateway(GATEWAY, "rainstorm", time_scale=TIME_SCALE, timing=timing)

    red = page.locator('article.alert[data-colour="red"]').first
    red.wait_for(timeout=60_000)  # arrives through the stream: the page is never reloaded
    alert_id = red.get_attribute("data-alert")
    assert alert_id is not None
    red.locator("input").fill("slope crew dispatched")
    red.locator('button[data-to="acknowledged"]').click()
    page.locator(f'article.alert[data-alert="{alert_id}"][data-state="acknowledged"]').wait_for()

    detail: dict[str, Any] = get_json(f"{storm.api}/alerts/{alert_id}")
    assert detail["point"] == "slope-jfb"
    assert detail["colour"] == "red"
    assert detail["state"] == "acknowledged"
    assert detail["trail"][-1]["note"] == "slope crew dispatched"
