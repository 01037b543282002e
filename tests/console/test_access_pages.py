"""Logging in to the console with an API token; what a token may not see is not shown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.console.support import bring_online, secured_controller
from tests.controller.support import Publisher, api

if TYPE_CHECKING:
    from playwright.sync_api import Page


def log_in(page: Page, token: str) -> None:
    page.locator("#login").wait_for()
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")


def both_online(client: httpx.Client) -> bool:
    states = {g["id"]: g["state"] for g in client.get("/api/v1/gateways").json()}
    return states == {"gw-a": "online", "gw-b": "online"}


def test_a_street_token_does_not_see_another_streets_gateway(
    tmp_path: Path, mosquitto: Mosquitto, page: Page
) -> None:
    with (
        secured_controller(tmp_path, mosquitto) as secured,
        Publisher(mosquitto) as publisher,
        api(secured.url) as admin,
    ):
        admin.headers["Authorization"] = f"Bearer {secured.tokens['admin']}"
        bring_online(publisher, ["gw-a", "gw-b"])
        wait_until(lambda: both_online(admin), timeout_s=10, message="gw-a and gw-b online")

        page.goto(f"{secured.url}/console/")
        log_in(page, "ewt_not-a-real-token")
        page.locator("#login-error", has_text="unknown or revoked").wait_for()

        log_in(page, secured.tokens["op-a"])
        page.locator('#overview tr[data-gateway="gw-a"]').wait_for()
        assert page.locator("#who").inner_text().startswith("op-a · operator")
        assert page.locator('[data-gateway="gw-b"]').count() == 0
        assert "gw-b" not in page.locator("main").inner_text()
        # The token lives in this tab's sessionStorage, nowhere else.
        assert page.evaluate("sessionStorage.getItem('edgewatch.token')") == secured.tokens["op-a"]
        assert page.evaluate("localStorage.length") == 0
        assert page.context.cookies() == []

        page.goto(f"{secured.url}/console/#/gateway/gw-b")
        page.locator("main .error", has_text="'gw-b' is not known").wait_for()
        assert page.locator("button[data-command]").count() == 0

        page.click("#logout")
        log_in(page, secured.tokens["viewer-b"])
        page.goto(f"{secured.url}/console/#/")
        page.locator('#overview tr[data-gateway="gw-b"]').wait_for()
        assert page.locator('[data-gateway="gw-a"]').count() == 0
        page.click('tr[data-gateway="gw-b"] a')
        page.locator("text=Your token may read but not command.").wait_for()
        assert page.locator("button[data-command]").count() == 0
