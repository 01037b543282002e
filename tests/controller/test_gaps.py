"""Gap detection: missing seqs are asked for again (replay), filled or recorded unfillable."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import wire
from controller.config import GapsConfig
from controller.fleet.gaps import GapDetector, seq_runs
from controller.service import Controller
from controller.store.sqlite import Store
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.clock import FakeClock
from tests.controller.support import (
    CommandListener,
    Publisher,
    api,
    batch,
    config_for,
    get_json,
)

GAPS = GapsConfig(reorder_wait_s=1.0, replay_timeout_s=5.0, max_attempts=2)


class Asks:
    """Records the replay commands a detector publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, wire.CommandRequest]] = []

    def __call__(self, topic: str, payload: bytes) -> bool:
        self.sent.append((topic, wire.decode(wire.CommandRequest, payload)))
        return True

    def ranges(self) -> list[tuple[int, int]]:
        return [(r.args["from_seq"], r.args["to_seq"]) for _, r in self.sent]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "controller.db") as running:
        yield running


def detector(store: Store, clock: FakeClock, asks: Asks) -> GapDetector:
    gaps = GapDetector(store, asks, clock, GAPS)
    gaps.start()
    return gaps


def gap_rows(store: Store) -> list[dict[str, Any]]:
    return store.read(lambda c: [dict(r) for r in c.execute("SELECT * FROM gaps ORDER BY id")])


def test_seq_runs() -> None:
    assert seq_runs([3, 1, 2, 7, 8, 8, 10]) == [(1, 3), (7, 8), (10, 10)]


def test_a_gap_waits_the_reorder_time_then_is_asked_for_and_filled(store: Store) -> None:
    clock, asks = FakeClock(), Asks()
    gaps = detector(store, clock, asks)
    try:
        gaps.observe("gw-a", list(range(1, 6)))
        gaps.observe("gw-a", [9, 10])
        gaps.check()
        assert asks.sent == []  # within the reorder wait
        clock.now_s += 1.5
        gaps.check()
        assert asks.ranges() == [(6, 8)]
        topic, request = asks.sent[0]
        assert topic == f"edgewatch/v1/gw-a/cmd/{request.id}"
        assert request.type == "replay"

        gaps.observe("gw-a", [6, 7])
        gaps.observe("gw-a", [8])
        wait_until(lambda: gap_rows(store)[0]["state"] == "filled", timeout_s=5)
    finally:
        gaps.stop()
    row = gap_rows(store)[0]
    assert (row["from_seq"], row["to_seq"], row["missing"], row["attempts"]) == (6, 8, 0, 1)


def test_a_gap_nobody_fills_is_asked_again_then_recorded_unfillable(store: Store) -> None:
    clock, asks = FakeClock(), Asks()
    gaps = detector(store, clock, asks)
    try:
        gaps.observe("gw-a", [1, 2, 3, 10])
        gaps.observe("gw-a", [5])  # part of the gap arrives late
        clock.now_s += 1.5
        gaps.check()
        clock.now_s += 5.0
        gaps.check()
        clock.now_s += 5.0
        gaps.check()
        assert asks.ranges() == [(4, 9), (4, 9)]
        wait_until(lambda: gap_rows(store)[0]["state"] == "unfillable", timeout_s=5)
        gaps.observe("gw-a", [11])
        clock.now_s += 20
        gaps.check()
        assert len(asks.sent) == 2  # no longer tracked
    finally:
        gaps.stop()
    row = gap_rows(store)[0]
    assert row["missing"] == 5
    assert row["ranges"] == "[[4, 4], [6, 9]]"
    assert "5 seqs not replayed after 2 asks" in row["detail"]


