"""A controller with API tokens on two streets, for the console's access tests."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.cli import main as controller_cli
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, birth, config_for, health
from wire.clock import Clock

STREET_A = "cq/yuzhong/jiefangbei"
STREET_B = "cq/yuzhong/chaotianmen"
GATEWAYS = {"gw-a": f"{STREET_A}/grid-1", "gw-b": f"{STREET_B}/grid-1"}


def create_token(db: Path, role: str, place: str | None = None, name: str | None = None) -> str:
    """A token made as an operator makes one: ``edgewatch controller token create``."""
    argv = ["token", "create", "--role", role, "--db", str(db)]
    if place:
        argv += ["--place", place]
    if name:
        argv += ["--name", name]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert controller_cli(argv) == 0
    return out.getvalue().strip()


@dataclass
class Secured:
    controller: Controller
    tokens: dict[str, str]  # admin, op-a (street A operator), viewer-b (street B viewer)
    db: Path

    @property
    def url(self) -> str:
        return self.controller.api_url


@contextlib.contextmanager
def secured_controller(
    tmp_path: Path,
    broker: Mosquitto,
    extra: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> Iterator[Secured]:
    """A controller with ``[api] auth = "tokens"``, gw-a on street A and gw-b on street B
    (and ``clock``, when a test sets the time)."""
    db = tmp_path / "controller.db"
    tokens = {
        "admin": create_token(db, "admin", name="admin"),
        "op-a": create_token(db, "operator", STREET_A, name="op-a"),
        "viewer-b": create_token(db, "viewer", STREET_B, name="viewer-b"),
    }
    config = config_for(tmp_path, broker, gateways=GATEWAYS, auth="tokens", extra=extra)
    with Controller(config, clock=clock) as running:
        wait_until(lambda: running.mqtt_connected, timeout_s=5, message="controller subscribed")
        yield Secured(running, tokens, db)


def bring_online(publisher: Publisher, gateway_ids: list[str]) -> None:
    """Births and a heartbeat, as each gateway's agent would publish them."""
    for gateway_id in gateway_ids:
        publisher.publish(f"edgewatch/v1/{gateway_id}/status", birth(1), retain=True)
        publisher.publish(f"edgewatch/v1/{gateway_id}/health", health(1, 5.0))
