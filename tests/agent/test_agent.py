"""The agent end to end: simulated gauge on a real pty -> SQLite buffer -> real mosquitto."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agent.agent import Agent
from agent.buffer.store import Buffer
from agent.config import AgentConfig, parse_config
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from firmware_sim.bus import SimulatedBus
from firmware_sim.device import Faults
from tests.agent.conftest import GATEWAY_ID, WAIT_S, Recorder, agent_toml
from wire import (
    Colour,
    EdgeAlert,
    GatewayState,
    Health,
    Quality,
    Reading,
    ReadingBatch,
    Status,
    TopicKind,
)
from wire.risk import Category, MetricRule, RiskPointRules, RuleSet, Thresholds


def gauge_config(tmp_path: Path, broker: Mosquitto, bus: SimulatedBus) -> AgentConfig:
    return parse_config(agent_toml(tmp_path / "data", broker, port_url=bus.port_path))


def seqs_seen(recorder: Recorder) -> list[int]:
    """Seqs received on both lanes (live readings and backlog)."""
    return [
        r.seq
        for kind in (TopicKind.READINGS, TopicKind.BACKLOG)
        for b in recorder.decoded(kind, ReadingBatch)
        for r in b.readings
    ]


def unacked_up_to(db_path: Path, seq: int) -> int:
    """Rows up to ``seq`` still waiting for a PUBACK, read from the agent's database file."""
    with sqlite3.connect(db_path) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM readings WHERE seq <= ? AND acked_at IS NULL", [seq]
        ).fetchone()
    return int(count)


def test_readings_birth_heartbeat_and_graceful_offline(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, gauge_bus: SimulatedBus
) -> None:
    config = gauge_config(tmp_path, mosquitto, gauge_bus)
    started_ms = time.time_ns() // 1_000_000

    with Agent(config):
        recorder.wait_for(lambda: len(seqs_seen(recorder)) >= 10, "10 readings")
        health = recorder.wait_for(
            lambda: next(
                (h for h in recorder.decoded(TopicKind.HEALTH, Health) if h.buffer_rows > 0), None
            ),
            "a heartbeat after the first reads",
        )
        late = Recorder(mosquitto)  # joins after the birth: gets it retained
        try:
            late.wait_for(lambda: late.messages(TopicKind.STATUS), "retained birth")
            retained_birth = late.messages(TopicKind.STATUS)[0]
        finally:
            late.close()
    recorder.wait_for(lambda: len(recorder.messages(TopicKind.STATUS)) >= 2, "offline status")

    birth, offline = recorder.decoded(TopicKind.STATUS, Status)[:2]
    assert birth.state is GatewayState.ONLINE
    assert birth.heartbeat_interval_s == 0.5
    assert retained_birth.retain
    assert Status.model_validate_json(retained_birth.payload) == birth
    assert offline.state is GatewayState.OFFLINE
    assert offline.session == birth.session

    batches = recorder.decoded(TopicKind.READINGS, ReadingBatch)
    assert {b.session for b in batches} == {birth.session}
    readings = [r for b in batches for r in b.readings]
    assert [r.seq for r in readings] == sorted({r.seq for r in readings})  # increasing
    assert readings[0].seq == 1
    level = next(r for r in readings if r.metric == "level_cm")
    assert level.device == "gauge-1"
    assert level.unit == "cm"
    assert level.quality is Quality.GOOD
    assert level.value is not None
    assert 200 < level.value < 300
    assert started_ms <= level.ts_ms <= time.time_ns() // 1_000_000

    assert health is not None
    assert health.session == birth.session
    assert health.config_hash == config.config_hash
    assert health.heartbeat_interval_s == 0.5
    assert health.buffer_rows > 0
    assert health.buffer_bytes > 0
    assert health.last_seq >= readings[0].seq
    assert health.devices["gauge-1"].state == "ok"
    assert health.versions["agent"]


def test_rows_leave_the_buffer_only_after_puback_across_broker_and_agent_restarts(
    tmp_path: Path, mosquitto: Mosquitto, gauge_bus: SimulatedBus
) -> None:
    config = gauge_config(tmp_path, mosquitto, gauge_bus)
    db_path = config.gateway.data_dir / "buffer.db"

    with Agent(config) as agent:
        wait_until(lambda: agent.buffer.stats().last_seq >= 6, timeout_s=WAIT_S)
        wait_until(lambda: unacked_up_to(db_path, 6) == 0, timeout_s=WAIT_S, message="acks")

        # Broker away: reads go on, nothing is acked.
        mosquitto.stop()
        wait_until(lambda: not agent.session.connected, timeout_s=WAIT_S)
        outage_start_seq = agent.buffer.last_seq
        wait_until(lambda: agent.buffer.last_seq >= outage_start_seq + 10, timeout_s=WAIT_S)
        last_outage_seq = agent.buffer.last_seq
        assert unacked_up_to(db_path, last_outage_seq) >= last_outage_seq - outage_start_seq

        # Broker back: the same agent reconnects and delivers the backlog.
        mosquitto.start()
        wait_until(
            lambda: unacked_up_to(db_path, last_outage_seq) == 0,
            timeout_s=WAIT_S,
            message="backlog acked after the broker came back",
        )

        # Broker away again, and the agent stops with rows unsent.
        mosquitto.stop()
        wait_until(lambda: not agent.session.connected, timeout_s=WAIT_S)
        before_stop = agent.buffer.last_seq
        wait_until(lambda: agent.buffer.last_seq >= before_stop + 6, timeout_s=WAIT_S)
    with Buffer(db_path) as buffer:
        last_seq_first_run = buffer.last_seq
    pending = unacked_up_to(db_path, last_seq_first_run)
    assert pending >= 6

    # Broker back, a subscriber listening, then a new agent on the same buffer.
    mosquitto.start()
    recorder = Recorder(mosquitto)
    try:
        with Agent(config):
            recorder.wait_for(
                lambda: max(seqs_seen(recorder), default=0) > last_seq_first_run + 4,
                "new readings after the backlog",
            )
        seen = seqs_seen(recorder)
        birth = recorder.decoded(TopicKind.STATUS, Status)[0]
    finally:
        recorder.close()

    backlog = set(range(last_seq_first_run - pending + 1, last_seq_first_run + 1))
    assert backlog <= set(seen)  # every row left unsent was delivered by the new agent
    new = sorted(s for s in seen if s > last_seq_first_run)
    assert new[0] == last_seq_first_run + 1  # numbering continues: no reuse, no gap
    assert unacked_up_to(db_path, last_seq_first_run) == 0
    # Sessions persist and are bumped per connect, not per refused attempt: 1 first
    # connect, 2 after the broker came back, 3 taken for the attempts of the second
    # outage (never accepted), 4 the new agent.
    assert birth.session == 4


