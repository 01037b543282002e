"""A simulated serial line: one pty, sentence devices that answer polls or push.

Polls are read line by line (``\\n`` ends a line); a line with a good checksum goes to
every polled device, and the one whose address it names answers, paced to the baud rate
(``firmware_sim.timing``). A bare command line (``#DATA``, ``#READ``, ``#STOP``) goes to
every device that knows it, and an ENQ poll (the byte 0xB0 + id, then ENQ) to the device
with that id (``firmware_sim.stx_frames``). Pushing (or streaming) devices write when their
period comes round.

Like the bus, the line judges the master's framing (from the pty, or the RFC 2217 client's)
against its devices' (``firmware_sim.uart``): a poll framed otherwise goes unheard, and
what the devices push over a line framed otherwise reaches the master as garbage.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from firmware_sim.pty import PtyServer
from firmware_sim.sentence_devices import SentenceDevice, parse_sentence
from firmware_sim.stx_frames import Enquiry, split_requests
from firmware_sim.timing import bits_per_char, transmit_s, wait_until_time
from firmware_sim.uart import (
    Framing,
    Mismatch,
    MismatchCounts,
    as_the_master_reads,
    check_settings,
    judge,
)

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 256
_ALARM_CHECK_S = 0.05


@dataclass(slots=True)
class LineStats(MismatchCounts):
    """What the line saw; the framing counters (``MismatchCounts``) count polls no device
    could hear and answers the master could not read."""

    lines: int = 0  # whole lines received
    bad_lines: int = 0  # lines that were no valid sentence nor a command a device knows
    enquiries: int = 0  # ENQ polls received, for any id
    responses: int = 0
    pushed: int = 0
    garbled_pushes: int = 0  # pushed over a line the master frames otherwise: garbage
    cycles: int = 0  # turns of the serving loop: a test waits two to know a push is out


class SerialLine(PtyServer):
    """Serve ``devices`` on a fresh pty until the context exits (like ``SimulatedBus``,
    with ``rfc2217=True`` over RFC 2217 too)."""

    kind = "line"

    def __init__(
        self,
        devices: Iterable[SentenceDevice],
        *,
        name: str = "line1",
        baud: int = 9600,
        parity: str = "N",
        stopbits: float = 1,
        bytesize: int = 8,
        link_path: Path | None = None,
        pace: bool = True,
        rfc2217: bool = False,
    ) -> None:
        check_settings(f"line {name!r}", parity=parity, stopbits=stopbits, bytesize=bytesize)
        super().__init__(name, link_path=link_path, rfc2217=rfc2217)
        self.baud = baud
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        self.pace = pace
        self.stats = LineStats()
        self._devices = list(devices)
        self._bits = bits_per_char(parity, stopbits, bytesize)
        self.framing = Framing(baud, parity, stopbits, bytesize)

    @property
    def devices(self) -> list[SentenceDevice]:
        return list(self._devices)

    def _serve(self) -> None:
        master_fd, buffer = self._port.master_fd, b""
        while True:
            pushes = [t for d in self._devices if (t := d.next_push_s()) is not None]
            timeout_s = None
            if pushes:  # alarms are checked every 50 ms, between regular sentences too
                timeout_s = min(max(0.0, min(pushes) - time.monotonic()), _ALARM_CHECK_S)
            readable, _, _ = select.select([master_fd, self._wake_r], [], [], timeout_s)
            self.stats.cycles += 1
            if self._wake_r in readable:
                return
            if master_fd in readable:
                requests, buffer = split_requests(buffer + self._port.read_available())
                for request in requests:
                    if not self._poll(request):
                        return
                if len(buffer) > MAX_LINE_BYTES:
                    buffer = b""
                    self.stats.bad_lines += 1
            for device in self._devices:
                data = device.push()
                if data:
                    self._port.write_all(self._as_the_master_reads_a_push(data))
                    self.stats.pushed += 1

    def _as_the_master_reads_a_push(self, data: bytes) -> bytes:
        mismatch = judge(self.master_framing(), self.framing)
        if mismatch in (Mismatch.NONE, Mismatch.STOP_BITS):
            return data  # two stop bits sent to a master wanting one: an idle line, fine
        self.stats.garbled_pushes += 1
        return as_the_master_reads(data, mismatch)

    def _poll(self, request: bytes | Enquiry) -> bool:
        """Answer one received line or ENQ poll; False if stopped while pacing the answer."""
        received_s = time.monotonic()
        ask = self._question(request)
        if ask is None:
            return True
        mismatch = judge(self.master_framing(), self.framing)
        if mismatch.silences_the_device:
            self.stats.count(mismatch)
            return True
        request_bytes = 2 if isinstance(request, Enquiry) else len(request) + 1
        for device in self._devices:
            answer = ask(device)
            if answer is None:
                continue
            send_at = received_s + device.response_time_s + device.faults.late_s
            if self.pace:
                send_at += transmit_s(request_bytes + len(answer), self.baud, self._bits)
            if not wait_until_time(send_at, self._wake_r):
                return False
            if mismatch is Mismatch.GARBLED_ANSWER:
                self.stats.count(mismatch)
                answer = as_the_master_reads(answer, mismatch)
            self._port.write_all(answer)
            self.stats.responses += 1
        return True

    def _question(
        self, request: bytes | Enquiry
    ) -> Callable[[SentenceDevice], bytes | None] | None:
        """How to ask each device ``request`` (None: a line no device understands)."""
        if isinstance(request, Enquiry):
            self.stats.enquiries += 1
            return lambda device: device.enquire(request.device_id)
        self.stats.lines += 1
        body = parse_sentence(request)
        if body is not None:
            return lambda device: device.answer(body)
        command = request.strip(b"\r ").decode("ascii", errors="replace")
        if any(command in device.model.commands for device in self._devices):
            return lambda device: device.command(command)
        self.stats.bad_lines += 1
        return None
