"""What the controller will not run with outside demo mode: unsigned or plain-HTTP centers off
loopback, plain or anonymous MQTT off loopback, a plain-HTTP API off loopback; each unless
the config says so explicitly, each refusal naming the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from controller.config import parse_config
from controller.refusals import refusal
from controller.service import Controller, StartupRefusedError
from edgewatch.broker import Mosquitto
from tests.controller.support import config_for, make_token

SECRET = "a-long-random-shared-secret"


def center(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "city", "tier": "city", "place": "cq", "url": url, **extra}


def problems(data: dict[str, Any], auth: str = "tokens") -> list[str]:
    found = refusal(parse_config({"api": {"auth": auth}, **data}), active_tokens=1)
    return [] if found is None else found.splitlines()


def test_every_center_needs_a_secret_outside_demo_mode() -> None:
    unsigned = {"centers": [center("http://127.0.0.1:9001/ingest")]}
    assert problems(unsigned) == [
        "centers[0] ('city').secret: required outside demo mode: the center checks every"
        " webhook's signature with it (wire.webhook)"
    ]
    assert problems(unsigned, auth="demo") == []
    assert problems({"centers": [center("http://127.0.0.1:9001/ingest", secret=SECRET)]}) == []


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://10.20.30.40/ingest", True),
        ("http://city-center.example/ingest", True),
        ("http://[::1]:9001/ingest", False),
        ("http://localhost:9001/ingest", False),
        ("https://10.20.30.40/ingest", False),
    ],
)
def test_plain_http_to_a_center_off_loopback_needs_saying_so(url: str, refused: bool) -> None:
    found = problems({"centers": [center(url, secret=SECRET)]})
    assert bool(found) is refused
    if refused:
        assert found[0].startswith("centers[0] ('city').url: plain http:// to ")
        assert "allow_plain_http = true" in found[0]
    allowed = problems({"centers": [center(url, secret=SECRET, allow_plain_http=True)]})
    assert allowed == []


def test_mqtt_off_loopback_needs_tls_and_a_login_unless_said() -> None:
    far = {"host": "10.20.30.40"}
    found = problems({"mqtt": far})
    assert len(found) == 2
    assert found[0].startswith("mqtt.host = '10.20.30.40' is not on loopback and mqtt.tls_ca_file")
    assert "mqtt.allow_plain_mqtt = true" in found[0]
    assert "logs in anonymously" in found[1]
    assert "mqtt.allow_anonymous = true" in found[1]
    said = {**far, "allow_plain_mqtt": True, "allow_anonymous": True}
    assert problems({"mqtt": said}) == []
    login = {**far, "username": "ctl", "password": "a-real-password-1", "tls_ca_file": "ca.pem"}
    assert problems({"mqtt": login}) == []
    assert problems({"mqtt": far}, auth="demo") == []  # the demo's own broker
    assert problems({"mqtt": {"host": "127.0.0.1"}}) == []


def test_a_plain_http_api_off_loopback_needs_tls_or_saying_so() -> None:
    found = problems({"http": {"host": "0.0.0.0"}})
    assert len(found) == 1
    assert found[0].startswith("http.host = '0.0.0.0' would serve API tokens over plain HTTP")
    tls = {"host": "0.0.0.0", "tls_cert_file": "api.pem", "tls_key_file": "api.key"}
    assert problems({"http": tls}) == []
    assert problems({"http": {"host": "0.0.0.0", "allow_plain_http": True}}) == []


def test_the_controller_says_every_refusal_at_once_and_starts_nothing(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    make_token(tmp_path / "controller.db", capsys, "admin")
    config = config_for(
        tmp_path,
        mosquitto,
        auth="tokens",
        centers=[center("http://10.20.30.40/ingest")],
    )
    with pytest.raises(StartupRefusedError) as refused:
        Controller(config).start()
    message = str(refused.value)
    assert message.startswith("edgewatch controller refuses to start: ")
    assert "centers[0] ('city').secret: required" in message
    assert "centers[0] ('city').url: plain http://" in message


def test_the_deployment_guides_example_starts() -> None:
    """docs/deployment.md's controller config is one the refusals let through."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    (example,) = re.findall(r"```toml\n(.*?)```", page, flags=re.S)
    config = parse_config(tomllib.loads(example))
    assert config.http.tls
    assert refusal(config, active_tokens=1) is None
    assert refusal(config, active_tokens=0) is not None