def test_only_what_the_gateway_no_longer_holds_unsent_is_asked_for(store: Store) -> None:
    """After an outage the live lane runs ahead of the backlog: rows the agent still has
    unsent are on their way and are not asked for."""
    clock, asks = FakeClock(), Asks()
    gaps = detector(store, clock, asks)
    try:
        gaps.observe("gw-a", [1, 2])
        gaps.observe("gw-a", [100])
        clock.now_s += 1.5
        health = wire.Health.model_validate(
            {**_health_fields(), "first_unsent_seq": 3}  # 3..99 still unsent at the agent
        )
        gaps.on_health("gw-a", health)
        gaps.check()
        assert asks.sent == []
        gaps.on_health(
            "gw-a", wire.Health.model_validate({**_health_fields(), "first_unsent_seq": 50})
        )
        gaps.check()
        assert asks.ranges() == [(3, 49)]
    finally:
        gaps.stop()


def _health_fields() -> dict[str, Any]:
    return {
        "session": 1,
        "ts_ms": 1,
        "uptime_s": 1.0,
        "heartbeat_interval_s": 1.0,
        "buffer_rows": 0,
        "buffer_bytes": 0,
        "oldest_unsent_age_s": 0.0,
        "last_seq": 100,
    }


GapRig = tuple[Controller, Publisher, CommandListener]


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[GapRig]:
    """A controller that asks for a gap of gw-a 0.2 s after it opens; gw-a's publisher and
    a listener to its commands."""
    config = config_for(tmp_path, mosquitto, gateways={"gw-a": "cq/yuzhong/jiefangbei"})
    config = config.model_copy(update={"gaps": GapsConfig(reorder_wait_s=0.2)})
    listener = CommandListener(mosquitto, "gw-a")
    try:
        with Controller(config) as controller, Publisher(mosquitto) as publisher:
            wait_until(lambda: controller.mqtt_connected, timeout_s=5)
            yield controller, publisher, listener
    finally:
        listener.close()


def asked_for_4_to_6(publisher: Publisher, listener: CommandListener) -> wire.CommandRequest:
    readings = wire.topic_for("gw-a", wire.TopicKind.READINGS)
    publisher.publish(readings, batch(range(1, 4)))
    publisher.publish(readings, batch([7, 8]))
    request: wire.CommandRequest = wait_until(lambda: listener.requests, timeout_s=5)[0]
    return request


def test_the_controller_asks_the_gateway_over_mqtt_and_shows_gaps_in_the_api(rig: GapRig) -> None:
    controller, publisher, listener = rig
    client: httpx.Client
    with api(controller.api_url) as client:
        request = asked_for_4_to_6(publisher, listener)
        assert request.type == "replay"
        assert request.args == {"from_seq": 4, "to_seq": 6}

        gaps = get_json(client, "/api/v1/gateways/gw-a/gaps")
        assert [(g["from_seq"], g["to_seq"]) for g in gaps] == [(4, 6)]
        assert gaps[0]["state"] == "requested"

        backlog = wire.topic_for("gw-a", wire.TopicKind.BACKLOG)
        publisher.publish(backlog, batch(range(4, 7)))
        wait_until(
            lambda: get_json(client, "/api/v1/gateways/gw-a/gaps")[0]["state"] == "filled",
            timeout_s=5,
        )
        assert client.get("/api/v1/gateways/gw-nope/gaps").status_code == 404


# -- the contract's limits, and one bad message ----------------------------------------------


def replay_args(asks: Asks) -> list[wire.ReplayArgs]:
    """Every ask, validated as the agent validates it: none may break the contract."""
    return [wire.ReplayArgs.model_validate(request.args) for _, request in asks.sent]


def test_a_gap_wider_than_one_replay_is_asked_for_in_parts(store: Store) -> None:
    clock, asks = FakeClock(), Asks()
    gaps = detector(store, clock, asks)
    span = wire.MAX_REPLAY_SPAN
    try:
        gaps.observe("gw-a", [1])
        # The gateway says it got that far (a long outage, its buffer evicted on the way).
        gaps.on_health(
            "gw-a", wire.Health.model_validate({**_health_fields(), "last_seq": 2 * span})
        )
        gaps.observe("gw-a", [2 * span])  # a gap of 2 * span - 2 seqs
        clock.now_s += 1.5
        gaps.check()
        assert asks.ranges() == [(2, span + 1)]
        gaps.observe("gw-a", list(range(2, 2 + span)))  # the first part comes back
        clock.now_s += 5.0
        gaps.check()
        assert asks.ranges()[-1] == (span + 2, 2 * span - 1)
        assert all(a.to_seq - a.from_seq < span for a in replay_args(asks))
    finally:
        gaps.stop()


