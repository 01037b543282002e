"""Control a running simulator from outside its process (faults, reboots, held values): a
unix socket.

``edgewatch sim run`` listens on a unix socket (``--control PATH``, else a fresh
``/tmp/ewsim-*/control.sock``) whose path each manifest entry carries as ``control``.
The protocol is one JSON object per line, each answered by one JSON line:

- ``{"cmd": "faults", "device": "gauge-1", "faults": {"silent": true}}``
  -> ``{"ok": true, "device": "gauge-1", "faults": {...every fault...}}``
- ``{"cmd": "reboot", "device": "rain-1"}`` -> ``{"ok": true, "device": "rain-1"}``
- ``{"cmd": "set", "device": "gauge-1", "registers": {"level": 3000}}``
  -> ``{"ok": true, "device": "gauge-1", "held": {"level": 3000}}``: the named registers
  (Modbus devices; raw values 0-65535) read these values until the next ``set`` replaces
  them (``{}`` releases them all): how a benchmark steps a reading over a threshold
- stations only (``firmware_sim.stations``):
  ``{"cmd": "quirks", "device": "river-st-1", "quirks": {"clock_offset_s": 600}}`` (replaces
  them whole, like faults; names of ``StationQuirks``), ``{"cmd": "values", "device":
  "river-st-1", "values": {"Z": 15.8}}`` (report these instead of the model's; ``{}``
  clears) and ``{"cmd": "report", "device": "river-st-1"}`` (a timed report at once)
- ``{"cmd": "status"}``
  -> ``{"ok": true, "devices": {"gauge-1": {"faults": {...}, "stats": {...}, "held": {}}}}``
- anything wrong -> ``{"ok": false, "error": "..."}``

``faults`` replaces the device's faults whole (``{}`` clears them); the names are those of
``firmware_sim.faults.Faults``. ``send`` is a small client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import select
import socket
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from firmware_sim.faults import Faults
from firmware_sim.serving import ServingThread
from firmware_sim.stations.station import SimStation, StationQuirks

log = logging.getLogger(__name__)

_MAX_REQUEST_BYTES = 65_536


class ControlServer:
    """Serve the control protocol for ``devices`` (by name) until the context exits."""

    def __init__(self, path: Path, devices: Mapping[str, Any]) -> None:
        self.path = path
        self._devices = dict(devices)
        self._socket: socket.socket | None = None
        self._serving = ServingThread("sim-control", self._serve)

    def __enter__(self) -> ControlServer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen()
        self._socket = server
        self._serving.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._serving.stop()
        if self._socket is not None:
            self._socket.close()
        self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        assert self._socket is not None
        wake_fd = self._serving.wake_fd
        while True:
            readable, _, _ = select.select([self._socket.fileno(), wake_fd], [], [])
            if wake_fd in readable:
                return
            connection, _ = self._socket.accept()
            with connection:
                connection.settimeout(2.0)
                try:
                    self._converse(connection)
                except OSError as exc:
                    log.warning("control: connection failed: %s", exc)

    def _converse(self, connection: socket.socket) -> None:
        buffer = b""
        while True:
            chunk = connection.recv(4096)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                connection.sendall(json.dumps(self.execute(line)).encode() + b"\n")
            if len(buffer) > _MAX_REQUEST_BYTES:
                connection.sendall(b'{"ok": false, "error": "request too long"}\n')
                return

    def execute(self, line: bytes) -> dict[str, Any]:
        """One request (a JSON line) -> its answer."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            command = request.get("cmd")
            if command == "status":
                return {"ok": True, "devices": {n: _status(d) for n, d in self._devices.items()}}
            name = request.get("device")
            device = self._devices.get(name) if isinstance(name, str) else None
            if device is None:
                raise ValueError(f"unknown device {name!r} (known: {sorted(self._devices)})")
            if command == "faults":
                faults = request.get("faults")
                if not isinstance(faults, dict):
                    raise ValueError("faults must be an object")
                device.faults = Faults.from_dict(faults)
                return {"ok": True, "device": name, "faults": device.faults.as_dict()}
            if command == "reboot":
                device.reboot()
                return {"ok": True, "device": name}
            if command == "set":
                registers = request.get("registers")
                if not isinstance(registers, dict):
                    raise ValueError("registers must be an object of register name -> raw value")
                hold = getattr(device, "hold", None)
                if hold is None:
                    raise ValueError(f"device {name!r} has no registers to set (not Modbus)")
                hold(registers)
                return {"ok": True, "device": name, "held": device.held}
            if command in ("quirks", "values", "report"):
                return _station_command(device, str(name), command, request)
            raise ValueError(
                f"unknown cmd {command!r}"
                " (known: faults, reboot, set, status, quirks, values, report)"
            )
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}


def _status(device: Any) -> dict[str, Any]:
    status = {"faults": device.faults.as_dict(), "stats": dataclasses.asdict(device.stats)}
    if hasattr(device, "held"):
        status["held"] = device.held
    if isinstance(device, SimStation):
        status["quirks"] = device.quirks.as_dict()
        status["connected"] = device.connected
    return status


def _station_command(
    device: Any, name: str, command: str, request: Mapping[str, Any]
) -> dict[str, Any]:
    if not isinstance(device, SimStation):
        raise ValueError(f"device {name!r} is not a station: {command} is for stations")
    if command == "quirks":
        quirks = request.get("quirks")
        if not isinstance(quirks, dict):
            raise ValueError("quirks must be an object")
        device.quirks = StationQuirks.from_dict(quirks)
        return {"ok": True, "device": name, "quirks": device.quirks.as_dict()}
    if command == "values":
        values = request.get("values")
        if not isinstance(values, dict) or not all(
            (isinstance(v, int | float) and not isinstance(v, bool)) or v is None
            for v in values.values()
        ):
            raise ValueError("values must be an object of numbers (or null: missing)")
        device.set_values({str(k): None if v is None else float(v) for k, v in values.items()})
        return {"ok": True, "device": name, "values": device.values}
    device.report_now()
    return {"ok": True, "device": name}


def send(path: Path | str, request: Mapping[str, Any], *, timeout_s: float = 5.0) -> Any:
    """Send one request to a simulator's control socket and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        client.connect(str(path))
        client.sendall(json.dumps(request).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = client.recv(4096)
            if not chunk:
                break
            answer += chunk
    with contextlib.suppress(ValueError):
        return json.loads(answer)
    raise ValueError(f"control {path}: not a JSON answer: {answer!r}")
