"""``edgewatch agent probe``: the command line around ``agent.ops.probe``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

import serial

from agent.ops.probe import SCAN_BAUDS, Progress, config_snippet, parse_slaves, probe

EXIT_OK = 0
EXIT_PORT = 1
EXIT_USAGE = 2
EXIT_NOTHING_FOUND = 3


class ProgressLine:
    """One line on stderr, rewritten in place: ``9600 8N1  slave 17/247  found 2``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._width = 0

    def __call__(self, progress: Progress) -> None:
        text = (
            f"probing {progress.baud} baud: slave {progress.slave:3d}"
            f"  ({progress.done}/{progress.total})  found {progress.found}"
        )
        self._width = max(self._width, len(text))
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()

    def done(self, text: str) -> None:
        self._stream.write("\r" + text.ljust(self._width) + "\n")
        self._stream.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="serial device or pyserial URL")
    bauds = parser.add_mutually_exclusive_group()
    bauds.add_argument(
        "--baud", default="9600", help="baud rate(s) to try, comma-separated (default 9600)"
    )
    bauds.add_argument(
        "--scan-baud", action="store_true", help="try every usual baud, common ones first"
    )
    parser.add_argument("--parity", default="N", choices=["N", "E", "O"], help="default N")
    parser.add_argument("--slaves", default="1-247", help="ids, e.g. 1-247 or 1,3,10-12")
    parser.add_argument("--register", type=int, default=0, help="0-based address (default 0)")
    parser.add_argument("--function", type=int, default=3, choices=[3, 4], help="3 or 4")
    parser.add_argument(
        "--timeout", type=float, default=0.1, help="seconds to wait per id (default 0.1)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run_probe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        slaves = parse_slaves(args.slaves)
        bauds = list(SCAN_BAUDS) if args.scan_baud else _bauds(args.baud)
        if not 0 <= args.register <= 0xFFFF:
            raise ValueError(f"register {args.register} is outside 0-65535")
        if not 0 < args.timeout <= 10:
            raise ValueError(f"timeout {args.timeout} s is outside (0, 10]")
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"edgewatch agent probe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    line = ProgressLine(sys.stderr)
    try:
        result = probe(
            args.port,
            bauds=bauds,
            parity=args.parity,
            slaves=slaves,
            register=args.register,
            function=args.function,
            timeout_s=args.timeout,
            progress=line,
        )
    except (serial.SerialException, OSError) as exc:
        line.done("")
        print(f"edgewatch agent probe: cannot open {args.port}: {exc}", file=sys.stderr)
        return EXIT_PORT
    found = ", ".join(f"{a.slave}@{a.baud}" for a in result.found) or "none"
    line.done(f"probed {len(slaves)} ids at {len(bauds)} baud(s): found {found}")
    if args.json:
        print(json.dumps({**result.as_dict(), "config_toml": config_snippet(result)}))
    elif result.found:
        print(config_snippet(result), end="")
    else:
        print(
            "# no slave answered: check the cable (A/B swapped?), termination, baud"
            " (--scan-baud) and parity (--parity E)"
        )
    return EXIT_OK if result.found else EXIT_NOTHING_FOUND


def _bauds(text: str) -> list[int]:
    bauds: list[int] = []
    for part in text.split(","):
        try:
            baud = int(part)
        except ValueError:
            raise ValueError(f"baud {part.strip()!r} is not a number") from None
        if baud <= 0:
            raise ValueError(f"baud {baud} must be positive")
        bauds.append(baud)
    return bauds
