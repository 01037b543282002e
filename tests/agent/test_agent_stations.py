"""A real agent listening for stations: a simulated SL651 station dials in over TCP, its
readings reach mosquitto at the station's time, its 33H goes on the alarm lane ahead of
the report's readings, and the heartbeat carries the station's health and clock offset."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.agent import Agent
from agent.config import AgentConfig, ConfigError, parse_config
from edgewatch.broker import Mosquitto
from firmware_sim.stations import StationQuirks, StationRunner, build_station
from tests.agent.conftest import GATEWAY_ID, Message, Recorder, agent_toml
from tests.agent.station_rig import RIVER, sim
from wire import Colour, EdgeAlert, Health, Quality, ReadingBatch, TopicKind, decode
from wire.risk import Category, MetricRule, RiskPointRules, RuleSet, Thresholds

LISTENER_AND_STATION = """
[[listeners]]
name = "sl651-tcp"
protocol = "sl651"
host = "127.0.0.1"
port = 0
keep_online = true

[[devices]]
name = "river-1"
driver = "sl651"
port = "sl651-tcp"
station = "0012345678"
password = "1234"
interval_s = 60
alarm_colour = "red"

[[devices.elements]]
element = "Z"
metric = "level_m"
unit = "m"
"""


def rules() -> RuleSet:
    """The river section is orange from 20 m, red from 30 m: a 12 m river raises nothing."""
    rule = MetricRule(
        device=f"{GATEWAY_ID}.river-1",
        metric="level_m",
        thresholds=Thresholds(orange=20.0, red=30.0),
        hold_s=0,
    )
    point = RiskPointRules(
        id="river-section", category=Category.WATER_LEVEL, place="cq", metrics=[rule]
    )
    return RuleSet(points=[point])


def station_config(tmp_path: Path, broker: Mosquitto, *, with_rules: bool = True) -> AgentConfig:
    text = agent_toml(tmp_path / "data", broker) + LISTENER_AND_STATION
    if with_rules:
        (tmp_path / "rules.json").write_text(rules().model_dump_json())
        text += '\n[risk]\nrules_file = "rules.json"\n'
    return parse_config(text, base_dir=tmp_path)


@contextmanager
def running(config: AgentConfig) -> Iterator[tuple[Agent, StationRunner]]:
    with Agent(config) as agent:
        assert agent.stations is not None
        address = agent.stations.address("sl651-tcp")
        assert address is not None
        spec = sim("st", "sl651_river", RIVER, period_s=0.5)
        station = build_station(spec, targets={"sl651": ("127.0.0.1", address[1])})
        with StationRunner([station]) as runner:
            yield agent, runner


def index_of(messages: list[Message], kind: TopicKind, predicate: Callable[[bytes], bool]) -> int:
    """Where the first message of ``kind`` matching ``predicate`` is, in arrival order."""
    for at, message in enumerate(messages):
        if message.topic.endswith(f"/{kind.value}") and predicate(message.payload):
            return at
    return -1


def carries_level(value: float) -> Callable[[bytes], bool]:
    def check(payload: bytes) -> bool:
        batch = decode(ReadingBatch, payload)
        return any(r.metric == "level_m" and r.value == value for r in batch.readings)

    return check


def test_readings_reach_the_broker_at_the_stations_observation_time(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder
) -> None:
    with running(station_config(tmp_path, mosquitto)):
        batches = recorder.wait_for(
            lambda: [
                b
                for b in recorder.decoded(TopicKind.READINGS, ReadingBatch)
                if any(r.device == "river-1" for r in b.readings)
            ],
            "readings of the station",
        )
        reading = next(r for r in batches[0].readings if r.device == "river-1")
        assert reading.ts_ms % 60_000 == 0  # the station's observation minute
        assert reading.quality is Quality.GOOD
        assert reading.metric == "level_m"


def test_an_alarm_report_goes_on_the_alarm_lane_ahead_of_its_readings(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder
) -> None:
    with running(station_config(tmp_path, mosquitto)) as (agent, runner):
        recorder.wait_for(lambda: recorder.messages(TopicKind.READINGS), "first readings")
        runner.by_name["st"].set_values({"Z": 15.8})
        alerts = recorder.wait_for(
            lambda: recorder.decoded(TopicKind.ALERTS, EdgeAlert), "the station's alarm"
        )
        recorder.wait_for(
            lambda: index_of(recorder.all_messages(), TopicKind.READINGS, carries_level(15.8)) >= 0,
            "the alarm report's readings",
        )
        messages = recorder.all_messages()
        alarm_at = index_of(messages, TopicKind.ALERTS, lambda p: True)
        readings_at = index_of(messages, TopicKind.READINGS, carries_level(15.8))
        assert alarm_at < readings_at
        (alert,) = alerts
        assert (alert.point, alert.colour, alert.previous) == (
            "river-section",
            Colour.RED,
            Colour.GREEN,
        )
        assert (alert.device, alert.metric, alert.value) == ("river-1", "level_m", 15.8)
        assert alert.ts_ms % 60_000 == 0
        assert agent.station_alarms_unrouted == 0


def test_an_alarm_no_risk_point_watches_is_counted(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder
) -> None:
    with running(station_config(tmp_path, mosquitto, with_rules=False)) as (agent, runner):
        recorder.wait_for(lambda: recorder.messages(TopicKind.READINGS), "first readings")
        runner.by_name["st"].set_values({"Z": 15.8})
        recorder.wait_for(lambda: agent.station_alarms_unrouted == 1, "the unrouted alarm")
        assert recorder.messages(TopicKind.ALERTS) == []


def test_the_heartbeat_reports_the_station_and_its_clock_offset(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder
) -> None:
    with running(station_config(tmp_path, mosquitto)) as (_, runner):
        runner.by_name["st"].quirks = StationQuirks(clock_offset_s=600)

        def skewed() -> Health | None:
            for health in recorder.decoded(TopicKind.HEALTH, Health)[::-1]:
                if health.station_clock_offsets_ms.get("river-1", 0) > 590_000:
                    return health
            return None

        health = recorder.wait_for(skewed, "a heartbeat with the offset")
        assert health is not None
        assert health.devices["river-1"].state == "ok"
        extra = health.model_extra or {}
        assert extra["listeners"]["sl651-tcp"]["connections"] == 1


POLLED_ON_A_LISTENER = """
[[listeners]]
name = "sl651-tcp"
protocol = "sl651"
port = 0

