"""The live lane in a real agent on a simulated bus, with time held: a batch is held only
while the bus has another read due before its deadline, never by the deadline alone."""

from __future__ import annotations

from pathlib import Path

from agent.agent import Agent
from agent.config import parse_config
from edgewatch.broker import Mosquitto
from firmware_sim.bus import SimulatedBus
from firmware_sim.models import WaterLevelGauge
from tests.agent.conftest import Recorder, agent_toml
from tests.clock import FakeClock
from wire import ReadingBatch, TopicKind

# Deadline 5 s, next round in 10 s: with the clock held, neither ever comes, so whatever
# is sent was sent because no read was due before the batch's deadline.
BUFFER = "hold_while_controller_offline = false\nlive_linger_s = 5.0"
INTERVAL_S = 10.0


def gauges_config(data_dir: Path, broker: Mosquitto, bus: SimulatedBus, count: int) -> str:
    """``count`` water-level gauges (slaves 1..count) on ``bus``, each read every 10 s."""
    text = agent_toml(
        data_dir, broker, port_url=bus.port_path, interval_s=INTERVAL_S, buffer=BUFFER
    )
    for slave in range(2, count + 1):
        text += (
            f'\n[[devices]]\nname = "gauge-{slave}"\ndriver = "modbus_rtu"\nport = "bus1"\n'
            f"interval_s = {INTERVAL_S}\nslave = {slave}\n"
            '[[devices.registers]]\nmetric = "level_cm"\naddress = 0\nscale = 0.1\nunit = "cm"\n'
        )
    return text


def reads_per_message(recorder: Recorder) -> list[list[str]]:
    """The devices whose reads each live message carried, in order."""
    return [
        sorted({r.device for r in batch.readings})
        for batch in recorder.decoded(TopicKind.READINGS, ReadingBatch)
    ]


def test_a_busy_bus_sends_its_reads_together(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, held_clock: FakeClock
) -> None:
    gauges = [WaterLevelGauge(slave=slave) for slave in (1, 2, 3)]
    with SimulatedBus(gauges) as bus:
        config = parse_config(gauges_config(tmp_path / "data", mosquitto, bus, 3))
        with Agent(config, clock=held_clock):
            # All three are due at once: read back to back, each with the next on the wire.
            recorder.wait_for(lambda: recorder.messages(TopicKind.READINGS), "a live message")
            (batch,) = recorder.decoded(TopicKind.READINGS, ReadingBatch)
    assert reads_per_message(recorder) == [["gauge-1", "gauge-2", "gauge-3"]]
    assert [r.seq for r in batch.readings] == list(range(1, len(batch.readings) + 1))


def test_a_lone_reading_is_not_held(
    tmp_path: Path,
    mosquitto: Mosquitto,
    recorder: Recorder,
    held_clock: FakeClock,
    gauge_bus: SimulatedBus,
) -> None:
    config = parse_config(gauges_config(tmp_path / "data", mosquitto, gauge_bus, 1))
    with Agent(config, clock=held_clock):
        recorder.wait_for(lambda: recorder.messages(TopicKind.READINGS), "a live message")
    assert reads_per_message(recorder) == [["gauge-1"]]
