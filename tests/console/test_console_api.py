"""The controller's side of the console: static files, whoami, stream tickets."""

from __future__ import annotations

from pathlib import Path

import httpx

from controller.access import Principal, Role
from controller.api.stream_tickets import StreamTickets
from controller.service import Controller
from edgewatch.broker import Mosquitto
from tests.console.support import STREET_A, secured_controller
from tests.controller.support import api


def as_(url: str, token: str) -> httpx.Client:
    client = api(url)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_the_console_is_served_with_a_strict_policy(controller: Controller) -> None:
    with api(controller.api_url) as client:
        root = client.get("/")
        assert root.status_code == 307
        assert root.headers["location"] == "/console/"
        page = client.get("/console/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert '<script type="module" src="js/app.js">' in page.text
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        script = client.get("/console/js/pages/alerts.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert client.get("/console/js/nothing.js").status_code == 404


def test_every_console_file_is_package_data() -> None:
    """pyproject's package-data globs must cover every file the console serves."""
    import tomllib  # noqa: PLC0415

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["controller"]
    package = root / "controller"
    covered = {path for pattern in globs for path in package.glob(pattern)}
    served = {p for p in (package / "console").rglob("*") if p.is_file()}
    assert served, "the console folder is empty"
    assert served <= covered, sorted(str(p) for p in served - covered)


def test_whoami_in_demo_mode(controller: Controller) -> None:
    with api(controller.api_url) as client:
        me = client.get("/api/v1/whoami").json()
    assert me == {"name": "demo", "role": "admin", "place": None, "auth": "demo"}


def test_whoami_and_tickets_need_a_token(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with secured_controller(tmp_path, mosquitto) as secured:
        with api(secured.url) as anonymous:
            assert anonymous.get("/api/v1/whoami").status_code == 401
            assert anonymous.post("/api/v1/alerts/stream-ticket").status_code == 401
            assert anonymous.get("/console/").status_code == 200  # the page itself is public
        with as_(secured.url, secured.tokens["op-a"]) as op_a:
            me = op_a.get("/api/v1/whoami").json()
            assert me == {"name": "op-a", "role": "operator", "place": STREET_A, "auth": "tokens"}
            ticket = op_a.post("/api/v1/alerts/stream-ticket")
            assert ticket.status_code == 201
            body = ticket.json()
            assert body["stream"] == f"/api/v1/alerts/stream?ticket={body['ticket']}"
            assert secured.tokens["op-a"] not in body["ticket"]


def test_tickets_are_single_use_short_lived_and_unforgeable() -> None:
    tickets = StreamTickets(ttl_s=30)
    who = Principal(name="op-a", role=Role.OPERATOR, place=STREET_A)
    ticket = tickets.issue(who, now_ms=1_000_000)
    assert ticket.expires_ms == 1_030_000
    redeemed = tickets.redeem(ticket.value, now_ms=1_000_500)
    assert redeemed is not None
    assert redeemed.principal == who
    assert tickets.redeem(ticket.value, now_ms=1_000_600) is None  # used once already

    late = tickets.issue(who, now_ms=1_000_000)
    assert tickets.redeem(late.value, now_ms=1_030_001) is None  # expired

    body, _, signature = tickets.issue(who, now_ms=1_000_000).value.partition(".")
    admin = tickets.issue(Principal("x", Role.ADMIN, None), now_ms=1_000_000).value
    assert tickets.redeem(f"{admin.partition('.')[0]}.{signature}", now_ms=1_000_001) is None
    assert tickets.redeem(f"{body}.{'A' * len(signature)}", now_ms=1_000_001) is None
    assert tickets.redeem("garbage", now_ms=1_000_001) is None
    assert tickets.redeem("%%%.%%%", now_ms=1_000_001) is None
    other_process = StreamTickets()
    assert other_process.redeem(tickets.issue(who, now_ms=1).value, now_ms=2) is None
