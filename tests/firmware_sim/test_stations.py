"""Simulated pushing stations: schedules, answers, retries, keep-alives, alarms, quirks and
reconnects, against a plain TCP server in the test (no driver: the sim is judged alone)."""

from __future__ import annotations

import selectors
import socket
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgewatch.waiting import wait_until
from firmware_sim.cli import main as cli_main
from firmware_sim.control import send
from firmware_sim.modbus import crc16_modbus
from firmware_sim.scenario import RunningScenario, parse_scenario
from firmware_sim.stations import (
    SimStation,
    StationQuirks,
    StationRunner,
    StationSpec,
    build_station,
)
from firmware_sim.stations.hj212 import hj212_crc, read_packet
from firmware_sim.stations.sl651 import ADDITIONAL, EOT, ESC, KEEP_ALIVE, TIMED


@dataclass
class Centre:
    """A TCP server that records what stations send and answers with ``answer(frame)``."""

    port: int
    received: list[bytes] = field(default_factory=list)
    connections: int = 0
    answer: Callable[[bytes], bytes | None] = lambda frame: None


@contextmanager
def centre() -> Iterator[Centre]:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    state = Centre(server.getsockname()[1])
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for key, _ in selector.select(0.05):
                if key.fileobj is server:
                    accepted, _ = server.accept()
                    state.connections += 1
                    selector.register(accepted, selectors.EVENT_READ)
                    continue
                client = key.fileobj
                assert isinstance(client, socket.socket)
                try:
                    data = client.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(client)
                    client.close()
                    continue
                state.received.append(data)
                reply = state.answer(data)
                if reply:
                    client.sendall(reply)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join()
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


def sl651_ack(frame: bytes, end: int) -> bytes | None:
    """A downlink answer the station can check, built here from the frame's own bytes."""
    if frame[:2] != b"\x7e\x7e" or frame[10] == KEEP_ALIVE:
        return None
    header = b"\x7e\x7e" + frame[3:8] + frame[2:3] + frame[8:10] + frame[10:11]
    body = frame[14:16] + bytes.fromhex("250618080007")
    data = header + b"\x80\x08\x02" + body + bytes([end])
    return data + crc16_modbus(data).to_bytes(2, "big")


def station(
    port: int, model: str = "sl651_river", key: str = "0012345678", **options: object
) -> StationSpec:
    password = "1234" if model.startswith("sl651") else "123456"
    return StationSpec(
        "st-1", model, key, password,
        options={"period_s": 0.3, "phase_s": 0, "answer_timeout_s": 0.3, **options},
    )  # fmt: skip


def functions(received: list[bytes]) -> list[int]:
    return [b[10] for b in received if b[:2] == b"\x7e\x7e"]


def test_an_answered_station_hangs_up_after_eot_and_dials_for_the_next_report() -> None:
    with centre() as server:
        server.answer = lambda frame: sl651_ack(frame, EOT)
        sim = build_station(station(server.port), targets={"sl651": ("127.0.0.1", server.port)})
        with StationRunner([sim]):
            wait_until(lambda: sim.stats.answered >= 3, timeout_s=5, message="3 answers")
        assert server.connections >= 3  # one call per report
        assert sim.stats.retries == 0


def test_esc_keeps_the_station_online_with_keep_alives() -> None:
    with centre() as server:
        server.answer = lambda frame: sl651_ack(frame, ESC)
        spec = station(server.port, keepalive_s=0.1, period_s=5)
        sim = build_station(spec, targets={"sl651": ("127.0.0.1", server.port)})
        with StationRunner([sim]):
            wait_until(lambda: sim.stats.keep_alives >= 3, timeout_s=5, message="keep-alives")
        assert server.connections == 1
        assert functions(server.received)[:2] == [TIMED, KEEP_ALIVE]


def test_an_unanswered_report_is_tried_three_times_then_the_station_hangs_up() -> None:
    with centre() as server:
        sim = build_station(
            station(server.port, period_s=30), targets={"sl651": ("127.0.0.1", server.port)}
        )
        with StationRunner([sim]):
            wait_until(lambda: sim.stats.unanswered == 1, timeout_s=5, message="given up")
        assert sim.stats.retries == 2
        frames = [b for b in server.received if b[:2] == b"\x7e\x7e"]
        assert len(frames) == 3
        assert len({f[14:16] for f in frames}) == 1  # retries keep the serial number


def test_a_level_past_its_bound_sends_an_alarm_report_with_its_trigger_first() -> None:
    with centre() as server:
        server.answer = lambda frame: sl651_ack(frame, ESC)
        sim = build_station(
            station(server.port, period_s=30), targets={"sl651": ("127.0.0.1", server.port)}
        )
        with StationRunner([sim]):
            wait_until(lambda: sim.stats.answered >= 1, timeout_s=5, message="first report")
            sim.set_values({"Z": 15.8})
            wait_until(lambda: ADDITIONAL in functions(server.received), timeout_s=5, message="33H")
        alarm = next(b for b in server.received if b[:2] == b"\x7e\x7e" and b[10] == ADDITIONAL)
        trigger_at = alarm.index(b"\xf0\xf0") + 7
        assert alarm[trigger_at : trigger_at + 6] == bytes.fromhex("3923 00015800")
        assert sim.stats.alarms == 1  # once per crossing, not once per check


