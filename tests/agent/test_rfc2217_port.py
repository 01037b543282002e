"""A real agent process reading a simulated gauge through an ``rfc2217://`` URL: a remote
serial port (a port server on a mast, or the simulator's door where parity shows)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.bus.ports import WRITE_TIMEOUT_MIN_S, write_timeout_for
from edgewatch.broker import Mosquitto
from firmware_sim import SimulatedBus, WaterLevelGauge
from tests.agent.conftest import WAIT_S, Recorder, agent_process, agent_toml
from wire import Quality, Reading, ReadingBatch, TopicKind


@pytest.fixture
def remote_bus() -> Iterator[SimulatedBus]:
    with SimulatedBus([WaterLevelGauge(slave=1)], rfc2217=True) as bus:
        yield bus


def readings(recorder: Recorder) -> list[Reading]:
    """Every reading out, good or bad (a device never answered reads as ``_device``)."""
    return [r for b in recorder.decoded(TopicKind.READINGS, ReadingBatch) for r in b.readings]


def run_agent(tmp_path: Path, text: str, recorder: Recorder) -> list[Reading]:
    """Run the agent until three reads are out, stop it as systemd would; its readings."""
    config = tmp_path / "agent.toml"
    config.write_text(text)
    with agent_process(config) as process:
        recorder.wait_for(lambda: len({r.ts_ms for r in readings(recorder)}) >= 3, "3 reads", 20)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_S) == 0
    return readings(recorder)


def test_the_agent_reads_a_device_through_an_rfc2217_url(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, remote_bus: SimulatedBus
) -> None:
    assert remote_bus.rfc2217_url is not None
    text = agent_toml(tmp_path / "data", mosquitto, port_url=remote_bus.rfc2217_url)

    out = run_agent(tmp_path, text, recorder)

    levels = [r for r in out if r.metric == "level_cm"]
    assert len(levels) >= 3
    assert {r.quality for r in out} == {Quality.GOOD}
    assert all(r.value is not None and 200 < r.value < 300 for r in levels)
    assert remote_bus.rfc2217 is not None
    assert remote_bus.rfc2217.stats.clients == 1  # one session for the agent's whole run
    assert remote_bus.stats.wrong_parity == 0


def test_at_the_wrong_parity_the_agent_reads_nothing_good(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, remote_bus: SimulatedBus
) -> None:
    assert remote_bus.rfc2217_url is not None
    text = agent_toml(tmp_path / "data", mosquitto, port_url=remote_bus.rfc2217_url)

    out = run_agent(tmp_path, text.replace("baud = 9600", 'baud = 9600\nparity = "E"'), recorder)

    assert {(r.metric, r.quality, r.value) for r in out} == {("_device", Quality.BAD, None)}
    assert remote_bus.stats.wrong_parity >= 3
    assert remote_bus.stats.responses == 0


def test_an_rfc2217_url_is_opened_without_a_write_timeout_and_others_with_a_floor() -> None:
    """pyserial's rfc2217 client refuses one (NotImplementedError on open); elsewhere a
    write gets at least WRITE_TIMEOUT_MIN_S, never the short read timeout (a descheduled
    writer would report a sent request as a write timeout)."""
    assert write_timeout_for("rfc2217://127.0.0.1:2217", 0.3) is None
    assert write_timeout_for("/dev/ttyUSB0", 0.3) == WRITE_TIMEOUT_MIN_S
    assert write_timeout_for("socket://127.0.0.1:4001", 0.3) == WRITE_TIMEOUT_MIN_S
    assert write_timeout_for("/dev/ttyUSB0", 5.0) == 5.0
