"""``edgewatch sim``: serve simulated devices on ptys until SIGTERM / Ctrl-C.

python -m firmware_sim.cli run [--scenario NAME] [--manifest PATH] [--seconds N]
                               [--devices N] [--link-dir DIR]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from firmware_sim.scenario import SCENARIOS, RunningScenario, write_manifest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgewatch sim", description="Serve simulated field devices on pseudo-terminals."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve a scenario's devices on pseudo-terminals")
    run.add_argument(
        "--scenario", default="demo", choices=sorted(SCENARIOS), help="what to simulate"
    )
    run.add_argument("--manifest", type=Path, help="write where each device is served here (JSON)")
    run.add_argument(
        "--seconds", type=float, help="stop after this many seconds (default: run until signal)"
    )
    run.add_argument(
        "--devices", type=int, default=1, help="number of devices the scenario creates"
    )
    run.add_argument(
        "--link-dir", type=Path, help="also make a symlink DIR/<bus> to each bus's pty"
    )
    return parser


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM / SIGINT while inside; restore the old handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; then --seconds is the only end
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(args: argparse.Namespace) -> int:
    try:
        scenario = SCENARIOS[args.scenario](args.devices)
    except ValueError as exc:
        print(f"edgewatch sim: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    with _stop_on_signals(stop), RunningScenario(scenario, link_dir=args.link_dir) as running:
        for device in running.devices:
            print(
                f"{device.name}  model={device.model}  pty={device.pty}  slave={device.slave}"
                f"  baud={device.baud}  parity={device.parity}",
                flush=True,
            )
        if args.manifest is not None:
            write_manifest(args.manifest, running.devices)
        stop.wait(timeout=args.seconds)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "run":
        return run(args)
    return 2  # pragma: no cover - argparse refuses unknown commands first


if __name__ == "__main__":
    sys.exit(main())
