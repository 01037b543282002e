"""Authorization over the whole API, against a controller with real tokens (not demo mode):
every route of the OpenAPI document refuses a missing or revoked token, every kind of
resource answers 404 (or 403 for a create) across places, a place-scoped admin reads only
its place's audit, and a stream ticket dies with the very token it was issued for."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import wire
from controller.cli import main as cli
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import (
    Publisher,
    api,
    as_,
    config_for,
    get_json,
    make_token,
    now_ms,
    river,
)

STREET_A = "cq/yuzhong/jiefangbei"
STREET_B = "cq/yuzhong/chaotianmen"
PROBES = {"/healthz", "/readyz", "/metrics"}


def new_token(db: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli(["token", "create", *argv, "--db", str(db)]) == 0
    return capsys.readouterr().out.strip()


def revoke(db: Path, name: str) -> None:
    assert cli(["token", "revoke", "--name", name, "--db", str(db)]) == 0


@dataclass
class Site:
    url: str
    db: Path
    tokens: dict[str, str]
    clients: dict[str, httpx.Client]
    alert_a: int
    alert_b: int
    command_b: str


@pytest.fixture
def site(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> Iterator[Site]:
    """Street A and street B, each with a gateway, a device with readings, a red alert; on
    street B also a command and a desired config. Tokens: an unscoped admin, an admin, an
    operator and a viewer of street A, and a revoked one."""
    db = tmp_path / "controller.db"
    tokens = {
        "admin": make_token(db, capsys, "admin"),
        "admin-a": make_token(db, capsys, "admin", STREET_A),
        "op-a": make_token(db, capsys, "operator", STREET_A),
        "viewer-a": make_token(db, capsys, "viewer", STREET_A),
        "revoked": new_token(db, capsys, "--role", "admin", "--name", "gone"),
    }
    revoke(db, "gone")
    config = config_for(
        tmp_path, mosquitto, gateways={"gw-a": STREET_A, "gw-b": STREET_B}, auth="tokens"
    )
    with ExitStack() as stack:
        controller = stack.enter_context(Controller(config))
        wait_until(lambda: controller.mqtt_connected, timeout_s=5, message="subscribed")
        clients = {
            name: stack.enter_context(as_(controller.api_url, token))
            for name, token in tokens.items()
        }
        admin = clients["admin"]
        publisher = stack.enter_context(Publisher(mosquitto))
        for gateway, place in (("gw-b", STREET_B), ("gw-a", STREET_A)):  # B's alert first
            assert admin.post("/api/v1/risk-points", json=river(gateway, place)).status_code == 201
            reading = wire.Reading(
                seq=1, ts_ms=now_ms(), device="gauge-1", metric="level_cm", value=450, unit="cm"
            )
            publisher.publish(
                wire.topic_for(gateway, wire.TopicKind.READINGS),
                wire.ReadingBatch(session=1, readings=[reading]),
            )
            params = {"place": place}
            wait_until(
                lambda: get_json(admin, "/api/v1/alerts", params),  # noqa: B023 (waited on here)
                timeout_s=5,
                message=f"an alert on {place}",
            )
        alerts = {a["point"]: a["id"] for a in get_json(admin, "/api/v1/alerts")}
        command = admin.post("/api/v1/gateways/gw-b/commands", json={"type": "ping"})
        assert command.status_code == 201, command.text
        desired = admin.put("/api/v1/gateways/gw-b/config", json={"config": {"devices": []}})
        assert desired.status_code == 200, desired.text
        yield Site(
            url=controller.api_url,
            db=db,
            tokens=tokens,
            clients=clients,
            alert_a=alerts["river-gw-a"],
            alert_b=alerts["river-gw-b"],
            command_b=command.json()["id"],
        )


def fill(path: str, site: Site) -> str:
    values = {
        "gateway_id": "gw-a",
        "device_id": "gw-a.gauge-1",
        "alert_id": str(site.alert_a),
        "command_id": site.command_b,
        "risk_point_id": "river-gw-a",
        "place": "cq/yuzhong/jiefangbei",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def test_every_api_route_refuses_a_missing_or_revoked_token(site: Site) -> None:
    document = get_json(site.clients["admin"], "/openapi.json")
    paths: dict[str, dict[str, Any]] = document["paths"]
    # Only probes and Prometheus live outside /api/v1 (regression: they were also inside).
    assert set(paths) - {p for p in paths if p.startswith("/api/v1/")} == PROBES
    walked: list[str] = []
    wrong: list[str] = []
    with api(site.url) as anonymous:
        for path, operations in sorted(paths.items()):
            if not path.startswith("/api/v1/"):
                continue
            for method in operations:
                url = fill(path, site)
                body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
                walked.append(f"{method.upper()} {path}")
                for who, headers in (
                    ("no token", {}),
                    ("a revoked token", {"Authorization": f"Bearer {site.tokens['revoked']}"}),
                    ("a malformed header", {"Authorization": "Basic dXNlcjpwdw=="}),
                ):
                    response = anonymous.request(method, url, json=body, headers=headers)
                    if response.status_code != 401:
                        wrong.append(f"{method.upper()} {url} with {who}: {response.status_code}")
                    elif response.headers.get("www-authenticate") != "Bearer":
                        wrong.append(f"{method.upper()} {url} with {who}: no WWW-Authenticate")
        for probe in sorted(PROBES):
            assert anonymous.get(probe).status_code == 200, probe
            assert anonymous.get(f"/api/v1{probe}").status_code == 404, probe  # moved out
    assert len(walked) >= 35, walked
    assert wrong == []


def test_every_kind_of_resource_of_another_place_is_not_there(site: Site) -> None:
    """A street A token (operator, and admin for credentials) asks for street B's things:
    each answers 404 naming nothing of B's, or 403 where it would create something in B."""
    b_device = "/api/v1/devices/gw-b.gauge-1"
    b_gateway = "/api/v1/gateways/gw-b"
    cases: list[tuple[str, str, str, Any, int]] = [
        ("op-a", "GET", b_gateway, None, 404),
        ("op-a", "GET", f"{b_gateway}/history", None, 404),
        ("op-a", "PATCH", b_gateway, {"label": "mine"}, 404),
        ("op-a", "GET", b_device, None, 404),
        ("op-a", "GET", f"{b_device}/history", None, 404),
        ("op-a", "GET", f"{b_device}/readings", None, 404),
        ("op-a", "PATCH", b_device, {"maintenance": True}, 404),
        ("op-a", "POST", "/api/v1/devices", {"gateway": "gw-b", "name": "new"}, 404),
        ("op-a", "GET", f"{b_gateway}/config", None, 404),
        ("op-a", "GET", f"{b_gateway}/config/versions", None, 404),
        ("op-a", "PUT", f"{b_gateway}/config", {"config": {"devices": []}}, 404),
        ("op-a", "POST", f"{b_gateway}/config/push", {}, 404),
        ("op-a", "GET", f"{b_gateway}/gaps", None, 404),
        ("admin-a", "POST", f"{b_gateway}/credentials", None, 404),
        ("admin-a", "DELETE", f"{b_gateway}/credentials", None, 404),
        ("op-a", "GET", f"{b_gateway}/commands", None, 404),
        ("op-a", "GET", f"{b_gateway}/commands/{site.command_b}", None, 404),
        ("op-a", "POST", f"{b_gateway}/commands", {"type": "ping"}, 404),
        ("op-a", "GET", f"/api/v1/alerts/{site.alert_b}", None, 404),
        ("op-a", "POST", f"/api/v1/alerts/{site.alert_b}/transitions", {"to": "handling"}, 404),
        ("op-a", "PATCH", "/api/v1/risk-points/river-gw-b", {"name": "mine"}, 404),
        ("op-a", "POST", "/api/v1/risk-points", {**river("gw-b", STREET_B), "id": "x"}, 403),
        ("op-a", "POST", "/api/v1/gateways", {"id": "gw-c", "place": STREET_B}, 403),
        ("op-a", "POST", "/api/v1/places", {"path": f"{STREET_B}/grid-9", "name": "g"}, 403),
        ("admin-a", "GET", f"{b_gateway}/config", None, 404),
        ("admin-a", "GET", f"/api/v1/alerts/{site.alert_b}", None, 404),
    ]
    wrong: list[str] = []
    for who, method, path, body, expected in cases:
        response = site.clients[who].request(method, path, json=body)
        if response.status_code != expected:
            wrong.append(f"{who} {method} {path}: {response.status_code} {response.text[:120]}")
    assert wrong == []
    # Lists leave B out rather than refuse.
    op_a = site.clients["op-a"]
    assert [a["id"] for a in get_json(op_a, "/api/v1/alerts")] == [site.alert_a]
    assert get_json(op_a, "/api/v1/alerts", {"place": STREET_B}) == []
    assert [d["id"] for d in get_json(op_a, "/api/v1/devices")] == ["gw-a.gauge-1"]
    assert [g["id"] for g in get_json(op_a, "/api/v1/gateways")] == ["gw-a"]
    # Nothing of B's was changed by the refused writes.
    admin = site.clients["admin"]
    assert [c["id"] for c in get_json(admin, f"{b_gateway}/commands")] == [site.command_b]
    assert get_json(admin, f"/api/v1/alerts/{site.alert_b}")["state"] == "raised"