def test_a_seq_beyond_belief_does_not_poison_the_gap_state(store: Store) -> None:
    """One message with an absurd (valid) seq opens no gap of billions and hides no later
    gap; a heartbeat that vouches for a jump lets it in."""
    clock, asks = FakeClock(), Asks()
    gaps = detector(store, clock, asks)
    try:
        gaps.observe("gw-a", [1, 2, 3])
        gaps.observe("gw-a", [wire.MAX_SEQ])  # the poison: stored, but not believed
        gaps.observe("gw-a", [4, 5, 9])  # a real gap: 6..8
        clock.now_s += 1.5
        gaps.check()
        assert asks.ranges() == [(6, 8)]
        assert [(r["from_seq"], r["to_seq"]) for r in gap_rows(store)] == [(6, 8)]

        far = 10 + 2 * wire.MAX_REPLAY_SPAN
        gaps.observe("gw-a", [far, far + 1])  # held: beyond belief...
        gaps.on_health(
            "gw-a", wire.Health.model_validate({**_health_fields(), "last_seq": far + 1})
        )  # ...until the gateway's own heartbeat says it got that far
        clock.now_s += 1.5
        gaps.check()
        assert [(r["from_seq"], r["to_seq"]) for r in gap_rows(store)][-1] == (10, far - 1)
        assert all(a.to_seq - a.from_seq < wire.MAX_REPLAY_SPAN for a in replay_args(asks))
    finally:
        gaps.stop()


def test_seqs_the_store_could_not_write_are_asked_for_again(store: Store) -> None:
    clock, asks = FakeClock(), Asks()
    gaps = detector(store, clock, asks)
    try:
        gaps.observe("gw-a", list(range(1, 21)))
        gaps.lost("gw-a", [8, 9, 10, 15])  # the store gave up on a batch holding these
        gaps.check()
        clock.now_s += 1.5
        gaps.check()
        assert sorted(asks.ranges()) == [(8, 10), (15, 15)]
        gaps.observe("gw-a", [8, 9, 10, 15])  # the replay
        wait_until(lambda: {r["state"] for r in gap_rows(store)} == {"filled"}, timeout_s=5)
    finally:
        gaps.stop()


def test_answers_to_its_own_replays_are_recognised_not_logged_as_unknown(
    rig: GapRig, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11: the controller logged 'gateway gw-small answered unknown command replay-...'
    about the replays it had asked for itself."""
    caplog.set_level(logging.INFO, logger="controller.fleet.gaps")
    _, agent, listener = rig
    request = asked_for_4_to_6(agent, listener)
    result_topic = wire.topic_for("gw-a", wire.TopicKind.CMD_RESULT, request.id)
    for outcome in ("accepted", "succeeded"):
        agent.publish(
            result_topic,
            wire.CommandResult(
                id=request.id, outcome=outcome, detail='{"replayed": 3, "unavailable": 0}'
            ),
        )
    stranger = wire.topic_for("gw-a", wire.TopicKind.CMD_RESULT, "c-never-sent")
    agent.publish(stranger, wire.CommandResult(id="c-never-sent", outcome="succeeded"))
    wait_until(
        lambda: any("c-never-sent" in r.getMessage() for r in caplog.records),
        timeout_s=5,
        message="the unknown command logged",
    )
    unknown = [r.getMessage() for r in caplog.records if "unknown command" in r.getMessage()]
    assert unknown == ["gateway gw-a answered unknown command c-never-sent"]
    assert any("replay of seqs 4..6 done" in r.getMessage() for r in caplog.records)
