"""Fixtures for controller tests: a running controller on a private broker, a publisher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, api, config_for


@pytest.fixture
def controller(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Controller]:
    """A controller with no centers, subscribed to the test broker."""
    config = config_for(tmp_path, mosquitto, gateways={"gw-a": "cq/yuzhong/jiefangbei"})
    with Controller(config) as running:
        wait_until(lambda: running.mqtt_connected, timeout_s=5, message="controller subscribed")
        yield running


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    with Publisher(mosquitto) as pub:
        yield pub


@pytest.fixture
def client(controller: Controller) -> Iterator[httpx.Client]:
    with api(controller.api_url) as http:
        yield http
