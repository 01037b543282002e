"""Store-and-forward behaviour of a running agent: controller status, replay, a full disk,
lane order. Real mosquitto, a simulated gauge on a real pty."""

from __future__ import annotations

import json
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.agent import Agent
from agent.config import AgentConfig, parse_config
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from firmware_sim.bus import SimulatedBus
from tests.agent.conftest import GATEWAY_ID, WAIT_S, Message, Recorder, agent_toml
from tests.agent.test_agent import seqs_seen
from wire import (
    CONTROLLER_STATUS_TOPIC,
    CommandRequest,
    CommandResult,
    ControllerStatus,
    GatewayState,
    ReadingBatch,
    TopicKind,
    encode,
    topic_for,
)


def publish(broker: Mosquitto, topic: str, payload: bytes, *, retain: bool = False) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def controller_status(broker: Mosquitto, state: GatewayState) -> None:
    publish(broker, CONTROLLER_STATUS_TOPIC, encode(ControllerStatus(state=state)), retain=True)


def config(tmp_path: Path, broker: Mosquitto, bus: SimulatedBus, buffer: str) -> AgentConfig:
    return parse_config(
        agent_toml(tmp_path / "data", broker, port_url=bus.port_path, buffer=buffer)
    )


def test_readings_are_held_while_the_controller_is_not_online(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, gauge_bus: SimulatedBus
) -> None:
    with Agent(config(tmp_path, mosquitto, gauge_bus, buffer="")) as agent:
        # No controller status retained (a broker that restarted has none): hold.
        wait_until(
            lambda: agent.session.connected and agent.buffer.last_seq >= 10, timeout_s=WAIT_S
        )
        assert seqs_seen(recorder) == []

        controller_status(mosquitto, GatewayState.ONLINE)
        recorder.wait_for(lambda: len(seqs_seen(recorder)) >= 10, "readings once online")

        controller_status(mosquitto, GatewayState.OFFLINE)
        wait_until(lambda: not agent.session.controller_online, timeout_s=WAIT_S)
        held_from = agent.buffer.last_seq + 1
        wait_until(lambda: agent.buffer.last_seq >= held_from + 5, timeout_s=WAIT_S)
        assert agent.health().model_extra["controller_online"] is False  # type: ignore[index]
        assert max(seqs_seen(recorder)) < held_from + 5

        controller_status(mosquitto, GatewayState.ONLINE)
        recorder.wait_for(
            lambda: set(range(1, held_from + 5)) <= set(seqs_seen(recorder)),
            "everything held, delivered once the controller is back",
        )


def results(recorder: Recorder, command_id: str) -> list[CommandResult]:
    topic = topic_for(GATEWAY_ID, TopicKind.CMD_RESULT, command_id)
    with recorder._lock:
        found: list[Message] = [m for m in recorder._messages if m.topic == topic]
    return [CommandResult.model_validate_json(m.payload) for m in found]


def replay(broker: Mosquitto, command_id: str, from_seq: int, to_seq: int) -> None:
    request = CommandRequest(
        id=command_id,
        type="replay",
        args={"from_seq": from_seq, "to_seq": to_seq},
        deadline_ms=2**41,
    )
    publish(broker, topic_for(GATEWAY_ID, TopicKind.CMD, command_id), encode(request))


def test_a_replay_command_republishes_acked_rows_on_the_backlog_lane(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, gauge_bus: SimulatedBus
) -> None:
    cfg = config(tmp_path, mosquitto, gauge_bus, buffer="hold_while_controller_offline = false")
    with Agent(cfg) as agent:
        wait_until(lambda: agent.buffer.stats().first_unsent_seq > 8, timeout_s=WAIT_S)
        replay(mosquitto, "r1", 3, 6)
        recorder.wait_for(lambda: len(results(recorder, "r1")) == 2, "accepted and succeeded")
        replay(mosquitto, "r2", 5, 900_000)  # mostly never used
        recorder.wait_for(lambda: len(results(recorder, "r2")) == 2, "r2 answered")

    accepted, succeeded = results(recorder, "r1")
    assert (accepted.outcome, succeeded.outcome) == ("accepted", "succeeded")
    assert json.loads(succeeded.detail) == {"replayed": 4, "unavailable": 0}
    backlog = [r.seq for b in recorder.decoded(TopicKind.BACKLOG, ReadingBatch) for r in b.readings]
    assert backlog[:4] == [3, 4, 5, 6]
    failed = results(recorder, "r2")[1]
    assert failed.outcome == "failed"
    assert json.loads(failed.detail)["unavailable"] > 800_000


def test_a_full_disk_keeps_readings_in_memory_and_loses_none_once_it_clears(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, gauge_bus: SimulatedBus
) -> None:
    cfg = config(tmp_path, mosquitto, gauge_bus, buffer="hold_while_controller_offline = false")
    with Agent(cfg) as agent:
        wait_until(lambda: agent.buffer.last_seq >= 4, timeout_s=WAIT_S)
        with agent.buffer.lock:  # the disk is full: not one more page
            pages = agent.buffer.conn.execute("PRAGMA page_count").fetchone()[0]
            agent.buffer.conn.execute(f"PRAGMA max_page_count = {pages}")
        wait_until(lambda: agent.intake.held_readings >= 10, timeout_s=WAIT_S)
        health = agent.health().model_extra or {}
        assert "database or disk is full" in health["buffer_error"]
        assert health["memory_queue_readings"] >= 10

        with agent.buffer.lock:  # space again
            agent.buffer.conn.execute("PRAGMA max_page_count = 1073741823")
        wait_until(lambda: agent.intake.held_readings == 0, timeout_s=WAIT_S)
        last = agent.buffer.last_seq
        recorder.wait_for(lambda: set(range(1, last + 1)) <= set(seqs_seen(recorder)), "all")
        assert agent.intake.error is None
        assert agent.health().dropped == {}


def test_a_full_memory_queue_drops_the_oldest_and_counts_them(
    tmp_path: Path, mosquitto: Mosquitto, gauge_bus: SimulatedBus
) -> None:
    cfg = config(tmp_path, mosquitto, gauge_bus, buffer="memory_queue_max_readings = 4")
    with Agent(cfg) as agent:
        wait_until(lambda: agent.buffer.last_seq >= 2, timeout_s=WAIT_S)
        with agent.buffer.lock:
            pages = agent.buffer.conn.execute("PRAGMA page_count").fetchone()[0]
            agent.buffer.conn.execute(f"PRAGMA max_page_count = {pages}")
        wait_until(
            lambda: agent.health().dropped.get("memory_queue_full", 0) >= 6, timeout_s=WAIT_S
        )
        assert agent.intake.held_readings <= 4


def test_alerts_go_out_before_readings_and_backlog_after_live(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, gauge_bus: SimulatedBus
) -> None:
    cfg = config(tmp_path, mosquitto, gauge_bus, buffer="live_window_s = 0.5")
    with Agent(cfg) as agent:
        wait_until(lambda: agent.buffer.last_seq >= 20, timeout_s=WAIT_S)  # held: no controller
        agent.alerts.append(1, b'{"alert": "red"}')
        wait_until(lambda: agent.buffer.last_seq >= 30, timeout_s=WAIT_S)
        controller_status(mosquitto, GatewayState.ONLINE)
        recorder.wait_for(lambda: recorder.messages(TopicKind.BACKLOG), "the backlog")

    with recorder._lock:
        kinds = [m.topic.rsplit("/", 1)[1] for m in recorder._messages]
    data = [k for k in kinds if k in ("alerts", "readings", "backlog")]
    assert data[0] == "alerts"
    assert data.index("readings") < data.index("backlog")
