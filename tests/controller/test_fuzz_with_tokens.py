"""schemathesis over the OpenAPI document against a controller with real tokens (not demo
mode), as an unscoped admin and as a street operator: generated (valid and invalid) input
never makes the API answer 5xx, and a valid token is never answered 401. The demo-mode run
is tests/controller/test_bad_input.py; this one exercises the role and place checks too."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

import wire
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, batch, config_for, make_token

STREET_A = "cq/yuzhong/jiefangbei"
STREET_B = "cq/yuzhong/chaotianmen"
# The alert stream answers by never ending: its authorization is walked in
# test_authorization.py; here it would only wait out the client's timeout per example.
ENDLESS = {("GET", "/api/v1/alerts/stream")}


@pytest.fixture
def secured_api(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[str, dict[str, str]]]:
    db = tmp_path / "controller.db"
    tokens = {
        "admin": make_token(db, capsys, "admin"),
        "operator of street A": make_token(db, capsys, "operator", STREET_A),
    }
    config = config_for(
        tmp_path, mosquitto, gateways={"gw-a": STREET_A, "gw-b": STREET_B}, auth="tokens"
    )
    with Controller(config) as controller, Publisher(mosquitto) as publisher:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5, message="subscribed")
        for gateway in ("gw-a", "gw-b"):
            publisher.publish(wire.topic_for(gateway, wire.TopicKind.READINGS), batch(range(1, 4)))
        yield controller.api_url, tokens


def run_operation(
    operation: schemathesis.APIOperation,  # type: ignore[type-arg]
    url: str,
    who: str,
    token: str,
    wrong: list[str],
    answered: Counter[tuple[str, int]],
) -> None:
    """Generated cases of one operation, called with ``token``; 5xx and 401 are wrong."""
    headers = {"Authorization": f"Bearer {token}"}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=6,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        response = case.call(base_url=url, headers=headers, timeout=10)
        answered[who, response.status_code] += 1
        if response.status_code >= 500 or response.status_code == 401:
            wrong.append(
                f"{who}: {case.method} {case.formatted_path} -> {response.status_code}:"
                f" {response.text[:200]}"
            )

    call()


def test_no_input_from_a_real_token_makes_the_api_answer_5xx(
    secured_api: tuple[str, dict[str, str]],
) -> None:
    url, tokens = secured_api
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    wrong: list[str] = []
    answered: Counter[tuple[str, int]] = Counter()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if (operation.method.upper(), operation.path) in ENDLESS:
            continue
        operations += 1
        for who, token in tokens.items():
            run_operation(operation, url, who, token, wrong, answered)
    assert operations >= 35
    assert wrong == []
    for who in tokens:  # the tokens opened doors: not everything was refused
        assert answered[who, 200] > operations // 2, answered
