"""``edgewatch sim``: serve simulated devices on ptys until SIGTERM / Ctrl-C.

python -m firmware_sim.cli run [--scenario NAME|FILE] [--manifest PATH] [--seconds N]
                               [--devices N] [--link-dir DIR] [--control PATH]
                               [--time-scale X] [--connect PROTOCOL=HOST:PORT ...]
python -m firmware_sim.cli fault --control PATH --device NAME [--clear] [--silent] ...
python -m firmware_sim.cli reboot --control PATH --device NAME
python -m firmware_sim.cli set --control PATH --device NAME (REGISTER=RAW ... | --release)
python -m firmware_sim.cli quirks --control PATH --device NAME [--lowercase-crc] ...
python -m firmware_sim.cli values --control PATH --device NAME [ELEMENT=VALUE ...]
python -m firmware_sim.cli report --control PATH --device NAME
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from firmware_sim import control
from firmware_sim.faults import Faults
from firmware_sim.scenario import SCENARIOS, RunningScenario, load_scenario, write_manifest
from firmware_sim.stations import StationQuirks


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgewatch sim", description="Serve simulated field devices on pseudo-terminals."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve a scenario's devices on pseudo-terminals")
    run.add_argument(
        "--scenario",
        default="demo",
        metavar="NAME|FILE",
        help=f"what to simulate: a packaged scenario ({', '.join(SCENARIOS)}) or a TOML file",
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
    run.add_argument(
        "--control",
        type=Path,
        help="serve the fault control socket here (default: a fresh /tmp/ewsim-*/control.sock)",
    )
    run.add_argument(
        "--time-scale", type=float, help="scenario seconds per real second (default: the file's)"
    )
    run.add_argument(
        "--connect",
        action="append",
        default=[],
        metavar="PROTOCOL=HOST:PORT",
        help="where the TCP stations of a protocol (sl651, hj212) dial in; repeatable",
    )
    fault = commands.add_parser("fault", help="switch a running device's faults (replaces them)")
    fault.add_argument("--control", type=Path, required=True, help="the sim's control socket")
    fault.add_argument("--device", required=True, help="device name, as in the manifest")
    fault.add_argument("--clear", action="store_true", help="no faults (the default)")
    for name in ("silent", "corrupt_crc", "truncate", "garbage", "stuck", "out_of_range"):
        fault.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=f"fault {name}")
    fault.add_argument("--late-s", type=float, default=0.0, help="answer this much later")
    fault.add_argument("--reply-as-slave", type=int, help="answer as this slave id")
    reboot = commands.add_parser("reboot", help="reboot a running device (counters reset)")
    reboot.add_argument("--control", type=Path, required=True, help="the sim's control socket")
    reboot.add_argument("--device", required=True, help="device name, as in the manifest")
    hold = commands.add_parser(
        "set",
        help="hold a running Modbus device's registers at raw values (replaces what was held)",
    )
    hold.add_argument("--control", type=Path, required=True, help="the sim's control socket")
    hold.add_argument("--device", required=True, help="device name, as in the manifest")
    hold.add_argument(
        "values",
        nargs="*",
        type=_register_value,
        metavar="REGISTER=RAW",
        help="a register's name (as the model's map says) and a raw value 0-65535",
    )
    hold.add_argument(
        "--release", action="store_true", help="release every held register (give no values)"
    )
    quirks = commands.add_parser("quirks", help="switch a station's quirks (replaces them)")
    for name in ("lowercase_crc", "no_crlf", "wrong_length", "missing_values"):
        quirks.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=name)
    for name in ("wrong_password", "reconnect_storm"):
        quirks.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=name)
    quirks.add_argument("--clock-offset-s", type=float, default=0.0, help="its clock is off")
    values = commands.add_parser("values", help="report these values instead of the model's")
    values.add_argument("values", nargs="*", metavar="ELEMENT=VALUE", help="none: clear")
    report = commands.add_parser("report", help="a station sends a timed report at once")
    for station_command in (quirks, values, report):
        station_command.add_argument("--control", type=Path, required=True, help="control socket")
        station_command.add_argument("--device", required=True, help="station name")
    return parser


def _register_value(text: str) -> tuple[str, int]:
    name, sep, raw = text.partition("=")
    try:
        value = int(raw, 0)
    except ValueError:
        value = -1
    if not sep or not name or not 0 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"{text!r}: expected REGISTER=RAW, RAW 0-65535")
    return name, value


def _targets(texts: list[str]) -> dict[str, tuple[str, int]]:
    """``sl651=127.0.0.1:5001`` -> {"sl651": ("127.0.0.1", 5001)}; ValueError if malformed."""
    targets: dict[str, tuple[str, int]] = {}
    for text in texts:
        protocol, _, address = text.partition("=")
        host, _, port = address.rpartition(":")
        if not protocol or not host or not port.isdigit():
            raise ValueError(f"--connect {text!r}: give PROTOCOL=HOST:PORT (sl651=127.0.0.1:5001)")
        targets[protocol] = (host, int(port))
    return targets


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
        scenario = load_scenario(args.scenario).with_devices(args.devices)
        targets = _targets(args.connect)
    except ValueError as exc:
        print(f"edgewatch sim: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    control_dir = None
    control_path = args.control
    if control_path is None:  # short, private: unix socket paths are limited to ~100 bytes
        control_dir = Path(tempfile.mkdtemp(prefix="ewsim-"))
        control_path = control_dir / "control.sock"
    try:
        with (
            _stop_on_signals(stop),
            RunningScenario(
                scenario,
                link_dir=args.link_dir,
                control_path=control_path,
                time_scale=args.time_scale,
                connect=targets,
            ) as running,
        ):
            for device in running.devices:
                where = (
                    f"station={device.station}  transport={device.transport}"
                    if device.station is not None
                    else f"slave={device.slave}  baud={device.baud}  parity={device.parity}"
                    f"  bus={device.bus}"
                )
                print(
                    f"{device.name}  model={device.model}  pty={device.pty or '-'}  {where}"
                    f"  protocol={device.protocol}  rfc2217={device.rfc2217 or '-'}",
                    flush=True,
                )
            print(f"control: {control_path}", flush=True)
            if args.manifest is not None:
                write_manifest(args.manifest, running.devices)
            stop.wait(timeout=args.seconds)
    finally:
        if control_dir is not None:
            shutil.rmtree(control_dir, ignore_errors=True)
    return 0


def _send(path: Path, request: dict[str, object]) -> int:
    try:
        answer = control.send(path, request)
    except (OSError, ValueError) as exc:
        print(f"edgewatch sim: control {path}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0 if isinstance(answer, dict) and answer.get("ok") else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "run":
        return run(args)
    if args.command == "fault":
        faults = Faults(
            silent=args.silent,
            late_s=args.late_s,
            corrupt_crc=args.corrupt_crc,
            reply_as_slave=args.reply_as_slave,
            truncate=args.truncate,
            garbage=args.garbage,
            stuck=args.stuck,
            out_of_range=args.out_of_range,
        )
        request = {"cmd": "faults", "device": args.device, "faults": faults.as_dict()}
        return _send(args.control, request)
    if args.command == "reboot":
        return _send(args.control, {"cmd": "reboot", "device": args.device})
    if args.command == "set":
        if bool(args.values) == args.release:
            print("edgewatch sim set: give REGISTER=RAW values or --release", file=sys.stderr)
            return 2
        registers = dict(args.values)
        return _send(args.control, {"cmd": "set", "device": args.device, "registers": registers})
    if args.command == "quirks":
        switched = {name: getattr(args, name) for name in StationQuirks.__dataclass_fields__}
        return _send(args.control, {"cmd": "quirks", "device": args.device, "quirks": switched})
    if args.command == "values":
        try:
            parsed = {k: float(v) for k, _, v in (pair.partition("=") for pair in args.values)}
        except ValueError:
            print("edgewatch sim: values: give ELEMENT=NUMBER (Z=15.8)", file=sys.stderr)
            return 2
        return _send(args.control, {"cmd": "values", "device": args.device, "values": parsed})
    if args.command == "report":
        return _send(args.control, {"cmd": "report", "device": args.device})
    return 2  # pragma: no cover - argparse refuses unknown commands first


if __name__ == "__main__":
    sys.exit(main())
