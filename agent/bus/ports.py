"""One owner thread per serial port: RS-485 is single-master, so every transaction on a
port (reads, writes, commands) happens on its owner's thread, one at a time.

The owner opens the port, builds its devices' drivers through ``drivers.registry`` and
reads each device when it is due, earliest deadline first across the port's devices (a
device that fails backs off, capped: ``agent.bus.poller``). Anything else that must touch the
port, such as a commissioning write or a poll-now, is submitted (``submit``, ``write``,
``poll_now``): the owner runs it between two reads and hands back its result.

A port that will not open, or fails with an I/O error, is closed and reopened with capped
backoff; meanwhile its devices' reads fail (bad readings, ``io`` counted) and submitted
calls fail with ``PortUnavailableError``. An unexpected exception in a poll is counted
(``crashes``) and polling goes on; one in the owner loop itself is counted too and the loop
is restarted after a capped backoff, so a bug never silently stops a bus. ``stop()``
returns within about a second: waits are on Events, and a read is bounded by its timeout.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import serial

from agent.bus.counter_state import CounterStore, MemoryCounterStore
from agent.bus.outlook import BusOutlook
from agent.bus.poller import INTERNAL_ERROR, DevicePoller, Sink
from agent.config import PortConfig, SerialSettings
from drivers.base import DeviceConfig, Driver, ErrorKind, LineOptions, Measurement
from drivers.registry import create_driver
from wire.clock import Clock
from wire.supervision import Backoff, FailureLog, supervise

log = logging.getLogger(__name__)

REOPEN_MIN_S = 0.5
REOPEN_MAX_S = 5.0
CRASH_RESTART_MIN_S = 0.1  # the owner loop crashed: restart after this, doubling...
CRASH_RESTART_MAX_S = 5.0  # ...up to this
STOP_JOIN_S = 3.0
COMMAND_TIMEOUT_S = 5.0

T = TypeVar("T")
OpenSerial = Callable[[PortConfig], serial.Serial]
CreateDriver = Callable[[DeviceConfig, serial.Serial, LineOptions], Driver]


class PortUnavailableError(RuntimeError):
    """A call submitted to a port owner could not run: the port is not open, or stopped."""


@runtime_checkable
class WritableDriver(Protocol):
    def write(self, target: str | int, value: float) -> None: ...


@dataclass(frozen=True, slots=True)
class PortAccess:
    """What a submitted call gets, on the owner thread: the open port and its drivers."""

    port_name: str
    link: serial.Serial
    drivers: Mapping[str, Driver]

    def driver(self, device: str) -> Driver:
        try:
            return self.drivers[device]
        except KeyError:
            known = ", ".join(sorted(self.drivers)) or "none"
            raise KeyError(
                f"port {self.port_name!r}: no open device {device!r} (open: {known})"
            ) from None


PortCall = Callable[[PortAccess], T]


def open_serial(port: PortConfig) -> serial.Serial:
    """Open ``port`` (a device path or any pyserial URL) with its line settings."""
    return open_line(
        port.url,
        port,
        timeout_s=port.timeout_s,
        write_timeout_s=write_timeout_for(port.url, port.timeout_s),
    )


def open_line(
    url: str, settings: SerialSettings, *, timeout_s: float, write_timeout_s: float | None
) -> serial.Serial:
    """Open a serial line (a device path or any pyserial URL); ``timeout_s = 0``: reads
    return what has arrived (a station line served by a selector)."""
    return serial.serial_for_url(
        url,
        baudrate=settings.baud,
        parity=settings.parity,
        stopbits=settings.stopbits,
        bytesize=settings.bytesize,
        timeout=timeout_s,
        write_timeout=write_timeout_s,
    )


# A request of a few bytes is written at once unless flow control holds the line; a write
# that takes longer than this is a stuck port. It is not the read timeout: pyserial checks
# the write's deadline after the bytes went out, so a writer descheduled for longer than a
# short deadline on a busy gateway raised "Write timeout" for a request that was sent, and
# a good read counted as failed (seen at a 0.2 s read timeout under load).
WRITE_TIMEOUT_MIN_S = 2.0


def write_timeout_for(url: str, timeout_s: float) -> float | None:
    """The write timeout to open ``url`` with: at least ``WRITE_TIMEOUT_MIN_S``; none for
    ``rfc2217://``, whose pyserial client refuses any (NotImplementedError on open): its
    writes go to a socket, bounded by the socket's own timeout."""
    if url.startswith("rfc2217://"):
        return None
    return max(timeout_s, WRITE_TIMEOUT_MIN_S)


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
        counters: CounterStore | None = None,
        outlook: BusOutlook | None = None,
    ) -> None:
        self.port = port
        store = counters if counters is not None else MemoryCounterStore()
        self._sink = sink
        self.pollers = [
            DevicePoller(d, self._store, clock, backoff_max_s=port.backoff_max_s, counters=store)
            for d in devices
        ]
        self._outlook = outlook if outlook is not None else BusOutlook()
        self._polling: DevicePoller | None = None  # the device being read, on the owner thread
        self.crashes = 0  # polls or owner loops that raised: bugs, not device faults
        self._line = LineOptions(inter_frame_silence=port.inter_frame_silence)
        self._clock = clock
        self._opener = opener
        self._driver_factory = driver_factory
        self._stop = threading.Event()
        self._wake = threading.Event()  # a call was submitted, or stop
        self._calls: queue.SimpleQueue[tuple[PortCall[Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"port-{self.port.name}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_JOIN_S)
            if self._thread.is_alive():
                log.error("port %s: owner thread did not stop", self.port.name)
            self._thread = None
        self._outlook.forget(self.port.name)
        self._fail_calls("the port owner stopped")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- calls from other threads ---------------------------------------------------------

    def submit(self, call: PortCall[T], *, timeout_s: float = COMMAND_TIMEOUT_S) -> T:
        """Run ``call`` on the owner thread between two reads; return what it returns.

        Raises what ``call`` raised, PortUnavailableError when the port is not open (or the
        owner stops), TimeoutError when no result came within ``timeout_s`` (a call that
        had not started by then never runs).
        """
        if self._stop.is_set() or not self.alive:
            raise PortUnavailableError(f"port {self.port.name!r}: the port owner is not running")
        future: Future[T] = Future()
        self._calls.put((call, future))
        self._wake.set()
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeoutError:
            future.cancel()
            raise TimeoutError(
                f"port {self.port.name!r}: no result within {timeout_s} s (the bus is busy)"
            ) from None

    def write(
        self, device: str, target: str | int, value: float, *, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> None:
        """Write a setting of ``device`` (``driver.write``) through the owner thread."""

        def write(access: PortAccess) -> None:
            driver = access.driver(device)
            if not isinstance(driver, WritableDriver):
                raise ValueError(f"device {device!r}: its driver cannot write")
            driver.write(target, value)

        self.submit(write, timeout_s=timeout_s)

    def poll_now(self, device: str, *, timeout_s: float = COMMAND_TIMEOUT_S) -> str | None:
        """Read ``device`` now, stored and counted like a scheduled read; returns the
        failure kind, or None when it answered. Its schedule goes on from now."""
        poller = next((p for p in self.pollers if p.name == device), None)
        if poller is None:
            raise KeyError(f"port {self.port.name!r}: no device {device!r}")

        def poll(access: PortAccess) -> str | None:
            failure = self._poll(poller)
            poller.next_due_s = self._clock.monotonic_s()
            poller.advance_schedule()
            return failure

        return self.submit(poll, timeout_s=timeout_s)

    def set_interval(self, device: str, interval_s: float) -> None:
        """Poll ``device`` every ``interval_s`` from now on: its next read is due at most
        one new interval from now. Runs on the owner thread while the port is open."""
        poller = next((p for p in self.pollers if p.name == device), None)
        if poller is None:
            raise KeyError(f"port {self.port.name!r}: no device {device!r}")

        def apply(access: PortAccess | None = None) -> None:
            poller.interval_s = interval_s
            poller.next_due_s = min(poller.next_due_s, self._clock.monotonic_s() + interval_s)

        try:
            self.submit(apply)
        except (PortUnavailableError, TimeoutError):
            apply()  # the port is closed (or stuck): nothing reads the schedule meanwhile
            self._wake.set()

    # -- the owner thread -----------------------------------------------------------------

    def _run(self) -> None:
        """Own the port until stopped; a crash of the loop is counted and it restarts."""

        def crashed(exc: BaseException) -> None:
            self.crashes += 1
            self._fail_calls(f"the owner loop crashed: {exc!r}")

        supervise(
            self._own_port,
            failures=FailureLog(log, f"port {self.port.name}: owner loop"),
            stopped=self._stop.is_set,
            wait=self._idle,
            backoff=Backoff(CRASH_RESTART_MIN_S, CRASH_RESTART_MAX_S),
            on_crash=crashed,
            monotonic_s=self._clock.monotonic_s,
        )

    def _own_port(self) -> None:
        backoff = Backoff(REOPEN_MIN_S, REOPEN_MAX_S)
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
                finally:
                    self._outlook.forget(self.port.name)
                    self._close(link)
            if problem is None:  # stopped
                return
            if answered:
                backoff.reset()
                problem_logged = False
            if not problem_logged:
                log.warning("%s (reopening, backoff up to %.0f s)", problem, REOPEN_MAX_S)
                problem_logged = True
            self._fail_calls(problem)
            if self._idle(backoff.next_s()):
                return

    def _idle(self, delay_s: float) -> bool:
        """Wait ``delay_s`` while the port is closed, refusing calls; True when stopped."""
        deadline_s = self._clock.monotonic_s() + delay_s
        while not self._stop.is_set():
            remaining_s = deadline_s - self._clock.monotonic_s()
            if remaining_s <= 0:
                return False
            self._wake.wait(remaining_s)
            self._wake.clear()
            self._fail_calls("the port is not open")
        return True

    def _open(self) -> serial.Serial:
        link = self._opener(self.port)
        for poller in self.pollers:
            try:
                poller.driver = self._driver_factory(poller.config, link, self._line)
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
        """Run calls and poll due devices until stopped or until the port itself fails.

        Returns (whether any device answered, the port's problem or None when stopped).
        """
        answered = False
        access = PortAccess(
            self.port.name,
            link,
            {p.name: p.driver for p in self.pollers if p.driver is not None},
        )
        while not self._stop.is_set():
            self._run_calls(access)
            if not link.is_open:
                return answered, f"port {self.port.name!r}: closed during a command"
            if not self.pollers:
                self._wake.wait()
                self._wake.clear()
                continue
            # Earliest deadline first; ties go to the first configured.
            poller = min(self.pollers, key=lambda p: p.next_due_s)
            wait_s = poller.next_due_s - self._clock.monotonic_s()
            if wait_s > 0:
                self._outlook.expect(self.port.name, poller.next_due_s + poller.poll_s)
                self._wake.wait(wait_s)
                self._wake.clear()
                continue  # calls first, then whoever is due by now
            try:
                failure = self._poll(poller)
            except Exception:
                self.crashes += 1
                log.exception("port %s: poll crashed on %r; going on", self.port.name, poller.name)
                failure = INTERNAL_ERROR
            poller.advance_schedule()
            answered = answered or failure is None
            if failure == ErrorKind.IO or not link.is_open:
                return answered, f"port {self.port.name!r}: I/O error: {poller.health().last_error}"
        return answered, None

    def _poll(self, poller: DevicePoller) -> str | None:
        """Read ``poller``'s device, telling the outlook when its reading should be in."""
        self._outlook.expect(self.port.name, self._clock.monotonic_s() + poller.poll_s)
        self._polling = poller
        try:
            return poller.poll()
        finally:
            self._polling = None

    def _store(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        """The pollers' sink. While a poll's reading is stored, the outlook already says
        when this port's *next* reading should be in: whoever decides on the stored one
        (the live lane) sees what would follow it."""
        polling = self._polling
        if polling is not None:
            self._outlook.expect(self.port.name, self._next_store_s(polling))
        self._sink(device, ts_ms, measurements)

    def _next_store_s(self, polling: DevicePoller) -> float:
        """When the read after ``polling``'s should be stored: the next device due (or
        ``polling`` again), from the later of now and its due time, plus its last poll
        time."""
        now_s = self._clock.monotonic_s()
        due_s, following = polling.due_after_this_read_s(now_s), polling
        for poller in self.pollers:
            if poller is not polling and poller.next_due_s < due_s:
                due_s, following = poller.next_due_s, poller
        return max(now_s, due_s) + following.poll_s

    def _run_calls(self, access: PortAccess) -> None:
        while True:
            try:
                call, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue  # its caller gave up waiting
            try:
                result = call(access)
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _fail_calls(self, reason: str) -> None:
        while True:
            try:
                _, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(PortUnavailableError(f"port {self.port.name!r}: {reason}"))

    def _fail_due_devices(self, kind: ErrorKind, message: str) -> None:
        now_s = self._clock.monotonic_s()
        for poller in self.pollers:
            if poller.next_due_s <= now_s:
                poller.fail(kind, message)
                poller.advance_schedule()
