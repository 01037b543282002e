"""Alerts and the risk map in a real browser: a red reading, published as a gateway would,
shows up live and is acknowledged from the page; a street's token sees only its street."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

import wire
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.console.support import GATEWAYS, STREET_A, STREET_B, bring_online, secured_controller
from tests.controller.support import Publisher, api, config_for, now_ms

if TYPE_CHECKING:
    from playwright.sync_api import Page

RISK_POINTS: list[dict[str, Any]] = [
    {
        "id": "jialing-jfb",
        "name": "Jialing river at Jiefangbei",
        "category": "water_level",
        "place": f"{STREET_A}/grid-1",
        "metrics": [
            {
                "device": "gw-a.gauge-1",
                "metric": "level_cm",
                "preset": "water_level",
                "warning_level": 1800.0,
                "guarantee_level": 2000.0,
            }
        ],
    },
    {
        "id": "yangtze-ctm",
        "name": "Yangtze at Chaotianmen",
        "category": "water_level",
        "place": f"{STREET_B}/grid-1",
        "metrics": [
            {
                "device": "gw-b.gauge-1",
                "metric": "level_cm",
                "preset": "water_level",
                "warning_level": 1800.0,
                "guarantee_level": 2000.0,
            }
        ],
    },
]


def publish_level(publisher: Publisher, gateway: str, seq: int, level_cm: float) -> None:
    """One live reading of gauge-1, as the gateway's agent publishes it."""
    batch = wire.ReadingBatch(
        session=1,
        readings=[
            wire.Reading(
                seq=seq,
                ts_ms=now_ms(),
                device="gauge-1",
                metric="level_cm",
                value=level_cm,
                unit="cm",
            )
        ],
    )
    publisher.publish(wire.topic_for(gateway, wire.TopicKind.READINGS), batch)


def open_alerts(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/api/v1/alerts", params={"open": "true"})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()
    return result


def test_a_red_alert_appears_live_and_is_acknowledged_from_the_page(
    tmp_path: Path, mosquitto: Mosquitto, page: Page
) -> None:
    config = config_for(tmp_path, mosquitto, gateways=GATEWAYS, extra={"risk_points": RISK_POINTS})
    with Controller(config) as controller, Publisher(mosquitto) as publisher:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5, message="subscribed")
        bring_online(publisher, ["gw-a"])
        page.goto(f"{controller.api_url}/console/#/alerts")
        page.locator("#live.live-live").wait_for()  # the event stream is open
        page.locator("text=No open alerts.").wait_for()

        publish_level(publisher, "gw-a", 1, 2100.0)  # above the guarantee level: red
        alert = page.locator('article.alert[data-colour="red"]')
        alert.wait_for()  # arrived through the stream: the page was not reloaded
        assert alert.get_attribute("data-state") == "raised"
        assert page.locator("#alert-badge").inner_text() == "1"
        alert_id = alert.get_attribute("data-alert")

        alert.locator("input").fill("crew on the way")
        alert.locator('button[data-to="acknowledged"]').click()
        page.locator(
            f'article.alert[data-alert="{alert_id}"][data-state="acknowledged"]'
        ).wait_for()
        with api(controller.api_url) as client:
            detail = client.get(f"/api/v1/alerts/{alert_id}").json()
        assert detail["state"] == "acknowledged"
        step = detail["trail"][-1]
        assert (step["action"], step["by"], step["note"]) == (
            "acknowledged",
            "demo",
            "crew on the way",
        )

        alert.locator("button", has_text="Trail").click()
        page.locator("table.trail tr[data-action='acknowledged']").wait_for()
        assert page.locator("table.trail tr[data-action='raised']").count() == 1

        page.goto(f"{controller.api_url}/console/#/risk")
        page.locator('.place-tile[data-place="cq"][data-colour="red"]').wait_for()
        page.click('.place-tile[data-place="cq"]')
        page.click('.place-tile[data-place="cq/yuzhong"]')
        page.click(f'.place-tile[data-place="{STREET_A}"]')
        page.locator('.point-tile[data-point="jialing-jfb"][data-colour="red"]').wait_for()

        page.goto(f"{controller.api_url}/console/#/device/gw-a.gauge-1")
        page.locator("figure[data-metric='level_cm'] rect[data-band='red']").wait_for()


def test_a_street_token_sees_only_its_streets_alerts_and_risk_points(
    tmp_path: Path, mosquitto: Mosquitto, page: Page
) -> None:
    with (
        secured_controller(tmp_path, mosquitto, extra={"risk_points": RISK_POINTS}) as secured,
        Publisher(mosquitto) as publisher,
        api(secured.url) as admin,
    ):
        admin.headers["Authorization"] = f"Bearer {secured.tokens['admin']}"
        bring_online(publisher, ["gw-a", "gw-b"])
        publish_level(publisher, "gw-a", 1, 2100.0)
        publish_level(publisher, "gw-b", 1, 2100.0)
        wait_until(lambda: len(open_alerts(admin)) == 2, timeout_s=10, message="two alerts")

        page.goto(f"{secured.url}/console/#/alerts")
        page.locator("#login").wait_for()
        page.fill("#token", secured.tokens["viewer-b"])
        page.click("#login-form button[type=submit]")
        page.locator('article.alert[data-colour="red"]').wait_for()
        assert page.locator("article.alert").count() == 1
        assert "yangtze-ctm" in page.locator("article.alert").inner_text()
        assert page.locator("article.alert button[data-to]").count() == 0  # a viewer
        page.goto(f"{secured.url}/console/#/risk")
        page.locator('.place-tile[data-place="cq"]').wait_for()
        assert "jialing" not in page.locator("main").inner_text()
