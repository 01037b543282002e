"""``edgewatch agent run --config agent.toml``: run a gateway agent until SIGTERM / Ctrl-C.

Exit status: 0 after a graceful stop; 1 when the agent cannot start (its buffer cannot
be opened); 2 when the config cannot be used (the message, on stderr, names the file, the
key and the fix); 75 (EX_TEMPFAIL) after a graceful stop asked for by a ``restart``
command: the service manager starts the agent again (systemd: ``Restart=on-failure``).

``edgewatch agent probe --port PORT ...``: find the Modbus slaves on a cable (see
``agent.probe`` and docs/field-guide.md). Exit status: 0 when some slave answered, 3 when
none did, 1 when the port cannot be opened, 2 for a bad option.

``edgewatch agent install|uninstall``: the agent as a systemd service (``agent.install``).
``edgewatch agent doctor --config PATH``: check a gateway, with the fix for each failure
(``agent.doctor``). ``edgewatch agent status --config PATH``: buffer, devices and the last
contact with the broker, without the uplink (``agent.status``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType

from agent import doctor, install, status
from agent.agent import Agent
from agent.config import AgentConfig, ConfigError, load_config
from agent.probe_cli import run_probe

EXIT_OK = 0
EXIT_RUNTIME = 1  # the agent could not start (e.g. its data_dir is not writable)
EXIT_CONFIG = 2
EXIT_NOTHING_FOUND = 3  # probe: no slave answered
EXIT_RESTART = 75  # EX_TEMPFAIL: stopped for a restart command; the supervisor restarts it


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgewatch agent", description="edgewatch gateway agent")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the agent until SIGTERM / Ctrl-C")
    run.add_argument("--config", required=True, type=Path, help="the agent's TOML config")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    probe = commands.add_parser(
        "probe",
        help="find the Modbus slaves on a cable and print a config snippet",
        description="Ask every slave id for one register; print a ready [[ports]] +"
        " [[devices]] TOML snippet for what answered (progress on stderr).",
    )
    probe.add_argument("--port", required=True, help="serial device or pyserial URL")
    bauds = probe.add_mutually_exclusive_group()
    bauds.add_argument(
        "--baud", default="9600", help="baud rate(s) to try, comma-separated (default 9600)"
    )
    bauds.add_argument(
        "--scan-baud", action="store_true", help="try every usual baud, common ones first"
    )
    probe.add_argument("--parity", default="N", choices=["N", "E", "O"], help="default N")
    probe.add_argument("--slaves", default="1-247", help="ids, e.g. 1-247 or 1,3,10-12")
    probe.add_argument("--register", type=int, default=0, help="0-based address (default 0)")
    probe.add_argument("--function", type=int, default=3, choices=[3, 4], help="3 or 4")
    probe.add_argument(
        "--timeout", type=float, default=0.1, help="seconds to wait per id (default 0.1)"
    )
    probe.add_argument("--json", action="store_true", help="one JSON object on stdout")
    install.add_arguments(
        commands.add_parser(
            "install",
            help="install the agent as a systemd service (root)",
            description="Create the service user (in the serial group), the data dir and"
            " edgewatch-agent.service (Type=notify, watchdog, Restart=on-failure, hardened);"
            " enable and start it.",
        ),
        installing=True,
    )
    install.add_arguments(
        commands.add_parser(
            "uninstall",
            help="stop and remove the systemd service (data kept unless --purge)",
        ),
        installing=False,
    )
    doctor.add_arguments(
        commands.add_parser(
            "doctor",
            help="check config, ports, devices, broker, clock, disk and buffer",
            description="One PASS/WARN/FAIL/SKIP line per check, the fix under each failure."
            " Exit status 0 when nothing failed, 1 when something did, 2 for a bad config.",
        )
    )
    status.add_arguments(
        commands.add_parser(
            "status",
            help="buffer, devices and last broker contact, read locally (no uplink needed)",
        )
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "probe":
        return run_probe(args, parser)
    if args.command in ("install", "uninstall"):
        return install.run_install(args)
    if args.command == "doctor":
        return doctor.run_doctor(args)
    if args.command == "status":
        return status.run_status(args)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    return run(config_path=args.config, config=config)


def run(*, config_path: Path, config: AgentConfig) -> int:
    """Run ``config`` until SIGTERM or SIGINT, then stop gracefully."""
    stop = threading.Event()
    restart = threading.Event()

    def on_restart() -> None:
        restart.set()
        stop.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with Agent(config, on_restart=on_restart, config_dir=config_path.parent):
            stop.wait()
    except (OSError, sqlite3.Error) as exc:
        data_dir = config.gateway.data_dir
        print(f"{config_path}: the agent cannot run (data_dir {data_dir}): {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if restart.is_set():
        logging.getLogger(__name__).info("agent stopped for a restart (exit %d)", EXIT_RESTART)
        return EXIT_RESTART
    logging.getLogger(__name__).info("agent stopped (%s)", config_path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
