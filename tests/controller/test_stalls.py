"""Nothing a gateway sends stalls ingest for the others (issue 11).

Every message is acknowledged exactly once, whatever becomes of it: a broker keeps at most
``max_inflight_messages`` (mosquitto's default: 20) un-acknowledged messages in flight to a
session, and the live session, which carries the alerts, receives nothing more once they
are all held. These tests run a broker with that default, publish each poison more times
than that, and check that valid batches of the same and of another gateway are stored.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wire
from controller.fleet.ingest import Rejections, Unacked
from controller.fleet.once import DEFAULT_CAPACITY, LoggedOnce, quoted
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import (
    CommandListener,
    Publisher,
    api,
    batch,
    config_for,
    get_json,
    health,
)

# mosquitto's own default (the test broker's base config says 100).
INFLIGHT = 20
POISON_COPIES = INFLIGHT + 5
PLACES = {"gw-a": "cq/yuzhong/jiefangbei", "gw-b": "cq/yuzhong/jiefangbei"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", extra_config=f"max_inflight_messages {INFLIGHT}") as b:
        yield b


def start(
    tmp_path: Path, broker: Mosquitto, gaps: dict[str, float] | None = None, **mqtt: Any
) -> Controller:
    config = config_for(tmp_path, broker, gateways=PLACES, extra={"gaps": gaps or {}})
    if mqtt:
        config = config.model_copy(update={"mqtt": config.mqtt.model_copy(update=mqtt)})
    controller = Controller(config)
    controller.start()
    wait_until(lambda: controller.mqtt_connected, timeout_s=10, message="controller subscribed")
    return controller


def topic(gateway: str, kind: wire.TopicKind) -> str:
    return wire.topic_for(gateway, kind)


def raw_batch(**reading: Any) -> bytes:
    """A readings batch as a sender may write it: json.dumps writes NaN and Infinity."""
    fields = {"seq": 1, "ts_ms": 1_700_000_000_000, "device": "gauge-1", "metric": "level_cm",
              "value": 1.0, "unit": "cm", "quality": "good", **reading}  # fmt: skip
    session = fields.pop("session", 1)
    return json.dumps({"v": 1, "session": session, "readings": [fields]}).encode()


def raw_health(**fields: Any) -> bytes:
    document = json.loads(wire.encode(health(1, 5.0)))
    for path, value in fields.items():
        node = document
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return json.dumps(document).encode()


# (what, kind, payload, reason it is counted under)
POISONS: list[tuple[str, wire.TopicKind, bytes, str]] = [
    ("seq 2**63", wire.TopicKind.READINGS, raw_batch(seq=2**63), "out_of_range"),
    ("seq 2**64", wire.TopicKind.BACKLOG, raw_batch(seq=2**64), "out_of_range"),
    ("ts_ms 2**63", wire.TopicKind.READINGS, raw_batch(ts_ms=2**63), "out_of_range"),
    ("session 2**63", wire.TopicKind.READINGS, raw_batch(session=2**63), "out_of_range"),
    ("NaN value", wire.TopicKind.READINGS, raw_batch(value=float("nan")), "not_finite"),
    ("Infinity value", wire.TopicKind.BACKLOG, raw_batch(value=float("inf")), "not_finite"),
    ("-Infinity value", wire.TopicKind.READINGS, raw_batch(value=float("-inf")), "not_finite"),
    (
        "bad device key",
        wire.TopicKind.HEALTH,
        raw_health(devices={"no spaces allowed": {"state": "ok"}}),
        "invalid",
    ),
    (
        "NaN heartbeat interval",
        wire.TopicKind.HEALTH,
        raw_health(heartbeat_interval_s=float("nan")),
        "not_finite",
    ),
    (
        "Infinity in an extra",
        wire.TopicKind.HEALTH,
        raw_health(disk_free_bytes=float("-inf")),
        "not_finite",
    ),
    ("huge counter", wire.TopicKind.HEALTH, raw_health(buffer_rows=2**63), "out_of_range"),
    (
        "huge status session",
        wire.TopicKind.STATUS,
        json.dumps({"v": 1, "state": "online", "session": 2**63}).encode(),
        "out_of_range",
    ),
]


def test_each_poison_is_refused_and_valid_batches_of_every_gateway_are_stored(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    controller = start(tmp_path, broker)
    try:
        with Publisher(broker) as publisher, api(controller.api_url) as client:
            for _, kind, payload, _ in POISONS:
                for _ in range(POISON_COPIES):
                    publisher.publish(topic("gw-a", kind), payload)
            oversized = b" " * (wire.MAX_PAYLOAD_BYTES + 1)  # the broker drops it
            publisher.publish(topic("gw-a", wire.TopicKind.READINGS), oversized)
            for gateway in ("gw-a", "gw-b"):
                publisher.publish(topic(gateway, wire.TopicKind.READINGS), batch(range(1, 51)))
                publisher.publish(topic(gateway, wire.TopicKind.BACKLOG), batch(range(51, 101)))
            wait_until(
                lambda: get_json(client, "/api/v1/summary")["readings_stored"] == 200,
                timeout_s=15,
                message="every valid reading of both gateways stored",
            )
            expected: dict[str, int] = {}
            for _, _, _, reason in POISONS:
                expected[reason] = expected.get(reason, 0) + POISON_COPIES
            wait_until(lambda: controller.rejections.counts() == expected, timeout_s=10)
            readings = get_json(client, "/api/v1/devices/gw-a.gauge-1/readings")["readings"]
            assert all(r["value"] is not None for r in readings)  # no NaN stored as null
            assert controller.readiness().ready
    finally:
        controller.stop()
    logged = [r.getMessage() for r in caplog.records if "rejected a message" in r.getMessage()]
    assert len(logged) == len({reason for *_, reason in POISONS})  # once per gateway, reason
    assert all("from gw-a" in line for line in logged)


def curse(db: Path, device: str) -> None:
    """A constraint of the controller's own database that one batch breaks: the store
    cannot write it, whatever the contract allowed."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            f"CREATE TRIGGER cursed BEFORE INSERT ON readings WHEN NEW.device = '{device}'"
            " BEGIN SELECT RAISE(ABORT, 'cursed device'); END"
        )


