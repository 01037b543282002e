"""A simulated RS-485 bus: one pty, any number of slaves, served on a background thread.

Modbus RTU (or ASCII, ``mode="ascii"``) frames in, paced answers out: each answer is
written when its last byte would have arrived on a real line at the device's baud rate
(``firmware_sim.timing``). Each request is judged by how the master frames its characters
(read from the pty's line settings, or from the RFC 2217 client's) against the addressed
device's: at another baud, parity, data bits or too few stop bits the device hears noise
and stays silent; a master wanting more stop bits than the device sends gets its answer
garbled (``firmware_sim.uart`` has the model). Each case is counted in the stats.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from firmware_sim import modbus, modbus_ascii
from firmware_sim.device import SimulatedDevice
from firmware_sim.modbus import ExceptionCode, Request
from firmware_sim.pty import PtyServer
from firmware_sim.timing import (
    FRAME_GAP_CHARS,
    MODBUS_BITS_PER_CHAR,
    transmit_s,
    wait_until_time,
)
from firmware_sim.uart import (
    Framing,
    Mismatch,
    MismatchCounts,
    as_the_master_reads,
    check_settings,
    judge,
)

log = logging.getLogger(__name__)

BROADCAST_SLAVE = 0
# A pty delivers a request in one chunk or a few, with no real character timing; the gap
# only ends frames whose length the function code does not tell, and flushes runts.
DEFAULT_FRAME_GAP_S = 0.05
_ASCII_BITS_PER_CHAR = 10  # 7 data bits, parity, start, stop


@dataclass(slots=True)
class BusStats(MismatchCounts):
    """What the bus saw: frames for tests to wait on and for the operator to read. The
    framing counters (``MismatchCounts``: wrong_baud, wrong_parity, ...) count requests
    the addressed device could not hear and answers the master could not read."""

    frames: int = 0  # frames with a good CRC, for any slave
    dropped: int = 0  # byte runs that were no valid frame (bad CRC, runts): silence
    unaddressed: int = 0  # good frames for a slave id nobody on this bus has
    responses: int = 0


class SimulatedBus(PtyServer):
    """Serve ``devices`` (by slave address) on a fresh pty until the context exits.

    ``port_path`` is the ``/dev/pts/N`` a client opens; with ``link_path`` a symlink to it
    is kept there too (a stable name for config files); with ``rfc2217=True`` the bus is
    also served over RFC 2217 (``rfc2217_url``), the door through which parity shows.
    ``baud``, ``parity``, ``stopbits`` and ``bytesize`` are what the devices are set to (a
    device may have its own baud). A pty carries bytes at any speed: the bus paces answers
    to ``baud`` (``pace=False`` answers at once) and judges the master's framing against
    each device's.
    """

    kind = "bus"

    def __init__(
        self,
        devices: Iterable[SimulatedDevice],
        *,
        name: str = "bus1",
        baud: int = 9600,
        parity: str = "N",
        stopbits: float = 1,
        bytesize: int = 8,
        link_path: Path | None = None,
        frame_gap_s: float = DEFAULT_FRAME_GAP_S,
        mode: str = "rtu",
        pace: bool = True,
        rfc2217: bool = False,
    ) -> None:
        if mode not in ("rtu", "ascii"):
            raise ValueError(f"bus {name!r}: mode {mode!r} is not rtu or ascii")
        check_settings(f"bus {name!r}", parity=parity, stopbits=stopbits, bytesize=bytesize)
        super().__init__(name, link_path=link_path, rfc2217=rfc2217)
        self.baud = baud
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        self.mode = mode
        self.pace = pace
        self.stats = BusStats()
        self._devices: list[SimulatedDevice] = []
        for device in devices:
            if any(d.slave == device.slave for d in self._devices):
                raise ValueError(f"bus {name!r}: two devices at slave address {device.slave}")
            if device.baud is None:
                device.baud = baud  # set up for this bus, until commissioned otherwise
            self._devices.append(device)
        self._frame_gap_s = frame_gap_s

    @property
    def devices(self) -> list[SimulatedDevice]:
        return list(self._devices)

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
            if self.mode == "ascii":
                used, request = modbus_ascii.decode_request(buffer)
            else:
                used, request = modbus.decode_request(buffer, at_gap=at_gap)
            if used == 0:
                break
            received_s = time.monotonic()
            buffer = buffer[used:]
            if request is None:
                self.stats.dropped += 1
            elif not self._dispatch(request, used, received_s):
                return b""  # stopping
        return buffer

    def _dispatch(self, request: Request, request_bytes: int, received_s: float) -> bool:
        """Answer ``request``; False when the bus was stopped while pacing the answer."""
        self.stats.frames += 1
        for device in self._devices:
            device.hear_traffic()
        master = self.master_framing()
        if request.slave == BROADCAST_SLAVE:
            for device in self._devices:  # every slave that hears it acts, none answers
                mismatch = judge(master, self.framing_of(device))
                if mismatch.silences_the_device:
                    self.stats.count(mismatch)
                    continue
                self._handle(device, request)
                device.after_answer()
            return True
        addressed = next((d for d in self._devices if d.slave == request.slave), None)
        if addressed is None:
            self.stats.unaddressed += 1
            return True
        mismatch = judge(master, self.framing_of(addressed))
        if mismatch.silences_the_device:
            self.stats.count(mismatch)
            return True
        response = self._handle(addressed, request)
        if response is None:
            return True
        if mismatch is Mismatch.GARBLED_ANSWER:
            self.stats.count(mismatch)
            response = as_the_master_reads(response, mismatch)
        delay_s = self.answer_delay_s(addressed, request_bytes, len(response))
        if delay_s > 0 and not wait_until_time(received_s + delay_s, self._wake_r):
            return False
        self._port.write_all(response)
        self.stats.responses += 1
        addressed.after_answer()
        return True

    def answer_delay_s(
        self, device: SimulatedDevice, request_bytes: int, response_bytes: int
    ) -> float:
        """How long after a request has come in (all at once, as a pty delivers it) the
        answer is written: when paced, the request, the silence that ends it (RTU) and the
        answer on the wire at the device's baud, plus its response time; and any late fault.
        """
        delay_s = device.faults.late_s
        if self.pace:
            ascii_mode = self.mode == "ascii"
            bits = _ASCII_BITS_PER_CHAR if ascii_mode else MODBUS_BITS_PER_CHAR
            gap_chars = 0.0 if ascii_mode else FRAME_GAP_CHARS
            wire_chars = request_bytes + gap_chars + response_bytes
            delay_s += transmit_s(wire_chars, device.baud or self.baud, bits)
            delay_s += device.quirks.response_time_s
        return delay_s

    def framing_of(self, device: SimulatedDevice) -> Framing:
        """How ``device`` frames characters: its own baud, the bus's other settings."""
        return Framing(device.baud or self.baud, self.parity, self.stopbits, self.bytesize)

    def _handle(self, device: SimulatedDevice, request: Request) -> bytes | None:
        """The device's answer; a bug in a model answers 'device failure', never kills the bus."""
        try:
            return device.handle(request, mode=self.mode)
        except Exception:
            log.exception("bus %s: slave %d failed on %r", self.name, device.slave, request)
            body = bytes([device.slave, (request.function | 0x80) & 0xFF])
            body += bytes([ExceptionCode.SERVER_DEVICE_FAILURE])
            return modbus_ascii.encode(body) if self.mode == "ascii" else modbus.with_crc(body)
