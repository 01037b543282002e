"""The gateway as the listening side: simulated SL651 and HJ212 stations dial in over real
TCP sockets (or are wired on real ptys) to the agent's one listener thread."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime

import pytest

from agent.config import ListenerConfig
from edgewatch.waiting import wait_until
from firmware_sim import Faults
from firmware_sim.stations import StationQuirks
from firmware_sim.stations.sl651 import FrameQuirks, Sl651Encoder
from wire import Quality

from .station_rig import (
    AIR_MN,
    RIVER,
    air_config,
    river_config,
    sim,
    station_rig,
    tcp_listener,
)

WAIT_S = 10.0


def minute_of(ts_ms: int) -> bool:
    return ts_ms % 60_000 == 0


def test_an_sl651_station_dials_in_and_its_readings_keep_its_observation_time() -> None:
    with station_rig(
        [tcp_listener("sl651")], [river_config()], [sim("st", "sl651_river", RIVER)]
    ) as rig:
        wait_until(lambda: len(rig.recorded.readings("river-1")) >= 2, timeout_s=WAIT_S)
        station = rig.stations["st"]
        wait_until(lambda: station.stats.answered >= 2, timeout_s=WAIT_S, message="answers")
        ts_ms, measurements = rig.recorded.readings("river-1")[0]
        assert minute_of(ts_ms)  # the station's observation minute, not our arrival time
        assert {m.metric for m in measurements} >= {"level_m", "rain_total_mm", "supply_v"}
        assert all(m.quality is Quality.GOOD for m in measurements)
        health = rig.book.health()["river-1"]
        assert health.state == "ok"
        assert health.reads_ok >= 2
        offset_ms = rig.book.clock_offsets_ms()["river-1"]
        assert abs(offset_ms) < 2_000
        stats = rig.server.stats()["sl651-tcp"]
        assert stats["reports"] >= 2
        assert stats["refused"] == {}


def test_the_counter_becomes_increments_from_the_second_report() -> None:
    with station_rig(
        [tcp_listener("sl651")], [river_config()], [sim("st", "sl651_river", RIVER)]
    ) as rig:
        wait_until(lambda: len(rig.recorded.readings("river-1")) >= 2, timeout_s=WAIT_S)
        metrics = [{m.metric for m in ms} for _, ms in rig.recorded.readings("river-1")]
        assert "rain_total_mm_increment" not in metrics[0]
        assert "rain_total_mm_increment" in metrics[1]


def test_an_hj212_logger_is_answered_and_its_flags_become_qualities() -> None:
    with station_rig(
        [tcp_listener("hj212")], [air_config()], [sim("air", "hj212_air", AIR_MN)]
    ) as rig:
        wait_until(lambda: rig.stations["air"].stats.answered >= 2, timeout_s=WAIT_S)
        ts_ms, measurements = rig.recorded.readings("air-1")[0]
        assert ts_ms % 1000 == 0
        assert [m.metric for m in measurements] == ["pm25_ug_m3", "so2_mg_m3"]
        assert rig.server.stats()["hj212-tcp"]["connections"] == 1


def test_a_station_wired_on_a_serial_line() -> None:
    listener = ListenerConfig.model_validate(
        {"name": "sl651-tcp", "protocol": "sl651", "kind": "serial", "url": "pending"}
    )
    with station_rig(
        [listener], [river_config()], [sim("st", "sl651_river", RIVER, transport="pty")]
    ) as rig:
        wait_until(lambda: rig.stations["st"].stats.answered >= 2, timeout_s=WAIT_S)
        assert len(rig.recorded.readings("river-1")) >= 2


def test_strangers_and_wrong_passwords_are_counted_logged_once_and_never_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="agent.stations.book")
    stations = [
        sim("stranger", "sl651_river", "0099999999", period_s=0.1),
        sim("wrong", "sl651_river", RIVER, password="4321", period_s=0.1),
    ]
    with station_rig([tcp_listener("sl651")], [river_config()], stations) as rig:
        wait_until(
            lambda: (
                rig.refused("sl651-tcp").get("unknown_station", 0) >= 3
                and rig.refused("sl651-tcp").get("wrong_password", 0) >= 3
            ),
            timeout_s=WAIT_S,
            message="both refused three times",
        )
        assert rig.recorded.events == []
        assert rig.stations["stranger"].stats.answered == 0
        assert rig.book.health()["river-1"].errors["wrong_password"] >= 3
    refusals = [r.getMessage() for r in caplog.records if "nothing stored" in r.getMessage()]
    assert len([w for w in refusals if "0099999999" in w]) == 1
    assert len([w for w in refusals if "password" in w]) == 1


def test_an_alarm_report_hands_its_alarm_over_before_its_readings() -> None:
    with station_rig(
        [tcp_listener("sl651")],
        [river_config()],
        [sim("st", "sl651_river", RIVER, period_s=30)],
    ) as rig:
        wait_until(lambda: rig.recorded.readings("river-1"), timeout_s=WAIT_S)
        rig.stations["st"].set_values({"Z": 15.8})
        wait_until(lambda: "alarm" in rig.recorded.kinds(), timeout_s=WAIT_S, message="alarm")
        kinds = rig.recorded.kinds()
        at = kinds.index("alarm")
        assert kinds[at + 1] == "reading"
        alarm = rig.recorded.events[at][2]
        assert (alarm.metric, alarm.value) == ("level_m", 15.8)
        assert minute_of(alarm.ts_ms)


def test_a_clock_ten_minutes_off_is_reported_as_the_stations_offset() -> None:
    with station_rig(
        [tcp_listener("sl651")], [river_config()], [sim("st", "sl651_river", RIVER)]
    ) as rig:
        rig.stations["st"].quirks = StationQuirks(clock_offset_s=600)
        wait_until(
            lambda: rig.book.clock_offsets_ms().get("river-1", 0) > 590_000,
            timeout_s=WAIT_S,
            message="the offset",
        )
        assert rig.book.clock_offsets_ms()["river-1"] < 610_000
        # the readings keep the station's (wrong) time: the controller judges the skew
        ts_ms = rig.recorded.readings("river-1")[-1][0]
        assert ts_ms > time.time() * 1000 + 500_000


@pytest.mark.parametrize(
    "quirks",
    [
        StationQuirks(lowercase_crc=True),
        StationQuirks(no_crlf=True),
        StationQuirks(wrong_length=True),
    ],
    ids=["lowercase_crc", "no_crlf", "wrong_length"],
)
def test_hj212_quirks_are_forgiven(quirks: StationQuirks) -> None:
    with station_rig(
        [tcp_listener("hj212")], [air_config()], [sim("air", "hj212_air", AIR_MN)]
    ) as rig:
        rig.stations["air"].quirks = quirks
        before = len(rig.recorded.readings("air-1"))
        wait_until(lambda: len(rig.recorded.readings("air-1")) >= before + 3, timeout_s=WAIT_S)
        assert rig.refused("hj212-tcp") == {}


def test_all_f_missing_values_are_bad_readings_naming_the_element() -> None:
    with station_rig(
        [tcp_listener("sl651")], [river_config()], [sim("st", "sl651_river", RIVER)]
    ) as rig:
        rig.stations["st"].quirks = StationQuirks(missing_values=True)

        def a_missing_value() -> bool:
            return any(
                m.quality is Quality.BAD and "missing" in (m.error or "")
                for _, ms in rig.recorded.readings("river-1")
                for m in ms
            )

        wait_until(a_missing_value, timeout_s=WAIT_S, message="a missing value")


def test_a_wrong_crc_counts_against_the_station_and_it_recovers() -> None:
    with station_rig(
        [tcp_listener("sl651")], [river_config()], [sim("st", "sl651_river", RIVER, period_s=0.1)]
    ) as rig:
        station = rig.stations["st"]
        station.faults = Faults(corrupt_crc=True)
        wait_until(lambda: rig.book.state("river-1") == "failing", timeout_s=WAIT_S)
        station.faults = Faults()
        wait_until(lambda: rig.book.state("river-1") == "ok", timeout_s=WAIT_S)
        assert rig.book.health()["river-1"].errors["crc"] >= 3


# -- bounds: nothing one sender does blinds the listener to the others -----------------------


def test_connections_beyond_the_bound_are_closed_at_once_and_counted() -> None:
    with station_rig([tcp_listener("sl651", max_connections=2)], [river_config()]) as rig:
        port = rig.port("sl651-tcp")
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        wait_until(lambda: rig.server.stats()["sl651-tcp"]["connections"] == 2, timeout_s=WAIT_S)
        with socket.create_connection(("127.0.0.1", port)) as third:
            third.settimeout(WAIT_S)
            assert third.recv(16) == b""  # closed by the gateway
        assert rig.server.stats()["sl651-tcp"]["refused_full"] == 1
        for sock in held:
            sock.close()


def test_a_sender_of_bad_frames_is_cut_off_while_a_good_station_goes_on() -> None:
    listener = tcp_listener("sl651", bad_frames_per_min=20)
    with station_rig([listener], [river_config()], [sim("st", "sl651_river", RIVER)]) as rig:
        port = rig.port("sl651-tcp")
        encoder = Sl651Encoder(station="0099999999", password="1234")
        broken = encoder.keep_alive(1, datetime(2025, 6, 18), FrameQuirks(corrupt_crc=True))
        with socket.create_connection(("127.0.0.1", port)) as noisy:
            noisy.settimeout(WAIT_S)
            noisy.sendall(b"noise" + broken * 40)  # 40 frames with a wrong CRC at once
            assert noisy.recv(16) == b""  # cut off
        assert rig.server.stats()["sl651-tcp"]["closed_bad_frames"] == 1
        before = len(rig.recorded.readings("river-1"))
        wait_until(lambda: len(rig.recorded.readings("river-1")) >= before + 2, timeout_s=WAIT_S)
        assert rig.refused("sl651-tcp")["crc"] >= 21


def test_a_length_beyond_the_bound_is_refused_without_buffering_it() -> None:
    with station_rig([tcp_listener("hj212")], [air_config()]) as rig:
        conn = socket.create_connection(("127.0.0.1", rig.port("hj212-tcp")))
        with conn:
            conn.sendall(b"##9999QN=" + b"x" * 100)
            wait_until(lambda: rig.refused("hj212-tcp").get("oversized", 0) >= 1, timeout_s=WAIT_S)


def test_idle_connections_are_closed() -> None:
    with station_rig([tcp_listener("sl651", idle_timeout_s=0.3)], [river_config()]) as rig:
        with socket.create_connection(("127.0.0.1", rig.port("sl651-tcp"))) as conn:
            conn.settimeout(WAIT_S)
            assert conn.recv(16) == b""
        assert rig.server.stats()["sl651-tcp"]["closed_idle"] == 1


def test_a_reconnect_storm_does_not_blind_the_listener_to_a_good_station() -> None:
    stations = [
        sim("st", "sl651_river", RIVER),
        sim("storm", "sl651_river", "0012345679", period_s=30),
    ]
    devices = [river_config(), river_config("river-2", "0012345679")]
    with station_rig([tcp_listener("sl651")], devices, stations) as rig:
        rig.stations["storm"].quirks = StationQuirks(reconnect_storm=True)
        wait_until(lambda: rig.server.stats()["sl651-tcp"]["accepted"] >= 20, timeout_s=WAIT_S)
        before = len(rig.recorded.readings("river-1"))
        wait_until(lambda: len(rig.recorded.readings("river-1")) >= before + 3, timeout_s=WAIT_S)


def test_a_station_is_stale_after_three_intervals_without_a_report() -> None:
    with station_rig(
        [tcp_listener("sl651")],
        [river_config(interval_s=0.2)],
        [sim("st", "sl651_river", RIVER, period_s=0.2)],
    ) as rig:
        wait_until(lambda: rig.book.state("river-1") == "ok", timeout_s=WAIT_S)
        rig.stations["st"].faults = Faults(silent=True)
        wait_until(lambda: rig.book.state("river-1") == "stale", timeout_s=WAIT_S)


def test_observation_times_are_utc_from_the_stations_local_clock() -> None:
    with station_rig(
        [tcp_listener("sl651")], [river_config()], [sim("st", "sl651_river", RIVER)]
    ) as rig:
        wait_until(lambda: rig.recorded.readings("river-1"), timeout_s=WAIT_S)
        ts_ms, _ = rig.recorded.readings("river-1")[0]
        observed = datetime.fromtimestamp(ts_ms / 1000, UTC)
        now = datetime.now(UTC)
        assert abs((now - observed).total_seconds()) < 120  # UTC+8 on the wire, UTC here
