"""``edgewatch agent run --config agent.toml``: run a gateway agent until SIGTERM / Ctrl-C.

Exit status: 0 after a graceful stop; 1 when the agent cannot start (its buffer cannot
be opened); 2 when the config cannot be used (the message, on stderr, names the file, the
key and the fix).
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

from agent.agent import Agent
from agent.config import AgentConfig, ConfigError, load_config

EXIT_OK = 0
EXIT_RUNTIME = 1  # the agent could not start (e.g. its data_dir is not writable)
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgewatch agent", description="edgewatch gateway agent")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the agent until SIGTERM / Ctrl-C")
    run.add_argument("--config", required=True, type=Path, help="the agent's TOML config")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with Agent(config):
            stop.wait()
    except (OSError, sqlite3.Error) as exc:
        data_dir = config.gateway.data_dir
        print(f"{config_path}: the agent cannot run (data_dir {data_dir}): {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logging.getLogger(__name__).info("agent stopped (%s)", config_path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
