"""`agent run` as a real process: config errors, SIGTERM -> retained offline, the will."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from agent.cli import SUBCOMMANDS, main
from edgewatch.broker import Mosquitto
from firmware_sim.bus import SimulatedBus
from tests.agent.conftest import (
    WAIT_S,
    Recorder,
    agent_process,
    agent_toml,
    fresh_python,
)
from wire import GatewayState, Status, TopicKind


def test_a_config_error_prints_the_message_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[gateway]\nid = "gw-1"\ndata_dir = "d"\n[mqtt]\nhost = "x"\nport = "abc"\n')

    assert main(["run", "--config", str(path)]) == 2

    assert capsys.readouterr().err.strip() == f"{path}: mqtt.port: expected an integer, got 'abc'"


KEEPALIVE_S = 600  # the broker would send the will after 1.5 x this without a stop
assert KEEPALIVE_S > 10 * WAIT_S


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
    """Offline "at once": on the stop itself (the graceful offline, or the will the broker
    sends when the killed process's connection closes), not when the broker's keepalive runs
    out. The keepalive here is 10 minutes, so the offline status, waited for with the
    usual deadline of seconds, can only come from the stop."""
    config_path = tmp_path / "agent.toml"
    toml = agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path)
    assert "keepalive_s = 2\n" in toml
    config_path.write_text(toml.replace("keepalive_s = 2\n", f"keepalive_s = {KEEPALIVE_S}\n"))

    with agent_process(config_path) as process:
        recorder.wait_for(lambda: statuses(recorder), "birth", timeout_s=20)
        birth = statuses(recorder)[0]
        assert birth.state is GatewayState.ONLINE

        process.send_signal(sig)
        recorder.wait_for(lambda: len(statuses(recorder)) >= 2, "offline status", timeout_s=WAIT_S)
        exit_code = process.wait(timeout=WAIT_S)
        stderr = process.stderr.read().decode() if process.stderr else ""

    offline = statuses(recorder)[1]
    assert offline.state is GatewayState.OFFLINE
    assert offline.session == birth.session
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


# What only another subcommand needs: `run` must never import these (issue 4's RSS budget).
NOT_FOR_RUN = {
    "agent.ops.doctor",
    "agent.ops.doctor_net",
    "agent.ops.doctor_serial",
    "agent.ops.status",
    "agent.ops.status_watch",
    "agent.ops.install",
    "agent.ops.probe",
    "agent.ops.probe_cli",
}


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after ``code``."""
    modules, _ = fresh_python(f"{code}\nimport sys", "sorted(sys.modules)")
    return set(modules)


def test_the_run_parser_imports_no_other_subcommand_and_not_the_agent() -> None:
    loaded = modules_after("from agent.cli import build_parser; build_parser('run')")

    assert not loaded & NOT_FOR_RUN
    # The config and the agent are imported when run runs, not to parse its arguments.
    assert not loaded & {"agent.config", "agent.agent", "hashlib", "ssl"}


def test_the_full_parser_imports_every_subcommand() -> None:
    loaded = modules_after("from agent.cli import build_parser; build_parser()")

    assert {
        "agent.ops.doctor",
        "agent.ops.status",
        "agent.ops.install",
        "agent.ops.probe_cli",
    } <= loaded


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])

    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    for name, subcommand in SUBCOMMANDS.items():
        assert f"{name} {subcommand.help}" in out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_a_subcommands_help_shows_its_arguments(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])

    assert exit_info.value.code == 0
    assert "--" in capsys.readouterr().out.split("options:", 1)[1].replace("--help", "")
