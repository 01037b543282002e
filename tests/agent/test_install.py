"""`edgewatch agent install|uninstall` into a fake root: the unit file, and the root-only
commands recorded instead of run."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config
from agent.ops.install import UNIT_NAME, RecordingSystem, install, uninstall

EXECUTABLE = "/opt/edgewatch/bin/edgewatch"


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys as written
    parser.read_string(path.read_text())
    return parser


def toml(data_dir: str) -> str:
    return f'[gateway]\nid = "gw-1"\ndata_dir = "{data_dir}"\n[mqtt]\nhost = "broker.example"\n'


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "agent.toml"
    path.parent.mkdir()
    path.write_text(toml("/var/lib/edgewatch"))
    return path


def test_install_writes_a_notify_unit_with_watchdog_restart_and_hardening(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    argv = ["install", "--config", str(config_path), "--root", str(root)]

    assert main([*argv, "--executable", EXECUTABLE, "--watchdog", "20"]) == 0

    unit = read_unit(root / "etc/systemd/system" / UNIT_NAME)
    service = unit["Service"]
    assert shlex.split(service["ExecStart"]) == [
        EXECUTABLE, "agent", "run", "--config", str(config_path)
    ]  # fmt: skip
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] == "20"
    assert service["Restart"] == "on-failure"  # 75 after a `restart` command comes back
    assert service["RestartPreventExitStatus"] == "2"  # a bad config: fix it first
    assert (service["User"], service["Group"]) == ("edgewatch", "edgewatch")
    assert service["SupplementaryGroups"] == "dialout"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/edgewatch"
    assert "AF_UNIX" in service["RestrictAddressFamilies"]  # NOTIFY_SOCKET
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]

    out = capsys.readouterr().out
    commands = out.split("# commands (not run: --root)\n")[1].splitlines()
    assert commands[0].startswith("useradd --system")
    assert commands[0].endswith("--groups dialout edgewatch")
    assert "install -d -o edgewatch -g edgewatch -m 0750 /var/lib/edgewatch" in commands
    assert commands[-2:] == [
        "systemctl daemon-reload",
        f"systemctl enable --now {UNIT_NAME}",
    ]


def test_an_existing_user_is_added_to_the_serial_group(tmp_path: Path, config_path: Path) -> None:
    system = RecordingSystem(users={"gw"})
    install(
        load_config(config_path),
        config_path=config_path,
        system=system,
        user="gw",
        serial_group="uucp",
        root=tmp_path / "root",
        start=False,
    )

    assert system.commands[0] == ["usermod", "--append", "--groups", "uucp", "gw"]
    assert ["systemctl", "enable", "--now", UNIT_NAME] not in system.commands
    unit = read_unit(tmp_path / "root/etc/systemd/system" / UNIT_NAME)
    assert unit["Service"]["SupplementaryGroups"] == "uucp"


def test_a_config_under_home_keeps_home_readable(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path / "agent.toml", toml("/srv/ew")))
    system = RecordingSystem()
    unit_path = install(
        config,
        config_path=Path("/home/pi/agent.toml"),
        system=system,
        root=tmp_path / "root",
        executable=Path("/home/pi/venv/bin/edgewatch"),
    )

    assert read_unit(unit_path)["Service"]["ProtectHome"] == "read-only"


def test_a_bad_config_is_not_installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "agent.toml", '[gateway]\nid = "gw-1"\ndata_dir = "d"\n')
    root = tmp_path / "root"

    assert main(["install", "--config", str(path), "--root", str(root)]) == 2

    assert "mqtt: missing required key" in capsys.readouterr().err
    assert not root.exists()


def test_dry_run_prints_the_unit_and_commands_and_writes_nothing(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"

    assert main(["install", "--config", str(config_path), "--root", str(root), "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert "Type=notify" in out
    assert "systemctl enable --now" in out
    assert not root.exists()


def test_uninstall_removes_the_unit_and_keeps_the_data_unless_purged(
    tmp_path: Path, config_path: Path
) -> None:
    root = tmp_path / "root"
    unit_path = install(
        load_config(config_path), config_path=config_path, system=RecordingSystem(), root=root
    )
    system = RecordingSystem(users={"edgewatch"})

    uninstall(system=system, root=root)

    assert not unit_path.exists()
    assert system.commands == [
        ["systemctl", "disable", "--now", UNIT_NAME],
        ["systemctl", "daemon-reload"],
    ]

    unit_path = install(
        load_config(config_path), config_path=config_path, system=RecordingSystem(), root=root
    )
    system = RecordingSystem(users={"edgewatch"})
    uninstall(system=system, root=root, purge=True)

    assert system.commands[-2:] == [
        ["rm", "-rf", "--one-file-system", "--", "/var/lib/edgewatch"],
        ["userdel", "edgewatch"],
    ]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