[[devices]]
name = "gauge-1"
driver = "modbus_rtu"
port = "sl651-tcp"
slave = 1

[[devices.registers]]
metric = "level_cm"
address = 0
"""


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (POLLED_ON_A_LISTENER, r"devices\[0\] \('gauge-1'\).port: no \[\[ports\]\] entry"),
        (
            LISTENER_AND_STATION.replace('protocol = "sl651"', 'protocol = "hj212"'),
            r"devices\[0\] \('river-1'\).port: listener 'sl651-tcp' speaks hj212, not sl651",
        ),
        (LISTENER_AND_STATION.replace("port = 0\n", ""), "a tcp listener needs port"),
        (LISTENER_AND_STATION.replace("port = 0", "port = 0\nurl = '/dev/ttyS1'"), "url is for"),
        (
            LISTENER_AND_STATION.replace('port = "sl651-tcp"', 'port = "sl651-tpc"'),
            "did you mean 'sl651-tcp'",
        ),
    ],
    ids=["polled-on-listener", "wrong-protocol", "no-port", "url-on-tcp", "typo"],
)
def test_listener_config_errors_name_the_key(
    tmp_path: Path, mosquitto: Mosquitto, tables: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(agent_toml(tmp_path / "data", mosquitto) + tables)


def test_the_field_guides_station_sample_parses(tmp_path: Path, mosquitto: Mosquitto) -> None:
    guide = (Path(__file__).parents[2] / "docs" / "field-guide.md").read_text()
    section = guide.split("## 9. Stations that push")[1]
    sample = section.split("```toml")[1].split("```")[0]
    config = parse_config(agent_toml(tmp_path / "data", mosquitto) + sample)
    assert [listener.port for listener in config.listeners] == [5001, 5002]
    assert [d.driver for d in config.devices] == ["sl651", "hj212"]