def test_the_station_dials_again_when_the_centre_comes_back() -> None:
    with centre() as first:
        port = first.port
        sim = build_station(station(port, period_s=0.2), targets={"sl651": ("127.0.0.1", port)})
        runner = StationRunner([sim])
        runner.__enter__()
        wait_until(lambda: first.connections >= 1, timeout_s=5, message="first call")
    try:
        failures = sim.stats.connect_failures
        wait_until(lambda: sim.stats.connect_failures > failures, timeout_s=5, message="refused")
        with socket.create_server(("127.0.0.1", port)) as again:
            again.settimeout(5)
            conn, _ = again.accept()
            conn.close()
    finally:
        runner.__exit__(None, None, None)


def test_a_reconnect_storm_dials_again_and_again() -> None:
    with centre() as server:
        sim = build_station(
            station(server.port, period_s=30), targets={"sl651": ("127.0.0.1", server.port)}
        )
        with StationRunner([sim]):
            sim.quirks = StationQuirks(reconnect_storm=True)
            wait_until(lambda: server.connections >= 10, timeout_s=5, message="a storm")


def test_an_hj212_logger_stays_connected_and_takes_the_platforms_clock() -> None:
    def answer(packet: bytes) -> bytes | None:
        _, fields = read_packet(packet)
        if not fields or fields.get("CN") != "2011":
            return None
        reply = (
            f"QN={fields['QN']};ST=91;CN=9014;PW={fields['PW']};MN={fields['MN']};Flag=4;CP=&&&&"
        ).encode()
        answer_packet = b"##%04d" % len(reply) + reply + b"%04X\r\n" % hj212_crc(reply)
        now = "20250618080000"
        request = (
            f"QN=20250618080000000;ST=22;CN=1012;PW={fields['PW']};MN={fields['MN']};"
            f"Flag=5;CP=&&SystemTime={now}&&"
        ).encode()
        return answer_packet + b"##%04d" % len(request) + request + b"%04X\r\n" % hj212_crc(request)

    with centre() as server:
        server.answer = answer
        spec = station(server.port, "hj212_air", "5001000000000000000000A1")
        sim = build_station(spec, targets={"hj212": ("127.0.0.1", server.port)})
        with StationRunner([sim]):
            wait_until(lambda: sim.stats.clock_set >= 2, timeout_s=5, message="clock set")
            assert sim.local_now().strftime("%Y%m%d%H") == "2025061808"
        assert server.connections == 1
        assert sim.stats.answered >= 2
        assert any(b"CN=9011" in b for b in server.received)


SCENARIO = """
name = "stations"
[signals.level]
kind = "constant"
value = 12.5

[[stations]]
name = "river-st"
model = "sl651_river"
station = "0012345678"
password = "1234"
transport = "pty"
inputs = { level_m = "level" }
options = { period_s = 30 }
"""


def test_a_scenario_serves_stations_and_switches_their_quirks(tmp_path: Path) -> None:
    scenario = parse_scenario(tomllib.loads(SCENARIO))
    control = tmp_path / "control.sock"
    with RunningScenario(scenario, control_path=control) as running:
        (served,) = running.devices
        assert (served.protocol, served.transport, served.station) == ("sl651", "pty", "0012345678")
        assert served.pty.startswith("/dev/")
        answer = send(control, {"cmd": "quirks", "device": "river-st", "quirks": {"no_crlf": True}})
        assert answer["ok"]
        assert answer["quirks"]["no_crlf"] is True
        assert send(control, {"cmd": "values", "device": "river-st", "values": {"Z": 1.5}})["ok"]
        assert send(control, {"cmd": "report", "device": "river-st"})["ok"]
        status = send(control, {"cmd": "status"})["devices"]["river-st"]
        assert status["quirks"]["no_crlf"] is True
        wrong = send(control, {"cmd": "quirks", "device": "river-st", "quirks": {"bogus": 1}})
        assert not wrong["ok"]
        assert "unknown quirks" in wrong["error"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('model = "sl651_lake"', "model 'sl651_lake'"),
        ('transport = "radio"', "transport 'radio'"),
        ('station = "12"', "10 hex digits"),
    ],
)
def test_a_bad_station_table_is_refused_naming_it(table: str, message: str) -> None:
    raw = tomllib.loads(SCENARIO)
    raw["stations"][0].update(tomllib.loads(table))
    with pytest.raises(ValueError, match=message):
        parse_scenario(raw)


def test_a_tcp_station_without_a_listener_to_dial_is_refused() -> None:
    raw = tomllib.loads(SCENARIO.replace('transport = "pty"', 'transport = "tcp"'))
    with pytest.raises(ValueError, match="--connect sl651=HOST:PORT"):
        RunningScenario(parse_scenario(raw)).__enter__()


def test_the_cli_switches_a_stations_quirks_values_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    control = tmp_path / "control.sock"
    with RunningScenario(parse_scenario(tomllib.loads(SCENARIO)), control_path=control) as running:
        station = running.by_name["river-st"]
        assert isinstance(station, SimStation)
        base = ["--control", str(control), "--device", "river-st"]
        assert cli_main(["quirks", *base, "--clock-offset-s", "600", "--lowercase-crc"]) == 0
        assert station.quirks == StationQuirks(clock_offset_s=600, lowercase_crc=True)
        assert cli_main(["values", *base, "Z=15.8"]) == 0
        assert station.values == {"Z": 15.8}
        assert cli_main(["report", *base]) == 0
        assert cli_main(["values", *base, "Z=high"]) == 2
        assert "ELEMENT=NUMBER" in capsys.readouterr().err


def test_the_cli_refuses_a_malformed_connect(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["run", "--scenario", "flood-station", "--connect", "sl651"]) == 2
    assert "PROTOCOL=HOST:PORT" in capsys.readouterr().err
