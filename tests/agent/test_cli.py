"""`agent run` as a real process: config errors, SIGTERM -> retained offline, the will."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.cli import main
from edgewatch.broker import Mosquitto
from firmware_sim.bus import SimulatedBus
from tests.agent.conftest import WAIT_S, Recorder, agent_toml
from wire import GatewayState, Status, TopicKind

REPO = Path(__file__).parents[2]


def test_a_config_error_prints_the_message_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[gateway]\nid = "gw-1"\ndata_dir = "d"\n[mqtt]\nhost = "x"\nport = "abc"\n')

    assert main(["run", "--config", str(path)]) == 2

    assert capsys.readouterr().err.strip() == f"{path}: mqtt.port: expected an integer, got 'abc'"


@contextmanager
def agent_process(config_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "firmware-sim")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=WAIT_S)
        if process.stderr:
            process.stderr.close()


def statuses(recorder: Recorder) -> list[Status]:
    return recorder.decoded(TopicKind.STATUS, Status)


@pytest.mark.parametrize(
    ("sig", "expected_exit"),
    [
        pytest.param(signal.SIGTERM, 0, id="sigterm-graceful"),
        pytest.param(signal.SIGKILL, -signal.SIGKILL, id="sigkill-will"),
    ],
)
def test_a_stopped_agent_is_seen_offline_at_once(
    tmp_path: Path,
    mosquitto: Mosquitto,
    recorder: Recorder,
    gauge_bus: SimulatedBus,
    sig: signal.Signals,
    expected_exit: int,
) -> None:
    config_path = tmp_path / "agent.toml"
    config_path.write_text(agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path))

    with agent_process(config_path) as process:
        recorder.wait_for(lambda: statuses(recorder), "birth", timeout_s=20)
        birth = statuses(recorder)[0]
        assert birth.state is GatewayState.ONLINE

        signalled = time.monotonic()
        process.send_signal(sig)
        recorder.wait_for(lambda: len(statuses(recorder)) >= 2, "offline status", timeout_s=2)
        seen_offline_after_s = time.monotonic() - signalled
        exit_code = process.wait(timeout=WAIT_S)
        stderr = process.stderr.read().decode() if process.stderr else ""

    offline = statuses(recorder)[1]
    assert offline.state is GatewayState.OFFLINE
    assert offline.session == birth.session
    assert seen_offline_after_s < 2.0
    assert exit_code == expected_exit, stderr

    late = Recorder(mosquitto)
    try:
        late.wait_for(lambda: late.messages(TopicKind.STATUS), "retained status")
        retained = late.messages(TopicKind.STATUS)[0]
    finally:
        late.close()
    assert retained.retain
    assert Status.model_validate_json(retained.payload).state is GatewayState.OFFLINE


def test_an_unwritable_data_dir_exits_1_with_the_reason(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    path = tmp_path / "agent.toml"
    path.write_text(agent_toml(blocker / "data", mosquitto))

    assert main(["run", "--config", str(path)]) == 1

    assert "the agent cannot run (data_dir" in capsys.readouterr().err
