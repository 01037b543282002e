"""A controller with duty rosters from the grid to the city, a JSON webhook receiver and an
SMTP server as its channels, a river risk point in grid 1, and an injected clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import wire
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.clock import FakeClock
from tests.controller.support import Publisher, api, config_for, get_json
from tests.notify.receivers import JsonReceiver, SmtpReceiver

GRID = "cq/yuzhong/jiefangbei/grid-1"
STREET = "cq/yuzhong/jiefangbei"
DISTRICT = "cq/yuzhong"
CITY = "cq"
LINK_SECRET = "a-link-secret-of-at-least-thirty-two-bytes"
RISK_POINT = {
    "id": "jfb-river",
    "name": "Jialing river at Jiefangbei",
    "category": "water_level",
    "place": GRID,
    "stale_after_s": 600,
    "metrics": [
        {
            "device": "gw-jfb.gauge-1",
            "metric": "level_cm",
            "thresholds": {"blue": 100, "yellow": 200, "orange": 300, "red": 400},
            "hold_s": 30,
        }
    ],
}
ALL_WEEK = [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
             "start": "00:00", "end": "00:00"}]  # fmt: skip


def person(pid: str, name: str, *, mail: bool = False) -> dict[str, Any]:
    contacts: list[dict[str, str]] = [{"channel": "hook", "to": pid}]
    if mail:
        contacts.append({"channel": "mail", "to": f"{pid}@example.org"})
    return {"id": pid, "name": name, "contacts": contacts}


def roster(place: str, *people: dict[str, Any], layer: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "place": place,
        "people": list(people),
        "shifts": [{"person": p["id"], **shift} for p in people for shift in ALL_WEEK],
    }
    if layer is not None:
        entry["layer"] = layer
    return entry


ROSTERS = [
    roster(GRID, person("li-wei", "Li Wei", mail=True)),
    roster(STREET, person("zhang-min", "Zhang Min")),
    roster(DISTRICT, person("chen-jie", "Chen Jie")),
    roster(CITY, person("zhao-lei", "Zhao Lei")),
]


def notify_config(hook: JsonReceiver, smtp: SmtpReceiver, **extra: Any) -> dict[str, Any]:
    return {
        "link_secret": LINK_SECRET,
        "allowed_hosts": ["127.0.0.1"],
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "request_timeout_s": 2,
        "channels": [
            {"name": "hook", "kind": "webhook", "url": f"{hook.url}?:to={{to}}"},
            {
                "name": "mail",
                "kind": "email",
                "url": f"mailto://127.0.0.1:{smtp.port}?from=duty@example.org&to={{to}}"
                "&mode=insecure",
            },
        ],
        "routes": [
            {"colours": ["blue"], "layers": ["grid"]},
            {"colours": ["yellow"], "layers": ["grid", "street"]},
            {"colours": ["orange", "red"], "layers": ["grid", "street", "district", "city"]},
        ],
        "rosters": ROSTERS,
        **extra,
    }


@dataclass
class DutyRig:
    controller: Controller
    clock: FakeClock
    hook: JsonReceiver
    smtp: SmtpReceiver
    publisher: Publisher
    client: httpx.Client
    seq: int = 0

    def reading(self, value: float) -> None:
        self.seq += 1
        batch = wire.ReadingBatch(
            session=1,
            readings=[wire.Reading(seq=self.seq, ts_ms=self.clock.wall_ms(), device="gauge-1",
                                   metric="level_cm", value=value, unit="cm")],
        )  # fmt: skip
        self.publisher.publish(wire.topic_for("gw-jfb", wire.TopicKind.READINGS), batch)

    def alert(self, alert_id: int) -> dict[str, Any]:
        found: dict[str, Any] = get_json(self.client, f"/api/v1/alerts/{alert_id}")
        return found

    def notifications(self, alert_id: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = get_json(
            self.client, f"/api/v1/alerts/{alert_id}/notifications"
        )
        return found

    def wait_messages(self, to: str, count: int) -> list[dict[str, Any]]:
        wait_until(
            lambda: len(self.hook.to(to)) >= count,
            timeout_s=10,
            message=lambda: f"{count} message(s) to {to}; has {self.hook.taken()}",
        )
        return self.hook.to(to)

    def trail(self, alert_id: int) -> list[dict[str, Any]]:
        trail: list[dict[str, Any]] = self.alert(alert_id)["trail"]
        return trail


def link_of(message: dict[str, Any]) -> str:
    """The acknowledgement link in a message's text."""
    for word in str(message["message"]).split():
        if "/m/a/" in word:
            return word
    raise AssertionError(f"no link in {message!r}")


@contextmanager
def start_duty_rig(
    tmp_path: Path, mosquitto: Mosquitto, *, notify_extra: dict[str, Any] | None = None
) -> Iterator[DutyRig]:
    clock = FakeClock.from_now(time.time())
    with ExitStack() as stack:
        hook = stack.enter_context(JsonReceiver())
        smtp = stack.enter_context(SmtpReceiver())
        routing = {c: {"tiers": ["street"], "ack_deadline_s": 60}
                   for c in ("blue", "yellow", "orange", "red")}  # fmt: skip
        config = config_for(
            tmp_path,
            mosquitto,
            gateways={"gw-jfb": GRID},
            extra={
                "risk_points": [RISK_POINT],
                "alert_routing": routing,
                "notify": notify_config(hook, smtp, **(notify_extra or {})),
            },
        )
        controller = stack.enter_context(Controller(config, clock=clock))
        publisher = stack.enter_context(Publisher(mosquitto))
        client = stack.enter_context(api(controller.api_url))
        wait_until(lambda: controller.mqtt_connected, timeout_s=5)
        yield DutyRig(controller, clock, hook, smtp, publisher, client)


@pytest.fixture
def duty(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[DutyRig]:
    with start_duty_rig(tmp_path, mosquitto) as rig:
        yield rig
