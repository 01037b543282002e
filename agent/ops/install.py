"""``edgewatch agent install`` / ``uninstall``: the agent as a systemd service.

install:
1. checks the config (a config the agent refuses is never installed);
2. creates the system user (``useradd --system``, no login, no home) in the serial group
   (``dialout`` on Debian and Raspberry Pi OS), or adds an existing one to it;
3. creates ``data_dir`` owned by that user (0750) and lets it read the config (root:user
   0640: it may hold ``mqtt.password``);
4. writes ``edgewatch-agent.service`` (``unit_text``) and runs ``systemctl daemon-reload``
   and ``systemctl enable --now``.

uninstall stops and disables the service and removes the unit; the data (buffer,
status) stays unless ``--purge``, which also removes the data dir and the user.

Everything that needs root goes through a ``System`` (``run`` a command, ``user_exists``):
``HostSystem`` runs them; tests use a recording one and ``--root DIR``, a prefix for every
path written, so the unit file can be checked without root or systemd. ``--dry-run``
prints the unit and the commands and changes nothing.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from agent.config import AgentConfig, ConfigError, load_config

UNIT_NAME = "edgewatch-agent.service"
DEFAULT_CONFIG = Path("/etc/edgewatch/agent.toml")
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_USER = "edgewatch"
DEFAULT_SERIAL_GROUP = "dialout"
DEFAULT_WATCHDOG_S = 30
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


class System(Protocol):
    def run(self, argv: list[str]) -> None: ...

    def user_exists(self, name: str) -> bool: ...


class HostSystem:
    """The real machine: commands run (and must succeed), users looked up in passwd."""

    def run(self, argv: list[str]) -> None:
        subprocess.run(argv, check=True)

    def user_exists(self, name: str) -> bool:
        try:
            pwd.getpwnam(name)
        except KeyError:
            return False
        return True


@dataclass
class RecordingSystem:
    """Records commands instead of running them (``--dry-run`` and tests)."""

    users: set[str] = field(default_factory=set)
    commands: list[list[str]] = field(default_factory=list)

    def run(self, argv: list[str]) -> None:
        self.commands.append(argv)

    def user_exists(self, name: str) -> bool:
        return name in self.users


@dataclass(frozen=True, slots=True)
class UnitSettings:
    executable: Path  # the installed `edgewatch` console script
    config_path: Path
    data_dir: Path
    gateway_id: str
    user: str = DEFAULT_USER
    serial_group: str = DEFAULT_SERIAL_GROUP
    watchdog_s: int = DEFAULT_WATCHDOG_S
    read_only_home: bool = False  # something the agent needs lives under /home or /root


def unit_text(settings: UnitSettings) -> str:
    """The systemd unit: Type=notify with a watchdog the agent feeds, restart on failure
    (75 after a `restart` command; never on 2, a config to fix first), hardening that
    leaves the agent its data dir, the serial ports and the network."""
    exec_start = shlex.join(
        [str(settings.executable), "agent", "run", "--config", str(settings.config_path)]
    )
    home = "read-only" if settings.read_only_home else "yes"
    return f"""\
# Written by `edgewatch agent install`; `edgewatch agent uninstall` removes it.
[Unit]
Description=edgewatch gateway agent ({settings.gateway_id})
Documentation=https://github.com/edgewatch/edgewatch/blob/main/docs/field-guide.md
After=network-online.target time-sync.target
Wants=network-online.target
# A gateway on a pole never gives up restarting.
StartLimitIntervalSec=0

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
User={settings.user}
Group={settings.user}
SupplementaryGroups={settings.serial_group}
Restart=on-failure
RestartSec=2
RestartPreventExitStatus=2
KillSignal=SIGTERM
TimeoutStartSec=60
TimeoutStopSec=20
WatchdogSec={settings.watchdog_s}
Environment=PYTHONUNBUFFERED=1
UMask=0027
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={settings.data_dir}
ProtectHome={home}
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
"""


def under_root(root: Path | None, path: Path) -> Path:
    """``path`` inside the fake root ``root`` (tests), or itself."""
    return path if root is None else root / path.relative_to(path.anchor)


def default_executable() -> Path:
    """The `edgewatch` script of this installation (the venv's, when run from one)."""
    beside = Path(sys.executable).parent / "edgewatch"
    if beside.exists():
        return beside
    found = shutil.which("edgewatch")
    return Path(found) if found else beside


def _needs_home(paths: list[Path]) -> bool:
    return any(p.is_relative_to("/home") or p.is_relative_to("/root") for p in paths)


def install(
    config: AgentConfig,
    *,
    config_path: Path,
    system: System,
    user: str = DEFAULT_USER,
    serial_group: str = DEFAULT_SERIAL_GROUP,
    unit_dir: Path = DEFAULT_UNIT_DIR,
    data_dir: Path | None = None,
    executable: Path | None = None,
    watchdog_s: int = DEFAULT_WATCHDOG_S,
    root: Path | None = None,
    start: bool = True,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> Path:
    """Install the service; returns the unit file's path (under ``root``). With
    ``dry_run`` the unit is printed, not written."""
    out = sys.stdout if out is None else out
    config_path = config_path.absolute()
    data_dir = (data_dir or config.gateway.data_dir).absolute()
    if data_dir != config.gateway.data_dir:
        print(
            f"note: --data-dir {data_dir} differs from the config's data_dir"
            f" {config.gateway.data_dir}: the agent writes where its config says",
            file=out,
        )
    executable = executable or default_executable()
    settings = UnitSettings(
        executable=executable,
        config_path=config_path,
        data_dir=data_dir,
        gateway_id=config.gateway.id,
        user=user,
        serial_group=serial_group,
        watchdog_s=watchdog_s,
        read_only_home=_needs_home(
            [executable, config_path, data_dir, *config.mqtt.tls_files.values()]
        ),
    )
    if system.user_exists(user):
        system.run(["usermod", "--append", "--groups", serial_group, user])
    else:
        system.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
             str(data_dir), "--shell", "/usr/sbin/nologin", "--groups", serial_group, user]
        )  # fmt: skip
    system.run(["install", "-d", "-o", user, "-g", user, "-m", "0750", str(data_dir)])
    system.run(["chown", f"root:{user}", str(config_path)])
    system.run(["chmod", "0640", str(config_path)])
    unit_path = under_root(root, unit_dir / UNIT_NAME)
    if dry_run:
        print(f"# {unit_path} (not written: --dry-run)\n{unit_text(settings)}", file=out)
    else:
        unit_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = unit_path.with_name(f".{UNIT_NAME}.tmp")
        tmp.write_text(unit_text(settings), encoding="utf-8")
        os.replace(tmp, unit_path)
        print(f"wrote {unit_path}", file=out)
    system.run(["systemctl", "daemon-reload"])
    if start:
        system.run(["systemctl", "enable", "--now", UNIT_NAME])
    return unit_path