def stream_events(client: httpx.Client, url: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events (event, id, data) of an alert stream."""
    found: list[dict[str, Any]] = []
    with client.stream("GET", url) as response:
        assert response.status_code == 200, response.read()
        current: dict[str, Any] = {}
        for line in response.iter_lines():
            if not line:
                if "event" in current:
                    found.append(current)
                    if len(found) == count:
                        break
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                current[field] = value.strip()
    return found


def test_the_alert_stream_of_another_place_sends_nothing_of_it(site: Site) -> None:
    # B's alert was raised first: the street A operator's first alert event is A's own.
    ready, first = stream_events(site.clients["op-a"], "/api/v1/alerts/stream?after=0", 2)
    assert ready["event"] == "ready"
    assert (first["event"], json.loads(first["data"])["id"]) == ("alert", site.alert_a)
    _, everything = stream_events(site.clients["admin"], "/api/v1/alerts/stream?after=0", 2)
    assert json.loads(everything["data"])["id"] == site.alert_b


def test_a_place_scoped_admin_reads_only_its_places_audit(site: Site) -> None:
    """Regression: any admin read the whole audit log, whatever its place."""
    made = site.clients["op-a"].post("/api/v1/gateways/gw-a/commands", json={"type": "ping"})
    assert made.status_code == 201
    everything = get_json(site.clients["admin"], "/api/v1/audit")
    assert {e["place"] for e in everything} >= {STREET_A, STREET_B}
    street_a = get_json(site.clients["admin-a"], "/api/v1/audit")
    assert street_a, "street A's admin sees street A's entries"
    assert {e["place"] for e in street_a} == {STREET_A}
    assert all("gw-b" not in e["target"] for e in street_a)
    assert len(street_a) == sum(1 for e in everything if e["place"] == STREET_A)


def test_a_stream_ticket_dies_with_its_token_even_when_the_name_is_given_again(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: redeeming a ticket checked the token by name, so a token revoked and
    created again under the same name (same role and place) kept its old tickets working."""
    viewer = site.clients["viewer-a"]
    old_ticket = viewer.post("/api/v1/alerts/stream-ticket").json()
    revoke(site.db, "viewer-jiefangbei")
    again = new_token(
        site.db, capsys, "--role", "viewer", "--place", STREET_A, "--name", "viewer-jiefangbei"
    )
    with api(site.url) as browser:
        refused = browser.get(old_ticket["stream"])
        assert refused.status_code == 401
        assert "ticket" in refused.json()["detail"]
        assert viewer.get("/api/v1/alerts/stream").status_code == 401  # the old token itself
        with as_(site.url, again) as renewed:  # the new token's own ticket works
            fresh = renewed.post("/api/v1/alerts/stream-ticket").json()
        _, alert = stream_events(browser, f"{fresh['stream']}&after=0", 2)
        assert json.loads(alert["data"])["id"] == site.alert_a
