"""A simulated RS-485 bus: one pty, any number of slaves, served on a background thread."""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from firmware_sim import modbus
from firmware_sim.device import SimulatedDevice
from firmware_sim.modbus import ExceptionCode, Request
from firmware_sim.pty import PtyPort

log = logging.getLogger(__name__)

BROADCAST_SLAVE = 0
# A pty delivers a request in one chunk or a few, with no real character timing; the gap
# only ends frames whose length the function code does not tell, and flushes runts.
DEFAULT_FRAME_GAP_S = 0.05
_STOP_JOIN_TIMEOUT_S = 2.0


@dataclass(slots=True)
class BusStats:
    """What the bus saw: frames for tests to wait on and for the operator to read."""

    frames: int = 0  # frames with a good CRC, for any slave
    dropped: int = 0  # byte runs that were no valid frame (bad CRC, runts): silence
    unaddressed: int = 0  # good frames for a slave id nobody on this bus has
    responses: int = 0


class SimulatedBus:
    """Serve ``devices`` (by slave address) on a fresh pty until the context exits.

    ``port_path`` is the ``/dev/pts/N`` a client opens; with ``link_path`` a symlink to it
    is kept there too (a stable name for config files). ``baud`` and ``parity`` are what
    the devices are set to: a pty carries bytes at any speed, so they are information for
    manifests and clients, not enforced.
    """

    def __init__(
        self,
        devices: Iterable[SimulatedDevice],
        *,
        name: str = "bus1",
        baud: int = 9600,
        parity: str = "N",
        link_path: Path | None = None,
        frame_gap_s: float = DEFAULT_FRAME_GAP_S,
    ) -> None:
        self.name = name
        self.baud = baud
        self.parity = parity
        self.stats = BusStats()
        self._devices: dict[int, SimulatedDevice] = {}
        for device in devices:
            if device.slave in self._devices:
                raise ValueError(f"bus {name!r}: two devices at slave address {device.slave}")
            self._devices[device.slave] = device
        self._frame_gap_s = frame_gap_s
        self._port = PtyPort(link_path=link_path)
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1

    @property
    def port_path(self) -> str:
        return self._port.port_path

    @property
    def link_path(self) -> Path | None:
        return self._port.link_path

    @property
    def devices(self) -> list[SimulatedDevice]:
        return list(self._devices.values())

    def __enter__(self) -> SimulatedBus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._port.open()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"sim-bus-{self.name}")
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (at once: the thread is woken through a pipe) and close the pty."""
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=_STOP_JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.error("bus %s: serving thread did not stop", self.name)
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._port.close()

    def _serve(self) -> None:
        master_fd, buffer = self._port.master_fd, b""
        while True:
            timeout_s = self._frame_gap_s if buffer else None
            readable, _, _ = select.select([master_fd, self._wake_r], [], [], timeout_s)
            if self._wake_r in readable:
                return
            if master_fd in readable:
                buffer = self._consume(buffer + self._port.read_available(), at_gap=False)
            elif buffer:  # the line went quiet: whatever is buffered is a whole frame or junk
                buffer = self._consume(buffer, at_gap=True)

    def _consume(self, buffer: bytes, *, at_gap: bool) -> bytes:
        """Handle every whole frame at the start of ``buffer``; return what is left."""
        while buffer:
            used, request = modbus.decode_request(buffer, at_gap=at_gap)
            if used == 0:
                break
            buffer = buffer[used:]
            if request is None:
                self.stats.dropped += 1
            else:
                self._dispatch(request)
        return buffer

    def _dispatch(self, request: Request) -> None:
        self.stats.frames += 1
        if request.slave == BROADCAST_SLAVE:
            for device in self._devices.values():  # every slave acts, none answers
                self._handle(device, request)
            return
        addressed = self._devices.get(request.slave)
        if addressed is None:
            self.stats.unaddressed += 1
            return
        response = self._handle(addressed, request)
        if response is not None:
            self._port.write_all(response)
            self.stats.responses += 1

    def _handle(self, device: SimulatedDevice, request: Request) -> bytes | None:
        """The device's answer; a bug in a model answers 'device failure', never kills the bus."""
        try:
            return device.handle(request)
        except Exception:
            log.exception("bus %s: slave %d failed on %r", self.name, device.slave, request)
            return modbus.exception_response(
                device.slave, request.function, ExceptionCode.SERVER_DEVICE_FAILURE
            )
