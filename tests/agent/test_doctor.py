"""`edgewatch agent doctor` against real parts: a simulated gauge on a pty, real mosquitto
brokers (one with a password file), a missing port, a port another process holds."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import PortConfig, parse_config
from agent.ops.checks import CheckName, CheckResult, Outcome
from agent.ops.doctor import run_checks
from agent.ops.doctor_serial import check_port, present_ports, stable_names
from edgewatch.broker import Mosquitto, free_port
from edgewatch.processes import ProcessGroup
from edgewatch.waiting import wait_until
from firmware_sim.bus import SimulatedBus
from tests.agent.conftest import WAIT_S, agent_process, agent_toml

ROOT = Path(__file__).parents[2]


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def doctor_json(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, str]]]:
    code = main(["doctor", "--config", str(path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is (code == 0)
    return code, report["checks"]


def outcome(checks: list[dict[str, str]], name: CheckName) -> list[tuple[str, str]]:
    return [(c["outcome"], c["message"]) for c in checks if c["name"] == name]


def test_a_healthy_gateway_passes_and_reads_its_device(
    tmp_path: Path,
    mosquitto: Mosquitto,
    gauge_bus: SimulatedBus,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(
        tmp_path, agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path)
    )

    code, checks = doctor_json(path, capsys)

    assert code == 0, checks
    for name in (
        CheckName.CONFIG,
        CheckName.PORT_EXISTS,
        CheckName.PORT_FREE,
        CheckName.PORT_ACCESS,
        CheckName.DEVICE_ANSWERS,
        CheckName.BROKER_REACHABLE,
        CheckName.BROKER_TLS,
        CheckName.BROKER_LOGIN,
        CheckName.DISK,
        CheckName.BUFFER,
    ):
        assert [o for o, _ in outcome(checks, name)] == ["PASS"], (name, checks)
    [(_, answered)] = outcome(checks, CheckName.DEVICE_ANSWERS)
    assert "level_cm=" in answered
    assert "cm" in answered
    [(_, login)] = outcome(checks, CheckName.BROKER_LOGIN)
    assert "CONNACK Success" in login
    assert outcome(checks, CheckName.CLOCK)[0][0] in ("PASS", "WARN")


def test_device_reads_report_progress(
    tmp_path: Path, mosquitto: Mosquitto, gauge_bus: SimulatedBus
) -> None:
    path = write_config(
        tmp_path, agent_toml(tmp_path / "d", mosquitto, port_url=gauge_bus.port_path)
    )
    lines: list[str] = []

    list(run_checks(path, progress=lines.append))

    assert lines[0] == "reading device 1/1: gauge-1 on bus1"


def test_a_missing_port_fails_with_the_ports_present(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "ttyUSB-gone"
    path = write_config(tmp_path, agent_toml(tmp_path / "data", mosquitto, port_url=str(missing)))

    assert main(["doctor", "--config", str(path)]) == 1

    out = capsys.readouterr().out
    assert f"FAIL  port-exists       bus1 ({missing}): {missing} does not exist" in out
    if present_ports():
        assert "fix: plug in the adapter (see `dmesg | tail`), or set ports.url to one" in out
    else:  # this machine: the fix reads as a sentence, not "one present: none: ..."
        assert "fix: no USB serial adapter is plugged in: plug one in" in out
        assert "none:" not in out
    assert "SKIP  device-answers    gauge-1: port bus1 is not usable" in out
    assert "checks: 1 failed" in out


def test_a_tty_usb_name_gets_its_stable_by_id_name(tmp_path: Path) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    target = tmp_path / "ttyUSB3"
    target.write_text("")
    (by_id / "usb-FTDI_FT232R_USB_UART_A10K5ZQ4-if00-port0").symlink_to(target)

    assert stable_names(str(target), by_id=by_id) == [
        str(by_id / "usb-FTDI_FT232R_USB_UART_A10K5ZQ4-if00-port0")
    ]
    [result] = check_port(PortConfig(name="bus1", url="/dev/ttyUSB9"), by_id=by_id)
    assert result.outcome is Outcome.FAIL
    assert "usb-FTDI_FT232R_USB_UART_A10K5ZQ4-if00-port0" in result.fix


@pytest.fixture
def port_holder(gauge_bus: SimulatedBus) -> Iterator[subprocess.Popen[str]]:
    """Another process (say, minicom) with the port open."""
    code = (
        "import os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY);"
        " print('open', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, gauge_bus.port_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "open\n"
    yield holder
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=WAIT_S)
    holder.stdout.close()


def test_a_port_held_by_another_process_fails_naming_it(
    tmp_path: Path,
    mosquitto: Mosquitto,
    gauge_bus: SimulatedBus,
    port_holder: subprocess.Popen[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(
        tmp_path, agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path)
    )

    code, checks = doctor_json(path, capsys)

    assert code == 1
    [(state, message)] = outcome(checks, CheckName.PORT_FREE)
    assert state == "FAIL"
    assert f"pid {port_holder.pid}" in message
    assert outcome(checks, CheckName.DEVICE_ANSWERS)[0][0] == "SKIP"


def test_an_unreachable_broker_fails_and_skips_tls_and_login(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    text = agent_toml(tmp_path / "data", mosquitto).replace(
        f"port = {mosquitto.port}", f"port = {free_port()}"
    )

    code, checks = doctor_json(write_config(tmp_path, text), capsys)

    assert code == 1
    assert outcome(checks, CheckName.BROKER_REACHABLE)[0] == (
        "FAIL",
        "connection refused: nothing listens there",
    )
    assert [o for o, _ in outcome(checks, CheckName.BROKER_LOGIN)] == ["SKIP"]


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "gw-test-1", "right-secret"],
        check=True,
        capture_output=True,
    )
    passwords.chmod(0o600)
    extra = (
        f"user root\npassword_file {passwords}"  # as root, mosquitto drops to "mosquitto" otherwise
    )
    with Mosquitto(tmp_path / "pw-broker", allow_anonymous=False, extra_config=extra) as broker:
        yield broker


@pytest.mark.parametrize(("password", "expected"), [("wrong", "FAIL"), ("right-secret", "PASS")])
def test_credentials_are_checked_with_a_real_connect(
    tmp_path: Path,
    password_broker: Mosquitto,
    capsys: pytest.CaptureFixture[str],
    password: str,
    expected: str,
) -> None:
    text = agent_toml(tmp_path / "data", password_broker).replace(
        "keepalive_s = 2", f'keepalive_s = 2\nusername = "gw-test-1"\npassword = "{password}"'
    )

    code, checks = doctor_json(write_config(tmp_path, text), capsys)

    [login] = [c for c in checks if c["name"] == CheckName.BROKER_LOGIN]
    assert login["outcome"] == expected, login
    if expected == "FAIL":
        assert login["message"] == "refused as 'gw-test-1': CONNACK Not authorized"
        assert "mqtt.password" in login["fix"]
        assert code == 1


def test_a_bad_config_names_the_key_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, '[gateway]\nid = "gw-1"\ndata_dir = "d"\n[mqtt]\nhots = "x"\n')

    code, checks = doctor_json(path, capsys)

    assert code == 2
    assert [c["name"] for c in checks] == ["config"]
    assert "mqtt.hots: unknown key (did you mean 'host'?)" in checks[0]["message"]


def test_while_the_agent_runs_devices_are_not_read_and_the_buffer_is_shown(
    tmp_path: Path, mosquitto: Mosquitto, gauge_bus: SimulatedBus
) -> None:
    path = write_config(
        tmp_path, agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path)
    )

    def agent_up_and_buffering() -> list[CheckResult]:
        # The agent is "running" for doctor once its status file says so (at its first
        # heartbeat), which may come a moment after its first buffered readings.
        results = list(run_checks(path))
        by_name = {r.name: r for r in results}
        running = by_name[CheckName.DEVICE_ANSWERS].outcome is Outcome.SKIP
        holding = by_name[CheckName.PORT_FREE].message.startswith("in use by")
        return results if running and holding and _buffer_rows(results) else []

    with agent_process(path) as process:
        results: list[CheckResult] = wait_until(
            agent_up_and_buffering, timeout_s=20, message="the agent up, its buffer holding rows"
        )

    by_name = {r.name: r for r in results}
    device = by_name[CheckName.DEVICE_ANSWERS]
    assert device.outcome is Outcome.SKIP, results
    assert f"the agent (pid {process.pid}) is running" in device.message
    assert (
        by_name[CheckName.PORT_FREE].message == f"in use by the edgewatch agent (pid {process.pid})"
    )
    assert by_name[CheckName.BUFFER].outcome is Outcome.PASS


def _buffer_rows(results: list[CheckResult]) -> bool:
    buffer = next(r for r in results if r.name is CheckName.BUFFER)
    return not buffer.message.startswith(("0 rows", "no buffer"))


def test_every_check_is_explained_in_the_field_guide() -> None:
    guide = (ROOT / "docs" / "field-guide.md").read_text()

    missing = [name.value for name in CheckName if f"`{name.value}`" not in guide]

    assert missing == []


def test_the_field_guide_install_sample_is_a_config_the_agent_accepts() -> None:
    guide = (ROOT / "docs" / "field-guide.md").read_text()
    sample = guide.split("## 6.")[1].split("```toml\n")[1].split("```")[0]
    without_files = "\n".join(line for line in sample.splitlines() if "tls_ca_file" not in line)

    config = parse_config(without_files)

    assert config.gateway.data_dir == Path("/var/lib/edgewatch")
    assert config.ports[0].url.startswith("/dev/serial/by-id/")


def test_doctor_against_the_simulator_process_runs_its_device_checks(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    """The field guide's practice run: `edgewatch sim run` holds its pty's master side (and
    the slave), which is the line's far end, not a second master on the bus."""
    manifest = tmp_path / "sim.json"
    with ProcessGroup(tmp_path / "logs") as procs:
        sim = procs.start_cli("sim", "sim", "run", "--devices", "1", "--manifest", str(manifest))
        wait_until(manifest.exists, timeout_s=WAIT_S, message="the simulator's manifest")
        pty = json.loads(manifest.read_text())["devices"][0]["pty"]
        path = write_config(tmp_path, agent_toml(tmp_path / "data", mosquitto, port_url=pty))

        code, checks = doctor_json(path, capsys)

        [(state, message)] = outcome(checks, CheckName.PORT_FREE)
        assert state == "PASS", message
        assert "a pseudo-terminal: its other end is" in message
        assert f"pid {sim.process.pid}" in message
        assert outcome(checks, CheckName.DEVICE_ANSWERS)[0][0] == "PASS", checks
        assert code == 0, checks
