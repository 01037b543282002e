"""What a newcomer sees in the console first (issue 17): the demo's system, as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edgewatch.broker import Mosquitto
from edgewatch.demo import DEMO_RISK_POINTS
from edgewatch.processes import ProcessGroup
from edgewatch.system import PLACE_NAMES, GatewayTiming, LocalSystem, agent_config
from edgewatch.waiting import wait_until
from tests.console.support import secured_controller

if TYPE_CHECKING:
    from playwright.sync_api import Page

FAST = GatewayTiming(poll_interval_s=0.5, heartbeat_interval_s=1.0, keepalive_s=5)


@pytest.fixture
def demo(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[LocalSystem]:
    """The demo's controller, risk points and place names; gw-demo-1 reads its simulated
    gauge, gw-demo-2's port names a serial device that does not exist."""
    with ProcessGroup(tmp_path / "logs") as procs:
        local = LocalSystem(tmp_path, mosquitto.port, procs)
        local.start_centers()
        local.start_controller(extra_config=DEMO_RISK_POINTS)
        local.name_places(PLACE_NAMES)
        local.start_gateway("gw-demo-1", FAST)
        config = tmp_path / "gw-demo-2.toml"
        missing = tmp_path / "ttyUSB-unplugged"
        config.write_text(
            agent_config("gw-demo-2", mosquitto.port, tmp_path / "gw-demo-2", str(missing), FAST)
        )
        local.start_agent("gw-demo-2", config)
        wait_until(
            lambda: all(local.gateway_state(g) in ("online", "degraded") for g in PLACE_GATEWAYS),
            timeout_s=30,
            message="both gateways seen",
        )
        yield local


PLACE_GATEWAYS = ("gw-demo-1", "gw-demo-2")


def test_the_risk_map_names_the_demo_s_places(demo: LocalSystem, page: Page) -> None:
    page.goto(f"{demo.base_url}/console/#/risk")
    tile = page.locator('.place-tile[data-place="cq"]')
    tile.wait_for()
    assert "Chongqing" in tile.inner_text()
    page.goto(f"{demo.base_url}/console/#/risk?place=cq/yuzhong")
    page.locator(".crumbs", has_text="Chongqing \u203a Yuzhong").wait_for()
    assert (
        "Jiefangbei" in page.locator('.place-tile[data-place="cq/yuzhong/jiefangbei"]').inner_text()
    )


def test_a_gauge_shows_its_level_and_a_port_that_will_not_open_says_so(
    demo: LocalSystem, page: Page
) -> None:
    page.goto(f"{demo.base_url}/console/#/gateway/gw-demo-1")
    row = page.locator("#devices tr[data-device='gw-demo-1.river-gauge-1']")
    row.locator("td", has_text=" cm").wait_for()  # level_cm 250.7 cm
    assert "level_cm" in row.inner_text()
    assert "status_word" not in row.inner_text()

    page.click("#devices tr[data-device='gw-demo-1.river-gauge-1'] a")
    subtitle = page.locator(".subtitle", has_text="level_cm")
    subtitle.wait_for()
    assert " cm" in subtitle.inner_text()
    assert "status_word" not in subtitle.inner_text()
    assert "1970" not in subtitle.inner_text()

    page.goto(f"{demo.base_url}/console/#/gateway/gw-demo-2")
    broken = page.locator("#devices tr[data-device='gw-demo-2.river-gauge-1']")
    broken.locator("td", has_text="no answer yet").wait_for()
    broken.locator("text=cannot open").first.wait_for()  # the agent's reason, in words
    assert "_device" not in broken.inner_text()


def test_the_login_page_says_nothing_about_a_stream_before_anyone_logged_in(
    tmp_path: Path, mosquitto: Mosquitto, page: Page
) -> None:
    with secured_controller(tmp_path, mosquitto) as secured:
        page.goto(secured.url.removesuffix("/api/v1") + "/console/")
        page.locator("#login").wait_for()
        assert page.locator("#live").is_hidden()
        assert "connecting" not in page.locator("body").inner_text()
        page.fill("#token", secured.tokens["admin"])
        page.click("#login-form button[type=submit]")
        page.locator("#live.live-live").wait_for()  # the stream starts once logged in
