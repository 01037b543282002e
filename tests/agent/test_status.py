"""`edgewatch agent status` with no uplink: a running agent whose broker is stopped."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.ops.progress import StatusLine
from agent.status_file import read_status
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from firmware_sim.bus import SimulatedBus
from tests.agent.conftest import agent_process, agent_toml


def status_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["status", "--config", str(path), "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_status_works_without_the_broker(
    tmp_path: Path,
    mosquitto: Mosquitto,
    gauge_bus: SimulatedBus,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "data"
    path = tmp_path / "agent.toml"
    path.write_text(agent_toml(data_dir, mosquitto, port_url=gauge_bus.port_path))

    with agent_process(path) as process:
        wait_until(
            lambda: (s := read_status(data_dir)) is not None and s.mqtt.last_puback_ms,
            timeout_s=20,
            message="the agent's first PUBACK in status.json",
        )
        mosquitto.stop()  # the uplink is gone
        wait_until(
            lambda: (s := read_status(data_dir)) is not None and not s.mqtt.connected,
            timeout_s=10,
            message="status.json to record the lost broker",
        )
        wait_until(
            lambda: status_json(path, capsys)["buffer"]["unsent_rows"] > 0,
            timeout_s=10,
            message="readings waiting for the broker",
        )
        data = status_json(path, capsys)
        assert main(["status", "--config", str(path)]) == 0
        table = capsys.readouterr().out

    assert data["agent"] == {
        "running": True,
        "pid": process.pid,
        "status_written_ms": data["agent"]["status_written_ms"],
        "status_fresh": True,
    }
    buffer = data["buffer"]
    assert buffer["rows"] >= buffer["unsent_rows"] > 0
    assert buffer["oldest_unsent_age_s"] >= 0
    assert buffer["session"] >= 1
    assert buffer["last_seq"] >= buffer["rows"]
    broker = data["broker"]
    assert broker["broker"] == f"{mosquitto.host}:{mosquitto.port}"
    assert broker["connected"] is False
    assert broker["last_connected_ms"] <= broker["last_disconnected_ms"]
    assert broker["last_puback_ms"] is not None
    gauge = data["devices"]["gauge-1"]
    assert gauge["state"] == "ok"
    assert 200 < gauge["values"]["level_cm"]["value"] < 300  # the simulated ~250 cm
    assert gauge["values"]["level_cm"]["unit"] == "cm"

    assert f"agent     running (pid {process.pid})" in table
    assert "unsent, oldest unsent" in table
    assert f"broker    {mosquitto.host}:{mosquitto.port}: not connected" in table
    assert "last PUBACK" in table
    assert "gauge-1              ok         level_cm = " in table


def test_status_before_the_agent_ever_ran(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(agent_toml(tmp_path / "data", mosquitto, port_url="/dev/null-port"))

    data = status_json(path, capsys)

    assert data["agent"]["running"] is False
    assert data["buffer"]["exists"] is False
    assert data["broker"] is None
    assert data["devices"]["gauge-1"] == {
        "state": "unknown",
        "last_good_ms": None,
        "last_error": None,
        "values": {},
    }


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_is_shown_on_a_terminal_only() -> None:
    tty, piped = FakeTty(), io.StringIO()
    for stream in (tty, piped):
        line = StatusLine(stream)
        line.show("reading buffer.db: 3 s")
        line.clear()

    assert tty.getvalue().startswith("\rreading buffer.db: 3 s")
    assert piped.getvalue() == ""