def test_a_silent_gauge_shows_as_bad_readings_and_a_failing_device(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, gauge_bus: SimulatedBus
) -> None:
    config = gauge_config(tmp_path, mosquitto, gauge_bus)

    with Agent(config):
        recorder.wait_for(lambda: seqs_seen(recorder), "first readings")
        gauge_bus.devices[0].faults = Faults(silent=True)
        health = recorder.wait_for(
            lambda: next(
                (
                    h
                    for h in recorder.decoded(TopicKind.HEALTH, Health)
                    if h.devices["gauge-1"].state == "failing"
                ),
                None,
            ),
            "a heartbeat saying the gauge is failing",
        )

    assert health is not None
    gauge = health.devices["gauge-1"]
    assert gauge.errors["timeout"] >= 3
    assert gauge.consecutive_failures >= 3
    assert gauge.last_good_ms is not None
    assert gauge.last_error is not None
    assert "timeout" in gauge.last_error
    readings = [r for b in recorder.decoded(TopicKind.READINGS, ReadingBatch) for r in b.readings]
    bad = [r for r in readings if r.quality is Quality.BAD]
    assert bad
    assert {r.metric for r in bad} == {"level_cm", "status"}  # metrics it used to report
    assert all(r.value is None for r in bad)


def test_a_red_reading_goes_out_on_the_alerts_lane_ahead_of_its_reading(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, gauge_bus: SimulatedBus
) -> None:
    rules = RuleSet(
        points=[
            RiskPointRules(
                id="river-1", category=Category.WATER_LEVEL, place="cq/yuzhong/jiefangbei",
                metrics=[MetricRule(device=f"{GATEWAY_ID}.gauge-1", metric="level_cm",
                                    thresholds=Thresholds(yellow=50, red=100))],
            )
        ]
    )  # fmt: skip
    (tmp_path / "rules.json").write_text(rules.model_dump_json())
    text = agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path)
    config = parse_config(text + '\n[risk]\nrules_file = "rules.json"\n', base_dir=tmp_path)
    with Agent(config):
        recorder.wait_for(lambda: recorder.messages(TopicKind.ALERTS), "an edge alert")
        (alert,) = recorder.decoded(TopicKind.ALERTS, EdgeAlert)
        recorder.wait_for(
            lambda: any(r.ts_ms == alert.ts_ms for r in readings_of(recorder)), "its reading"
        )
    assert (alert.point, alert.colour, alert.previous) == ("river-1", Colour.RED, Colour.GREEN)
    assert (alert.device, alert.metric) == ("gauge-1", "level_cm")
    assert alert.value is not None
    assert alert.value > 100
    # The alert was published before the batch that carries its reading.
    order = [m.topic.rsplit("/", 1)[1] for m in recorder.all_messages()]
    assert order.index("alerts") < order.index("readings")
    assert len(recorder.messages(TopicKind.ALERTS)) == 1  # once per episode


def readings_of(recorder: Recorder) -> list[Reading]:
    return [r for b in recorder.decoded(TopicKind.READINGS, ReadingBatch) for r in b.readings]


def test_live_reads_due_before_the_deadline_go_in_one_message(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, gauge_bus: SimulatedBus
) -> None:
    buffer = "hold_while_controller_offline = false\nlive_linger_s = 0.5"
    text = agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path, buffer=buffer)
    # A read every 0.1 s: a batch is held while the next read is due within 0.5 s of its
    # first, so about four reads go per message (tests/agent/test_live_lane.py holds time).
    with Agent(parse_config(text)):
        recorder.wait_for(
            lambda: len(recorder.messages(TopicKind.READINGS)) >= 4, "four live batches"
        )
    batches = recorder.decoded(TopicKind.READINGS, ReadingBatch)
    reads_per_batch = [len({r.ts_ms for r in b.readings}) for b in batches]
    assert sum(reads_per_batch) >= 2 * len(batches), reads_per_batch  # about 5 each
    readings = [r for b in batches for r in b.readings]
    assert [r.seq for r in readings] == list(range(1, len(readings) + 1))  # none lost
