"""The console's fleet pages in a real browser, against the whole system as real processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edgewatch.broker import Mosquitto
from edgewatch.processes import ProcessGroup
from edgewatch.system import GATEWAYS, GatewayTiming, LocalSystem
from edgewatch.waiting import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

FAST = GatewayTiming(poll_interval_s=0.5, heartbeat_interval_s=1.0, keepalive_s=5)


@pytest.fixture
def running(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[LocalSystem]:
    """Centers, the controller (demo mode) and both simulated gateways, all online."""
    with ProcessGroup(tmp_path / "logs") as procs:
        local = LocalSystem(tmp_path, mosquitto.port, procs)
        local.start_centers()
        local.start_controller()
        for gateway_id in GATEWAYS:
            local.start_gateway(gateway_id, FAST)
        wait_until(
            lambda: all(local.gateway_state(g) == "online" for g in GATEWAYS),
            timeout_s=30,
            message="both simulated gateways online",
        )
        yield local


def test_overview_shows_the_simulated_gateways_then_a_gateway_and_a_device(
    running: LocalSystem, page: Page
) -> None:
    page.goto(f"{running.base_url}/")  # redirects to /console/; demo mode: no login
    for gateway_id, place in GATEWAYS.items():
        row = page.locator(f'#overview tr[data-gateway="{gateway_id}"]')
        row.wait_for()
        assert row.locator(".state").inner_text() == "online"
        assert place in row.inner_text()
    assert page.locator("#login").is_hidden()
    assert page.locator('[data-count="online"] b').inner_text() == "2"

    page.click('tr[data-gateway="gw-demo-1"] a')
    page.locator("#devices tr[data-device='gw-demo-1.river-gauge-1']").wait_for()
    assert page.locator('[data-field="buffer_rows"]').count() == 1
    page.click("button[data-command='ping']")
    # Past "queued": the broker took it, and the agent's answer (whatever it is) is shown.
    answered = re.compile(r"ping.*(delivered|succeeded|failed)")
    page.locator("#commands tr", has_text=answered).wait_for()

    page.click("#devices tr[data-device='gw-demo-1.river-gauge-1'] a")
    chart = page.locator("figure[data-metric='level_cm'] svg path.line")
    chart.wait_for()
    assert chart.get_attribute("d", timeout=5000)
