"""Duty rosters through the API: place-scoped like everything else, bounded, audited; the
config's rosters are changed in the config."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.service import Controller
from edgewatch.broker import Mosquitto
from tests.controller.support import as_, config_for, make_token
from tests.notify.conftest import person, roster

STREET = "cq/yuzhong/jiefangbei"
OTHER_STREET = "cq/yuzhong/chaotianmen"


@dataclass
class Site:
    controller: Controller
    admin: httpx.Client
    street: httpx.Client


@pytest.fixture
def site(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> Iterator[Site]:
    db = tmp_path / "controller.db"
    tokens = [make_token(db, capsys, "admin"), make_token(db, capsys, "operator", STREET)]
    notify = {
        "link_secret": "x" * 40,
        "allowed_hosts": ["127.0.0.1"],
        "channels": [{"name": "hook", "kind": "webhook", "url": "json://127.0.0.1:9/h?:to={to}"}],
        "rosters": [roster(f"{STREET}/grid-1", person("li-wei", "Li Wei"))],
    }
    config = config_for(tmp_path, mosquitto, auth="tokens", extra={"notify": notify})
    with Controller(config) as running:
        admin, street = (as_(running.api_url, token) for token in tokens)
        yield Site(running, admin, street)


def body(*people: str) -> dict[str, Any]:
    return {
        "people": [{"id": p, "name": p.title(), "contacts": [{"channel": "hook", "to": p}]}
                   for p in people],
        "shifts": [{"person": people[0], "days": ["sat", "sun"], "start": "20:00", "end": "08:00"}],
    }  # fmt: skip


def test_a_street_operator_sees_and_changes_only_its_own_rosters(site: Site) -> None:
    admin, street = site.admin, site.street
    assert admin.put(f"/api/v1/rosters/{OTHER_STREET}/grid-9", json=body("wu")).status_code == 200
    made = street.put(f"/api/v1/rosters/{STREET}/grid-2", json=body("he", "ma"))
    assert made.status_code == 200, made.text
    assert made.json()["layer"] == "grid"
    assert made.json()["source"] == "api"
    seen = [r["place"] for r in street.get("/api/v1/rosters").json()]
    assert seen == [f"{STREET}/grid-1", f"{STREET}/grid-2"]
    assert street.get(f"/api/v1/rosters/{OTHER_STREET}/grid-9").status_code == 404
    assert street.put(f"/api/v1/rosters/{OTHER_STREET}/grid-8", json=body("x")).status_code == 403
    assert street.delete(f"/api/v1/rosters/{OTHER_STREET}/grid-9").status_code == 404
    configured = street.put(f"/api/v1/rosters/{STREET}/grid-1", json=body("he"))
    assert configured.status_code == 409
    assert "[[notify.rosters]]" in configured.json()["detail"]
    assert street.delete(f"/api/v1/rosters/{STREET}/grid-2").status_code == 204
    audit = admin.get("/api/v1/audit").json()
    assert {"roster.create", "roster.delete"} <= {e["action"] for e in audit}


def test_roster_input_is_bounded_and_checked_against_the_channels(site: Site) -> None:
    admin = site.admin
    url = f"/api/v1/rosters/{STREET}/grid-3"
    crowd = body(*[f"p{i}" for i in range(201)])
    assert admin.put(url, json=crowd).status_code == 422
    unknown = body("li")
    unknown["people"][0]["contacts"][0]["channel"] = "sms"
    refused = admin.put(url, json=unknown)
    assert refused.status_code == 422
    assert "channel 'sms' is not a [[notify.channels]] name" in refused.text
    assert admin.put("/api/v1/rosters/CQ//x", json=body("li")).status_code == 422
    assert (
        admin.put(f"/api/v1/rosters/{STREET}", json={**body("li"), "layer": "grid"}).status_code
        == 422
    )
    long_name = body("li")
    long_name["people"][0]["name"] = "x" * 65
    assert admin.put(url, json=long_name).status_code == 422
    assert admin.get("/api/v1/rosters").status_code == 200
    assert as_(site.controller.api_url, "ewt_nope").get("/api/v1/rosters").status_code == 401


def test_a_conditional_write_never_undoes_someone_elses_change(site: Site) -> None:
    """The console sends the revision it read: a roster changed since is refused (412), not
    silently replaced; If-None-Match: * creates a roster only where there is none."""
    admin, street = site.admin, site.street
    url = f"/api/v1/rosters/{STREET}/grid-4"
    created = street.put(url, json=body("he"), headers={"If-None-Match": "*"})
    assert created.status_code == 200, created.text
    seen = created.json()["revision"]
    assert created.headers["ETag"] == f'"{seen}"'
    assert street.get(url).headers["ETag"] == f'"{seen}"'
    again = street.put(url, json=body("ma"), headers={"If-None-Match": "*"})
    assert again.status_code == 412
    assert "already a duty roster" in again.json()["detail"]

    # The admin changes it; the street operator's edit of what it read is refused.
    by_admin = admin.put(url, json=body("he", "wu"), headers={"If-Match": f'"{seen}"'})
    assert by_admin.status_code == 200, by_admin.text
    now = by_admin.json()["revision"]
    assert now != seen
    stale = street.put(url, json=body("he", "ma"), headers={"If-Match": f'"{seen}"'})
    assert stale.status_code == 412
    assert "changed since you read it" in stale.json()["detail"]
    assert [p["id"] for p in street.get(url).json()["people"]] == ["he", "wu"]
    assert street.delete(url, headers={"If-Match": f'"{seen}"'}).status_code == 412
    assert street.get(url).status_code == 200

    # An unchanged write keeps the revision: it is the roster's content, not its time.
    same = street.put(url, json=body("he", "wu"), headers={"If-Match": f'W/"{now}"'})
    assert same.status_code == 200
    assert same.json()["revision"] == now
    assert street.put(url, json=body("he"), headers={"If-Match": "*"}).status_code == 200
    missing = f"/api/v1/rosters/{STREET}/grid-5"
    assert street.put(missing, json=body("he"), headers={"If-Match": "*"}).status_code == 412
    both = street.put(url, json=body("he"), headers={"If-Match": "*", "If-None-Match": "*"})
    assert both.status_code == 422
    assert both.json()["detail"][0]["field"] == "header.If-Match"
    odd = street.put(url, json=body("he"), headers={"If-None-Match": '"abc"'})
    assert odd.status_code == 422
    assert "header.If-None-Match" in odd.text
    current = street.get(url).json()["revision"]
    assert street.delete(url, headers={"If-Match": f'"{current}"'}).status_code == 204
