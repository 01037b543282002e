"""Access: tokens from the CLI, roles, place scopes (404 outside), refusal to start, audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.cli import main as cli
from controller.service import Controller, StartupRefusedError
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import api, as_, config_for, make_token

STREET_A = "cq/yuzhong/jiefangbei"
STREET_B = "cq/yuzhong/chaotianmen"
GATEWAYS = {"gw-a": STREET_A, "gw-b": STREET_B}


@pytest.fixture
def tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    db = tmp_path / "controller.db"
    return {
        "admin": make_token(db, capsys, "admin"),
        "op-a": make_token(db, capsys, "operator", STREET_A),
        "op-b": make_token(db, capsys, "operator", STREET_B),
        "viewer-a": make_token(db, capsys, "viewer", STREET_A),
    }


@pytest.fixture
def secured(tmp_path: Path, mosquitto: Mosquitto, tokens: dict[str, str]) -> Iterator[str]:
    config = config_for(tmp_path, mosquitto, gateways=GATEWAYS, auth="tokens")
    with Controller(config) as running:
        wait_until(lambda: running.mqtt_connected, timeout_s=5, message="controller subscribed")
        yield running.api_url


def test_refuses_to_start_without_tokens(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = config_for(tmp_path, mosquitto, auth="tokens")
    with pytest.raises(StartupRefusedError, match="token create --role admin"):
        Controller(config).start()


def test_refuses_demo_mode_off_loopback(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = config_for(tmp_path, mosquitto, auth="demo")
    exposed = config.model_copy(update={"http": config.http.model_copy(update={"host": "0.0.0.0"})})
    with pytest.raises(StartupRefusedError, match="only on loopback"):
        Controller(exposed).start()


def test_refuses_a_default_mqtt_password(
    tmp_path: Path, mosquitto: Mosquitto, tokens: dict[str, str]
) -> None:
    config = config_for(
        tmp_path,
        mosquitto,
        auth="tokens",
        extra={},
    )
    mqtt = config.mqtt.model_copy(update={"username": "ctl", "password": "changeme"})
    with pytest.raises(StartupRefusedError, match=r"mqtt\.password"):
        Controller(config.model_copy(update={"mqtt": mqtt})).start()


def test_no_or_unknown_token_is_401(secured: str) -> None:
    with api(secured) as anonymous:
        response = anonymous.get("/api/v1/gateways")
        assert response.status_code == 401
        assert "Bearer" in response.json()["detail"]
        assert anonymous.get("/healthz").status_code == 200  # probes need no token
    with as_(secured, "ewt_not-a-token") as wrong:
        assert wrong.get("/api/v1/gateways").status_code == 401


def test_a_street_operator_sees_and_commands_only_its_street(
    secured: str, tokens: dict[str, str]
) -> None:
    with as_(secured, tokens["op-a"]) as op_a, as_(secured, tokens["admin"]) as admin:
        assert [g["id"] for g in op_a.get("/api/v1/gateways").json()] == ["gw-a"]
        assert [g["id"] for g in admin.get("/api/v1/gateways").json()] == ["gw-a", "gw-b"]
        other = op_a.get("/api/v1/gateways/gw-b")
        assert other.status_code == 404
        assert "gw-b" in other.json()["detail"]
        ping = {"type": "ping", "deadline_s": 30}
        assert op_a.post("/api/v1/gateways/gw-b/commands", json=ping).status_code == 404
        created = op_a.post("/api/v1/gateways/gw-a/commands", json=ping)
        assert created.status_code == 201, created.text
        assert created.json()["state"] == "queued"
        assert created.json()["actor"] == "operator-jiefangbei"

        entries = admin.get("/api/v1/audit").json()
        assert entries[0]["actor"] == "operator-jiefangbei"
        assert entries[0]["action"] == "command.create"
        assert entries[0]["target"] == "gateway:gw-a"
        assert entries[0]["outcome"] == "queued"
    with as_(secured, tokens["op-b"]) as op_b:
        assert op_b.get("/api/v1/audit").json() == []  # street B sees none of street A's


def test_a_viewer_cannot_command(secured: str, tokens: dict[str, str]) -> None:
    with as_(secured, tokens["viewer-a"]) as viewer:
        assert viewer.get("/api/v1/gateways/gw-a").status_code == 200
        refused = viewer.post("/api/v1/gateways/gw-a/commands", json={"type": "ping"})
        assert refused.status_code == 403
        assert "operator" in refused.json()["detail"]
        assert viewer.put("/api/v1/gateways/gw-a/config", json={"config": {}}).status_code == 403


def test_token_list_and_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tokens: dict[str, str]
) -> None:
    db = str(tmp_path / "controller.db")
    assert cli(["token", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "operator-jiefangbei" in listed
    assert tokens["op-a"] not in listed  # only digests are stored
    assert cli(["token", "revoke", "--name", "operator-jiefangbei", "--db", db]) == 0
    assert cli(["token", "revoke", "--name", "operator-jiefangbei", "--db", db]) == 1
    assert cli(["token", "create", "--role", "viewer", "--place", "Bad//x", "--db", db]) == 2


def test_the_summary_counts_only_the_tokens_place(secured: str, tokens: dict[str, str]) -> None:
    """Regression: a street operator's summary counted every street's gateways."""
    with as_(secured, tokens["op-a"]) as op_a, as_(secured, tokens["admin"]) as admin:
        street = op_a.get("/api/v1/summary").json()
        everything = admin.get("/api/v1/summary").json()
    assert sum(street["gateways"].values()) == 1
    assert sum(everything["gateways"].values()) == 2
    assert street["rejected"] == {}  # controller-wide refusals are for unscoped tokens
