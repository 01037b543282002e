"""Forwarding to reference tier centers over real HTTP, routed by place."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import wire
from controller.config import CenterConfig, Tier
from controller.forwarding.routing import Router, place_contains
from controller.service import Controller
from edgewatch.broker import Mosquitto, free_port
from edgewatch.center import ReferenceCenter
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, api, batch, config_for, get_json

PLACES = {
    "gw-jfb": "cq/yuzhong/jiefangbei/grid-1",  # street, district and city
    "gw-yz": "cq/yuzhong/shangqingsi",  # district and city
    "gw-jb": "cq/jiangbei/guanyinqiao",  # city only
}


def center_entry(name: str, tier: str, place: str, url: str) -> dict[str, str]:
    return {"name": name, "tier": tier, "place": place, "url": url}


@pytest.fixture
def centers() -> Iterator[dict[str, ReferenceCenter]]:
    with ExitStack() as stack:
        yield {
            tier: stack.enter_context(ReferenceCenter(f"{tier}-center", tier))
            for tier in ("city", "district", "street")
        }


def test_place_contains_is_by_whole_levels() -> None:
    assert place_contains("cq", "cq/yuzhong")
    assert place_contains("cq/yuzhong", "cq/yuzhong")
    assert not place_contains("cq/yu", "cq/yuzhong")
    assert not place_contains("cq/yuzhong/a", "cq/yuzhong")


def test_readings_reach_the_centers_whose_place_contains_the_gateway(
    tmp_path: Path, mosquitto: Mosquitto, centers: dict[str, ReferenceCenter]
) -> None:
    places = {"city": "cq", "district": "cq/yuzhong", "street": "cq/yuzhong/jiefangbei"}
    config = config_for(
        tmp_path,
        mosquitto,
        gateways=PLACES,
        centers=[center_entry(c.name, t, places[t], c.url) for t, c in centers.items()],
    )
    with Controller(config) as controller, Publisher(mosquitto) as publisher:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5)
        sent: dict[str, range] = {}
        for offset, gateway in enumerate([*PLACES, "gw-unplaced"]):
            sent[gateway] = range(offset * 10 + 1, offset * 10 + 4)
            publisher.publish(
                wire.topic_for(gateway, wire.TopicKind.READINGS), batch(sent[gateway])
            )
        expected = {
            "city": {"gw-jfb", "gw-yz", "gw-jb", "gw-unplaced"},  # unplaced: city tier only
            "district": {"gw-jfb", "gw-yz"},
            "street": {"gw-jfb"},
        }
        for tier, gateways in expected.items():
            wanted = {(g, seq) for g, seqs in sent.items() if g in gateways for seq in seqs}
            center = centers[tier]
            wait_until(
                functools.partial(lambda c, w: c.seqs() == w, center, wanted),
                timeout_s=5,
                message=f"{tier} center to receive {len(wanted)} readings",
            )
        with api(controller.api_url) as client:
            wait_until(
                lambda: all(c["queued"] == 0 for c in get_json(client, "/api/v1/centers")),
                timeout_s=5,
            )
            summary = get_json(client, "/api/v1/summary")
    assert summary["centers"]["city-center"] == {
        "tier": "city",
        "delivered": 12,
        "queued": 0,
        "lag_s": 0.0,
    }
    assert summary["centers"]["street-center"]["delivered"] == 3
    reading = centers["street"].received()["last"][0]
    assert reading == {
        "gateway": "gw-jfb",
        "device": "gauge-1",
        "metric": "level_cm",
        "value": pytest.approx(100.1),
        "unit": "cm",
        "quality": "good",
        "seq": 1,
        "ts_ms": 1_700_000_000_000 + 1000,
    }


def test_a_center_that_is_down_gets_everything_when_it_comes_back(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    port = free_port()
    down = ReferenceCenter("street-center", "street", port=port)
    with ReferenceCenter("city-center", "city") as city:
        config = config_for(
            tmp_path,
            mosquitto,
            gateways={"gw-jfb": PLACES["gw-jfb"]},
            centers=[
                center_entry("city-center", "city", "cq", city.url),
                center_entry(
                    "street-center",
                    "street",
                    "cq/yuzhong/jiefangbei",
                    f"http://127.0.0.1:{port}/ingest",
                ),
            ],
        )
        topic = wire.topic_for("gw-jfb", wire.TopicKind.READINGS)
        with (
            Controller(config) as controller,
            Publisher(mosquitto) as publisher,
            api(controller.api_url) as client,
        ):
            wait_until(lambda: controller.mqtt_connected, timeout_s=5)
            for start in range(1, 50, 10):
                publisher.publish(topic, batch(range(start, start + 10)))

            def street() -> dict[str, Any]:
                by_name = {c["name"]: c for c in get_json(client, "/api/v1/centers")}
                result: dict[str, Any] = by_name["street-center"]
                return result

            # The city is not held up by the street center being down.
            wait_until(lambda: len(city.seqs()) == 50, timeout_s=5)
            wait_until(lambda: street()["failed_attempts"] >= 2, timeout_s=5)
            assert street()["queued"] == 50
            assert street()["last_error"]
            with down:
                wait_until(lambda: len(down.seqs()) == 50, timeout_s=10)
                wait_until(lambda: street()["queued"] == 0, timeout_s=5)
            assert down.seqs() == {("gw-jfb", seq) for seq in range(1, 51)}
            assert street()["delivered"] == 50
            assert street()["last_error"] is None


def test_router_sends_unplaced_gateways_to_city_centers_only() -> None:
    centers = [
        CenterConfig(name="a", tier=Tier.CITY, place="cq", url="http://x/ingest"),
        CenterConfig(name="b", tier=Tier.DISTRICT, place="cq/yuzhong", url="http://x/ingest"),
        CenterConfig(name="c", tier=Tier.CITY, place="sh", url="http://x/ingest"),
    ]
    router = Router(centers, {"gw-1": "cq/yuzhong/x"})
    assert router.centers_for("gw-1") == ("a", "b")
    assert router.centers_for("gw-unknown") == ("a", "c")


def test_retries_reuse_the_idempotency_key(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with ReferenceCenter("c", "city") as center:
        center.fail_next_posts(2)
        config = config_for(
            tmp_path, mosquitto, centers=[center_entry("c", "city", "cq", center.url)]
        )
        with Controller(config) as controller, Publisher(mosquitto) as publisher:
            wait_until(lambda: controller.mqtt_connected, timeout_s=5)
            publisher.publish(wire.topic_for("gw-x", wire.TopicKind.READINGS), batch([1, 2]))
            wait_until(lambda: len(center.seqs()) == 2, timeout_s=5)
            assert controller.outboxes.centers["c"].failed_attempts == 2
    keys = center.post_keys
    assert len(keys) == 3
    assert keys[0] == keys[1] == keys[2]
    assert keys[0]


def test_batches_after_a_drained_outbox_get_fresh_idempotency_keys(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Regression: outbox ids were reused once the table emptied, so a center took the next
    batch for a duplicate of the first and dropped it."""
    with ReferenceCenter("c", "city") as center:
        config = config_for(
            tmp_path, mosquitto, centers=[center_entry("c", "city", "cq", center.url)]
        )
        topic = wire.topic_for("gw-x", wire.TopicKind.READINGS)
        with Controller(config) as controller, Publisher(mosquitto) as publisher:
            wait_until(lambda: controller.mqtt_connected, timeout_s=5)
            for first in (1, 3, 5):
                publisher.publish(topic, batch([first, first + 1]))

                def all_arrived(count: int = first + 1) -> bool:
                    return len(center.seqs()) == count

                wait_until(all_arrived, timeout_s=5)
    assert center.seqs() == {("gw-x", seq) for seq in range(1, 7)}
    assert center.duplicates == 0
    assert len(set(center.post_keys)) == len(center.post_keys)