def installed_data_dir(unit_path: Path) -> Path | None:
    """The data dir an installed unit lets the agent write (its ReadWritePaths=)."""
    try:
        text = unit_path.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("ReadWritePaths="):
            return Path(line.split("=", 1)[1].strip())
    return None


def uninstall(
    *,
    system: System,
    user: str = DEFAULT_USER,
    unit_dir: Path = DEFAULT_UNIT_DIR,
    purge: bool = False,
    root: Path | None = None,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> None:
    out = sys.stdout if out is None else out
    unit_path = under_root(root, unit_dir / UNIT_NAME)
    data_dir = installed_data_dir(unit_path)
    system.run(["systemctl", "disable", "--now", UNIT_NAME])
    if unit_path.exists() and not dry_run:
        unit_path.unlink()
        print(f"removed {unit_path}", file=out)
    system.run(["systemctl", "daemon-reload"])
    if not purge:
        if data_dir is not None:
            print(f"kept the data in {data_dir} (--purge removes it and the user)", file=out)
        return
    if data_dir is not None:
        system.run(["rm", "-rf", "--one-file-system", "--", str(data_dir)])
    if system.user_exists(user):
        system.run(["userdel", user])


def add_arguments(parser: argparse.ArgumentParser, *, installing: bool) -> None:
    parser.add_argument("--user", default=DEFAULT_USER, help="service user (default edgewatch)")
    parser.add_argument("--unit-dir", type=Path, default=DEFAULT_UNIT_DIR, help="systemd units")
    parser.add_argument("--root", type=Path, help="prefix for every path (tests, images)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be done; change nothing"
    )
    if installing:
        parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="agent.toml")
        parser.add_argument("--data-dir", type=Path, help="default: the config's data_dir")
        parser.add_argument("--group", default=DEFAULT_SERIAL_GROUP, help="serial group")
        parser.add_argument("--executable", type=Path, help="the edgewatch script to run")
        parser.add_argument("--watchdog", type=int, default=DEFAULT_WATCHDOG_S, help="seconds")
        parser.add_argument("--no-start", action="store_true", help="enable only at next boot")
    else:
        parser.add_argument("--purge", action="store_true", help="remove data dir and user too")


def run_install(args: argparse.Namespace, *, system: System | None = None) -> int:
    """With ``--dry-run`` or ``--root`` (and no ``system`` given) the commands are
    recorded and printed, never run."""
    installing = args.command == "install"
    root = args.root
    recording = RecordingSystem() if system is None and (args.dry_run or root) else None
    chosen = recording or system or HostSystem()
    if recording is None and system is None and os.geteuid() != 0:
        print(f"edgewatch agent {args.command}: run it as root (sudo)", file=sys.stderr)
        return EXIT_FAILED
    try:
        if installing:
            config = load_config(args.config.absolute())
            install(
                config,
                config_path=args.config,
                system=chosen,
                user=args.user,
                serial_group=args.group,
                unit_dir=args.unit_dir,
                data_dir=args.data_dir,
                executable=args.executable,
                watchdog_s=args.watchdog,
                root=root,
                start=not args.no_start,
                dry_run=args.dry_run,
            )
        else:
            uninstall(
                system=chosen,
                user=args.user,
                unit_dir=args.unit_dir,
                purge=args.purge,
                root=root,
                dry_run=args.dry_run,
            )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"edgewatch agent {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if recording is not None:
        print(f"# commands (not run: {'--dry-run' if args.dry_run else '--root'})")
        for argv in recording.commands:
            print(shlex.join(argv))
    return EXIT_OK
