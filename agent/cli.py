"""``edgewatch agent run --config agent.toml``: run a gateway agent until SIGTERM / Ctrl-C.

Exit status: 0 after a graceful stop; 1 when the agent cannot start (its buffer cannot
be opened); 2 when the config cannot be used (the message, on stderr, names the file, the
key and the fix); 75 (EX_TEMPFAIL) after a graceful stop asked for by a ``restart``
command: the service manager starts the agent again (systemd: ``Restart=on-failure``).

``edgewatch agent probe --port PORT ...``: find the Modbus slaves on a cable (see
``agent.ops.probe`` and docs/field-guide.md). Exit status: 0 when some slave answered, 3 when
none did, 1 when the port cannot be opened, 2 for a bad option.

``edgewatch agent install|uninstall``: the agent as a systemd service (``agent.ops.install``).
``edgewatch agent doctor --config PATH``: check a gateway, with the fix for each failure
(``agent.ops.doctor``). ``edgewatch agent status --config PATH``: buffer, devices and the last
contact with the broker, without the uplink (``agent.ops.status``).

A subcommand's module is imported only when that subcommand is chosen (``build_parser``):
``run`` is the long-lived process and holds every module it imports for its whole life
(issue 4's RSS budget), so it never imports doctor's, status's, install's or probe's.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from agent.uplink import openssl

if TYPE_CHECKING:
    from agent.config import AgentConfig

EXIT_OK = 0
EXIT_RUNTIME = 1  # the agent could not start (e.g. its data_dir is not writable)
EXIT_CONFIG = 2
EXIT_NOTHING_FOUND = 3  # probe: no slave answered
EXIT_RESTART = 75  # EX_TEMPFAIL: stopped for a restart command; the supervisor restarts it

# What a chosen subcommand runs: its parsed arguments and the whole parser (for usage).
Handler = Callable[[argparse.Namespace, argparse.ArgumentParser], int]


def _run_arguments(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--config", required=True, type=Path, help="the agent's TOML config")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return lambda args, _parser: run_command(args)


# Each of these imports its subcommand's module, adds its arguments and returns its handler;
# build_parser calls only the chosen one's.


def _probe_arguments(parser: argparse.ArgumentParser) -> Handler:
    from agent.ops import probe_cli  # noqa: PLC0415 (only when chosen: see build_parser)

    probe_cli.add_arguments(parser)
    return probe_cli.run_probe


def _install_arguments(parser: argparse.ArgumentParser) -> Handler:
    from agent.ops import install  # noqa: PLC0415 (only when chosen: see build_parser)

    install.add_arguments(parser, installing=True)
    return lambda args, _parser: install.run_install(args)


def _uninstall_arguments(parser: argparse.ArgumentParser) -> Handler:
    from agent.ops import install  # noqa: PLC0415 (only when chosen: see build_parser)

    install.add_arguments(parser, installing=False)
    return lambda args, _parser: install.run_install(args)


def _doctor_arguments(parser: argparse.ArgumentParser) -> Handler:
    from agent.ops import doctor  # noqa: PLC0415 (only when chosen: see build_parser)

    doctor.add_arguments(parser)
    return lambda args, _parser: doctor.run_doctor(args)


def _status_arguments(parser: argparse.ArgumentParser) -> Handler:
    from agent.ops import status  # noqa: PLC0415 (only when chosen: see build_parser)

    status.add_arguments(parser)
    return lambda args, _parser: status.run_status(args)


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], Handler]
    description: str | None = None


SUBCOMMANDS: dict[str, Subcommand] = {
    "run": Subcommand("run the agent until SIGTERM / Ctrl-C", _run_arguments),
    "probe": Subcommand(
        "find the Modbus slaves on a cable and print a config snippet",
        _probe_arguments,
        description="Ask every slave id for one register; print a ready [[ports]] +"
        " [[devices]] TOML snippet for what answered (progress on stderr).",
    ),
    "install": Subcommand(
        "install the agent as a systemd service (root)",
        _install_arguments,
        description="Create the service user (in the serial group), the data dir and"
        " edgewatch-agent.service (Type=notify, watchdog, Restart=on-failure, hardened);"
        " enable and start it.",
    ),
    "uninstall": Subcommand(
        "stop and remove the systemd service (data kept unless --purge)", _uninstall_arguments
    ),
    "doctor": Subcommand(
        "check config, ports, devices, broker, clock, disk and buffer",
        _doctor_arguments,
        description="One PASS/WARN/FAIL/SKIP line per check, the fix under each failure."
        " Exit status 0 when nothing failed, 1 when something did, 2 for a bad config.",
    ),
    "status": Subcommand(
        "buffer, devices and last broker contact, read locally (no uplink needed)",
        _status_arguments,
    ),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand, with its help; the arguments (and so the module) of ``only``
    alone, or of every subcommand when ``only`` is None (``--help``, no or an unknown
    subcommand)."""
    parser = argparse.ArgumentParser(prog="edgewatch agent", description="edgewatch gateway agent")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, subcommand in SUBCOMMANDS.items():
        chosen = commands.add_parser(name, help=subcommand.help, description=subcommand.description)
        if only is None or name == only:
            chosen.set_defaults(handler=subcommand.add_arguments(chosen))
    return parser


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    only = args_in[0] if args_in and args_in[0] in SUBCOMMANDS else None
    parser = build_parser(only)
    args = parser.parse_args(args_in)
    handler: Handler = args.handler
    return handler(args, parser)


def run_command(args: argparse.Namespace) -> int:
    """``run``: load the config and run it. agent.config and agent.agent are imported
    here, not at the top, so OpenSSL stays out of an agent without TLS (``agent.uplink.openssl``):
    hashlib's backend is chosen before the config (which hashes) is imported, and ``ssl``
    is left out, once the config says the uplink does not use TLS, before paho is."""
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    openssl.use_builtin_hashes()
    from agent.config import ConfigError, load_config  # noqa: PLC0415 (see the docstring)

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    openssl.leave_out_ssl(config.mqtt)
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

    from agent.agent import Agent  # noqa: PLC0415 (see run_command)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with Agent(config, on_restart=on_restart, config_dir=config_path.parent):
            stop.wait()
    except (OSError, sqlite3.Error) as exc:
        # One line, whatever the cause: a disk that cannot be written, a broken file, or a
        # buffer written by a newer edgewatch (agent.sqlite_schema.SchemaTooNewError).
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
