"""One owner thread per serial port: RS-485 is single-master, so every transaction on a
port (reads now, writes later) happens on its owner's thread, one at a time.

The owner opens the port, builds its devices' drivers through ``drivers.registry`` and
reads each device when it is due. A port that will not open, or fails with an I/O error,
is closed and reopened with capped backoff; meanwhile its devices' reads fail (bad
readings, ``io`` counted). A crash anywhere in the loop is logged, counted and the loop
goes on. ``stop()`` returns within about a second: waits are on an Event, and a single
read is bounded by the port's timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import serial

from agent.clock import Clock
from agent.config import PortConfig
from agent.poller import INTERNAL_ERROR, DevicePoller, Sink
from drivers.base import DeviceConfig, Driver, ErrorKind
from drivers.registry import create_driver

log = logging.getLogger(__name__)

REOPEN_MIN_S = 0.5
REOPEN_MAX_S = 5.0
STOP_JOIN_S = 3.0

OpenSerial = Callable[[PortConfig], serial.Serial]
CreateDriver = Callable[[DeviceConfig, serial.Serial], Driver]


def open_serial(port: PortConfig) -> serial.Serial:
    """Open ``port`` (a device path or any pyserial URL) with its line settings."""
    return serial.serial_for_url(
        port.url,
        baudrate=port.baud,
        parity=port.parity,
        stopbits=port.stopbits,
        bytesize=port.bytesize,
        timeout=port.timeout_s,
        write_timeout=port.timeout_s,
    )


class PortOwner:
    """The thread that owns one serial port and polls the devices on it."""

    def __init__(
        self,
        port: PortConfig,
        devices: Sequence[DeviceConfig],
        sink: Sink,
        clock: Clock,
        *,
        opener: OpenSerial = open_serial,
        driver_factory: CreateDriver = create_driver,
    ) -> None:
        self.port = port
        self.pollers = [DevicePoller(d, sink, clock) for d in devices]
        self.crashes = 0  # loop iterations that raised: bugs, not device faults
        self._clock = clock
        self._opener = opener
        self._driver_factory = driver_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"port-{self.port.name}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_JOIN_S)
            if self._thread.is_alive():
                log.error("port %s: owner thread did not stop", self.port.name)
            self._thread = None

    # -- the owner thread -----------------------------------------------------------------

    def _run(self) -> None:
        delay_s = REOPEN_MIN_S
        problem_logged = False  # one warning per outage, one info when the port is back
        while not self._stop.is_set():
            answered = False
            problem: str | None = None
            try:
                link = self._open()
            except Exception as exc:
                problem = f"port {self.port.name!r} ({self.port.url}): cannot open: {exc}"
                self._fail_due_devices(ErrorKind.IO, problem)
            else:
                if problem_logged:
                    log.info("port %s (%s) open again", self.port.name, self.port.url)
                try:
                    answered, problem = self._serve(link)
                except Exception as exc:
                    self.crashes += 1
                    log.exception("port %s: owner loop crashed; reopening", self.port.name)
                    problem = f"port {self.port.name!r}: owner loop crashed: {exc!r}"
                finally:
                    self._close(link)
            if problem is None:  # stopped
                return
            if answered:
                delay_s, problem_logged = REOPEN_MIN_S, False
            if not problem_logged:
                log.warning("%s (reopening, backoff up to %.0f s)", problem, REOPEN_MAX_S)
                problem_logged = True
            self._stop.wait(delay_s)
            delay_s = min(delay_s * 2, REOPEN_MAX_S)

    def _open(self) -> serial.Serial:
        link = self._opener(self.port)
        for poller in self.pollers:
            try:
                poller.driver = self._driver_factory(poller.config, link)
            except Exception as exc:
                log.exception("device %r: cannot create its driver", poller.name)
                poller.driver = None
                poller.fail(INTERNAL_ERROR, f"device {poller.name!r}: driver not created: {exc}")
        log.debug("port %s (%s) open, %d devices", self.port.name, self.port.url, len(self.pollers))
        return link

    def _close(self, link: serial.Serial) -> None:
        for poller in self.pollers:
            if poller.driver is not None:
                try:
                    poller.driver.close()
                except Exception:
                    log.exception("device %r: close failed", poller.name)
                poller.driver = None
        try:
            link.close()
        except Exception:
            log.exception("port %s: close failed", self.port.name)

    def _serve(self, link: serial.Serial) -> tuple[bool, str | None]:
        """Poll due devices until stopped or until the port itself fails.

        Returns (whether any device answered, the port's problem or None when stopped).
        """
        answered = False
        while not self._stop.is_set():
            if not self.pollers:
                self._stop.wait()
                break
            poller = min(self.pollers, key=lambda p: p.next_due_s)
            wait_s = poller.next_due_s - self._clock.monotonic_s()
            if wait_s > 0 and self._stop.wait(wait_s):
                break
            try:
                failure = poller.poll()
            except Exception:
                self.crashes += 1
                log.exception("port %s: poll crashed on %r; going on", self.port.name, poller.name)
                failure = None
            poller.advance_schedule()
            answered = answered or failure is None
            if failure == ErrorKind.IO or not link.is_open:
                return answered, f"port {self.port.name!r}: I/O error: {poller.health().last_error}"
        return answered, None

    def _fail_due_devices(self, kind: ErrorKind, message: str) -> None:
        now_s = self._clock.monotonic_s()
        for poller in self.pollers:
            if poller.next_due_s <= now_s:
                poller.fail(kind, message)
                poller.advance_schedule()