def test_a_batch_the_store_cannot_write_is_acked_counted_and_asked_for_again(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    controller = start(tmp_path, broker, gaps={"reorder_wait_s": 0.2})
    curse(controller.config.storage.path, "cursed")
    listener = CommandListener(broker, "gw-a")
    try:
        with Publisher(broker) as publisher, api(controller.api_url) as client:
            readings = topic("gw-a", wire.TopicKind.READINGS)
            publisher.publish(readings, batch(range(1, 11)))
            for n in range(POISON_COPIES):  # seqs 11 .. 35, one batch each
                publisher.publish(readings, batch([11 + n], device="cursed"))
            publisher.publish(readings, batch(range(36, 46)))
            publisher.publish(topic("gw-b", wire.TopicKind.READINGS), batch(range(1, 11)))
            wait_until(
                lambda: get_json(client, "/api/v1/summary")["readings_stored"] == 30,
                timeout_s=15,
                message="the valid batches around the cursed ones stored",
            )
            assert controller.rejections.counts() == {"store_failed": POISON_COPIES}
            assert controller.unacked.count() == 0
            # The gap tracker asks for the seqs the store could not write...
            wait_until(
                lambda: (
                    set(range(11, 36))
                    <= {s for lo, hi in listener.replays() for s in range(lo, hi + 1)}
                ),
                timeout_s=10,
                message="replays asked for the seqs the store lost",
            )
            # ...and once the store takes them, the replay fills the gap.
            with sqlite3.connect(controller.config.storage.path) as conn:
                conn.execute("DROP TRIGGER cursed")
            backlog = topic("gw-a", wire.TopicKind.BACKLOG)
            publisher.publish(backlog, batch(range(11, 36), device="cursed"))
            wait_until(
                lambda: get_json(client, "/api/v1/summary")["readings_stored"] == 55,
                timeout_s=10,
            )
    finally:
        listener.close()
        controller.stop()
    logged = [r.getMessage() for r in caplog.records if "store_failed" in r.getMessage()]
    assert len(logged) == 1
    assert "cursed device" in logged[0]


def test_readyz_is_not_ready_while_a_message_waits_for_the_store(
    tmp_path: Path, broker: Mosquitto
) -> None:
    controller = start(tmp_path, broker, unacked_max_age_s=0.3)
    release = threading.Event()
    try:
        with Publisher(broker) as publisher, api(controller.api_url) as client:
            assert client.get("/readyz").status_code == 200
            stalled = controller.store.submit(lambda db: release.wait(30))  # the writer stalls
            publisher.publish(topic("gw-a", wire.TopicKind.READINGS), batch(range(1, 6)))
            wait_until(
                lambda: client.get("/readyz").status_code == 503,
                timeout_s=10,
                message="not ready while the batch waits",
            )
            body = client.get("/readyz").json()
            assert (body["ready"], body["ingest"], body["broker"]) == (False, False, True)
            assert body["detail"].startswith("ingest: a message has waited")
            assert "limit 0.3 s" in body["detail"]
            release.set()
            stalled.result(timeout=10)
            wait_until(lambda: client.get("/readyz").status_code == 200, timeout_s=10)
            assert get_json(client, "/api/v1/summary")["readings_stored"] == 5
    finally:
        release.set()
        controller.stop()


def test_unacked_ages_with_the_oldest_message() -> None:
    now = [100.0]
    unacked = Unacked(monotonic=lambda: now[0])
    assert unacked.oldest_age_s() == 0.0
    first = unacked.hold()
    now[0] += 2
    second = unacked.hold()
    now[0] += 1
    assert (unacked.count(), unacked.oldest_age_s()) == (2, 3.0)
    unacked.release(first)
    assert (unacked.count(), unacked.oldest_age_s()) == (1, 1.0)
    unacked.release(second)
    unacked.release(second)  # twice: no harm
    assert (unacked.count(), unacked.oldest_age_s()) == (0, 0.0)


# -- the memory of what was logged is bounded -------------------------------------------------


def test_logged_once_remembers_a_bounded_number_of_keys() -> None:
    once = LoggedOnce(capacity=3)
    assert [once.first(k) for k in "abca"] == [True, True, True, False]
    assert once.first("d")  # forgets the least recently seen: b
    assert len(once) == 3
    assert not once.first("a")
    assert once.first("b")
    assert quoted("x" * 100, 10) == "x" * 10 + "..."


def test_rejections_from_made_up_gateways_cost_bounded_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rejections = Rejections()
    with caplog.at_level(logging.WARNING):
        for n in range(DEFAULT_CAPACITY * 3):
            rejections.reject(f"made-up-{n}", "unknown_topic", "x", "t")
        rejections.reject("made-up-" + "x" * 10_000, "unknown_topic", "y" * 10_000, "t" * 10_000)
    assert rejections.counts() == {"unknown_topic": DEFAULT_CAPACITY * 3 + 1}
    assert rejections.remembered <= DEFAULT_CAPACITY
    assert max(len(r.getMessage()) for r in caplog.records) < 1000  # quoted, not echoed


def test_answers_to_unknown_commands_cost_bounded_memory(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    controller = start(tmp_path, broker)
    try:
        for n in range(DEFAULT_CAPACITY * 2):
            controller.commands.on_result(
                "gw-a", wire.CommandResult(id=f"never-sent-{n}", outcome="succeeded")
            )
        controller.store.call(lambda db: None)  # the writer has handled them all
        assert controller.commands.unknown_remembered <= DEFAULT_CAPACITY
    finally:
        controller.stop()
    unknown = [r for r in caplog.records if "unknown command" in r.getMessage()]
    assert len(unknown) == DEFAULT_CAPACITY * 2  # each logged once: all were new


def test_a_stale_status_is_logged_once_in_bounded_memory(tmp_path: Path, broker: Mosquitto) -> None:
    controller = start(tmp_path, broker)
    try:
        with Publisher(broker) as publisher, api(controller.api_url) as client:
            status = topic("gw-a", wire.TopicKind.STATUS)
            publisher.publish(status, wire.Status(state=wire.GatewayState.ONLINE, session=10**6))
            wait_until(
                lambda: get_json(client, "/api/v1/gateways/gw-a")["state"] == "online",
                timeout_s=10,
            )
        for session in range(DEFAULT_CAPACITY * 2):
            controller.fleet.on_status(
                "gw-a", wire.Status(state=wire.GatewayState.OFFLINE, session=session)
            )
        assert controller.fleet.stale_remembered <= DEFAULT_CAPACITY
    finally:
        controller.stop()
