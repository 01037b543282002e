"""``GET /api/v1/alerts/stream``: server-sent events, scoped by token, opened by ticket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from controller.cli import main as controller_cli
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.console.support import bring_online, secured_controller
from tests.console.test_alert_pages import RISK_POINTS, open_alerts, publish_level
from tests.controller.support import Publisher, api


def events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parse an event stream: one dict (event, id, data) per event."""
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if "event" in current:
                yield current
            current = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            current[field] = json.loads(value) if field == "data" else value


def first_alert(client: httpx.Client, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with client.stream("GET", url) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        ready = next(stream)
        alert = next(stream)
    return ready, alert


def as_(url: str, token: str) -> httpx.Client:
    client = api(url)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_the_stream_sends_only_what_the_token_may_see_and_opens_by_ticket(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with (
        secured_controller(tmp_path, mosquitto, extra={"risk_points": RISK_POINTS}) as secured,
        Publisher(mosquitto) as publisher,
        as_(secured.url, secured.tokens["admin"]) as admin,
        as_(secured.url, secured.tokens["op-a"]) as op_a,
    ):
        bring_online(publisher, ["gw-a", "gw-b"])
        publish_level(publisher, "gw-b", 1, 2100.0)  # street B first, then street A
        wait_until(lambda: len(open_alerts(admin)) == 1, timeout_s=10, message="alert on B")
        publish_level(publisher, "gw-a", 1, 2100.0)
        wait_until(lambda: len(open_alerts(admin)) == 2, timeout_s=10, message="alert on A")

        ready, alert = first_alert(admin, "/api/v1/alerts/stream?after=0")
        assert ready["event"] == "ready"
        assert ready["data"] == {"cursor": 0}
        assert alert["data"]["point"] == "yangtze-ctm"
        # Street A's operator never hears of street B: its first event is its own alert.
        _, alert = first_alert(op_a, "/api/v1/alerts/stream?after=0")
        assert alert["event"] == "alert"
        assert alert["data"]["point"] == "jialing-jfb"
        assert alert["data"]["colour"] == "red"
        assert alert["data"]["trail"][0]["action"] == "raised"
        assert int(alert["id"]) > 0

        with api(secured.url) as browser:
            assert browser.get("/api/v1/alerts/stream").status_code == 401
            assert browser.get("/api/v1/alerts/stream?ticket=forged.x").status_code == 401
            ticket = op_a.post("/api/v1/alerts/stream-ticket").json()
            _, alert = first_alert(browser, f"{ticket['stream']}&after=0")
            assert alert["data"]["point"] == "jialing-jfb"
            assert browser.get(ticket["stream"]).status_code == 401  # used once already

            unused = op_a.post("/api/v1/alerts/stream-ticket").json()
            revoke = ["token", "revoke", "--name", "op-a", "--db", str(secured.db)]
            assert controller_cli(revoke) == 0
            assert browser.get(unused["stream"]).status_code == 401  # its token is revoked


def test_an_open_stream_does_not_hold_up_the_controller_stopping(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The stream ends itself when the controller stops: its response finishes whole, so
    the server's graceful shutdown has nothing to wait for. A stream that held it up would
    be cut off when the shutdown gives up waiting (httpx: the body ended early)."""
    with secured_controller(tmp_path, mosquitto) as secured:
        client = as_(secured.url, secured.tokens["admin"])
        with client, client.stream("GET", "/api/v1/alerts/stream") as response:
            stream = events(response)
            assert next(stream)["event"] == "ready"
            secured.controller.stop()
            assert list(stream) == []  # the end of a whole response, not a cut connection
