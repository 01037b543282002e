"""The gateway as the listening side: every ``[[listeners]]`` entry served by one thread.

Stations that push (SL651 remote stations, HJ212 loggers) dial in to a TCP port or talk
on a serial line wired to the gateway. A thread per connection would cost ~8 MB of stack
reservation and a context switch per frame; the target is 2,000 stations on one gateway
within 60 MB and 10 % of a core (``python -m bench.stations``). So one selector loop
(``StationServer``) owns every listening socket, every accepted connection and every
serial line, and hands what arrives to the connection's link: the driver's sans-I/O
protocol state (``drivers.stations.StationLink``), which says what to answer and what was
reported. Reports and refusals go to the ``StationBook``.

Everything is bounded, so nothing one station does blinds the gateway to the others:

- connections per listener (``max_connections``): one more is accepted and closed at once,
  counted (``refused_full``), logged once per episode;
- a frame (``max_frame_bytes``): the link refuses a longer length before buffering it;
- each read takes at most ``READ_BYTES`` (the loop turns to the others between reads);
- answers waiting to be sent: a connection that does not read them (``MAX_PENDING_BYTES``)
  is closed (``closed_slow``);
- bad frames: a token bucket per connection refills ``bad_frames_per_min`` a minute; a
  connection that runs it dry is closed (``closed_bad_frames``): it may dial again;
- idle connections: no report for ``idle_timeout_s`` closes it (``closed_idle``); TCP
  keepalive finds peers that vanished without a word.

A listener whose port cannot be bound or whose serial line cannot be opened is retried
with capped backoff (logged once until it works); a crash of the loop is logged once and
the loop restarted (``wire.supervision``). ``stop()`` returns within a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import selectors
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import serial

from agent.bus.ports import open_line
from agent.config import ListenerConfig
from agent.stations.book import StationBook
from drivers.base import DeviceConfig
from drivers.registry import link_factory
from drivers.stations import LinkOptions, LinkOutput, StationLink
from wire.clock import Clock
from wire.lifecycle import Lifecycle
from wire.supervision import Backoff, FailureLog, supervise

log = logging.getLogger(__name__)

READ_BYTES = 65_536
MAX_PENDING_BYTES = 65_536
ACCEPTS_PER_EVENT = 64
HOUSEKEEPING_S = 1.0
CLOCK_CHECK_S = 60.0
REOPEN_MIN_S = 0.5
REOPEN_MAX_S = 5.0
STOP_JOIN_S = 3.0
SPARE_FILES = 256  # descriptors beyond the connections: buffer, MQTT, serial ports, logs
# TCP keepalive: a peer gone without a word is found within about 2 minutes.
KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 6}


@dataclass(slots=True)
class ListenerStats:
    accepted: int = 0
    refused_full: int = 0  # connections beyond max_connections, closed at once
    closed_idle: int = 0
    closed_bad_frames: int = 0
    closed_slow: int = 0  # did not read our answers
    closed_by_peer: int = 0
    reports: int = 0
    bytes_in: int = 0


@dataclass(eq=False, slots=True)
class _Connection:
    listener: _Listener
    link: StationLink
    peer: str
    started_s: float
    sock: socket.socket | None = None
    line: serial.Serial | None = None
    out: bytearray = field(default_factory=bytearray)
    last_report_s: float = 0.0
    bad_tokens: float = 0.0
    bad_at_s: float = 0.0

    def fileno(self) -> int:
        if self.sock is not None:
            return self.sock.fileno()
        assert self.line is not None
        return int(self.line.fileno())


@dataclass(eq=False)
class _Listener:
    config: ListenerConfig
    make_link: Callable[[], StationLink]
    stats: ListenerStats = field(default_factory=ListenerStats)
    sock: socket.socket | None = None
    connections: set[_Connection] = field(default_factory=set)
    address: tuple[str, int] | None = None
    reopen_at_s: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(REOPEN_MIN_S, REOPEN_MAX_S))
    failures: FailureLog | None = None
    full_logged: bool = False

    @property
    def label(self) -> str:
        """How logs name it: its config, with the port it is bound to."""
        config = self.config
        if self.address is None:
            return config.describe()
        return (
            f"listener {config.name!r} ({config.protocol} on {self.address[0]}:{self.address[1]})"
        )


OpenLine = Callable[[ListenerConfig], serial.Serial]


def open_station_line(config: ListenerConfig) -> serial.Serial:
    """A serial listener's line, non-blocking (reads return what has arrived)."""
    assert config.url is not None  # a serial listener has one (checked with its config)
    return open_line(config.url, config, timeout_s=0, write_timeout_s=1.0)


class StationServer(Lifecycle):
    """Serves ``listeners`` for the station ``devices``; see the module docstring."""

    def __init__(
        self,
        listeners: Sequence[ListenerConfig],
        devices: Sequence[DeviceConfig],
        book: StationBook,
        clock: Clock,
        *,
        clock_trusted: Callable[[], bool] = lambda: False,
        opener: OpenLine = open_station_line,
    ) -> None:
        self._book = book
        self._clock = clock
        self._clock_trusted = clock_trusted
        self._trusted = False
        self._opener = opener
        self._devices = list(devices)
        self._listeners = [
            _Listener(config, self._factory(config, trusted=False)) for config in listeners
        ]
        for listener in self._listeners:
            listener.failures = FailureLog(log, listener.config.describe())
        self.crashes = 0
        self._selector: selectors.BaseSelector | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1
        self._next_housekeeping_s = 0.0
        self._next_clock_check_s = 0.0

    def _factory(self, config: ListenerConfig, *, trusted: bool) -> Callable[[], StationLink]:
        options = LinkOptions(
            centre=config.centre,
            keep_online=config.keep_online,
            max_frame_bytes=config.frame_bytes,
            clock_trusted=trusted,
        )
        on_it = [d for d in self._devices if d.port == config.name]
        return link_factory(config.protocol, on_it, options)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and open what can be (so tests know the ports at once), then serve."""
        self._raise_file_limit()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping.clear()
        now_s = self._clock.monotonic_s()
        for listener in self._listeners:
            self._open(listener, now_s)
        self._thread = threading.Thread(target=self._supervised, name="stations")
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=STOP_JOIN_S)
            if self._thread.is_alive():
                log.error("stations: the listener thread did not stop")
            self._thread = None
        now_ms = self._clock.wall_ms()
        for listener in self._listeners:
            for connection in list(listener.connections):
                self._close(connection, now_ms, counted=None)
            if listener.sock is not None:
                self._unregister(listener.sock)
                listener.sock.close()
                listener.sock = None
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def address(self, name: str) -> tuple[str, int] | None:
        """Where a TCP listener is bound (its port, when the config said 0)."""
        return next((lst.address for lst in self._listeners if lst.config.name == name), None)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per listener: open connections and the counters (for the heartbeat)."""
        refused = self._book.refused()
        return {
            lst.config.name: {
                "connections": len(lst.connections),
                "alive": self.alive,
                "crashes": self.crashes,
                **{k: getattr(lst.stats, k) for k in ListenerStats.__dataclass_fields__},
                "refused": refused.get(lst.config.name, {}),
            }
            for lst in self._listeners
        }

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _raise_file_limit(self) -> None:
        """Room for every connection the listeners allow: the soft limit up to the hard."""
        wanted = SPARE_FILES + sum(
            lst.config.max_connections for lst in self._listeners if lst.config.kind == "tcp"
        )
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            if new < wanted:
                log.warning(
                    "stations: the listeners allow %d connections but only %d files may be"
                    " open (raise LimitNOFILE)",
                    wanted - SPARE_FILES,
                    new,
                )

    # -- the loop -------------------------------------------------------------------------

    def _supervised(self) -> None:
        supervise(
            self._serve,
            failures=FailureLog(log, "stations loop"),
            stopped=self._stopping.is_set,
            wait=self._stopping.wait,
            backoff=Backoff(0.1, 5.0),
            on_crash=self._crashed,
        )

    def _crashed(self, exc: BaseException) -> None:
        self.crashes += 1

    def _serve(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stopping.is_set():
            wait_s = max(0.0, self._next_housekeeping_s - self._clock.monotonic_s())
            for key, mask in selector.select(min(wait_s, HOUSEKEEPING_S)):
                data = key.data
                if data is None:
                    os.read(self._wake_r, 4096)
                elif isinstance(data, _Listener):
                    self._accept(data)
                else:
                    self._service(data, mask)
            now_s = self._clock.monotonic_s()
            if now_s >= self._next_housekeeping_s:
                self._housekeeping(now_s)
                self._next_housekeeping_s = now_s + HOUSEKEEPING_S

    def _service(self, connection: _Connection, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(connection)
        if mask & selectors.EVENT_READ and connection in connection.listener.connections:
            self._read(connection)

    # -- listeners ------------------------------------------------------------------------

    def _open(self, listener: _Listener, now_s: float) -> None:
        """Bind a TCP listener or open a serial line; on failure, retry later (capped)."""
        config = listener.config
        assert listener.failures is not None
        try:
            if config.kind == "tcp":
                assert config.port is not None
                sock = socket.create_server((config.host, config.port), backlog=1024)
                sock.setblocking(False)
                listener.sock = sock
                listener.address = sock.getsockname()[:2]
                self._register(sock, listener)
                log.info("%s: listening", listener.label)
            else:
                line = self._opener(config)
                connection = _Connection(
                    listener, listener.make_link(), str(config.url), now_s, line=line
                )
                connection.last_report_s = now_s
                connection.bad_tokens = float(config.bad_frames_per_min)
                connection.bad_at_s = now_s
                listener.connections.add(connection)
                self._register(connection, connection)
        except (OSError, serial.SerialException, ValueError) as exc:
            delay_s = listener.backoff.next_s()
            listener.failures.failed(exc, then=f"retrying in {delay_s:.1f} s")
            listener.reopen_at_s = now_s + delay_s
            return
        listener.backoff.reset()
        listener.failures.succeeded()

    def _register(self, target: Any, data: Any) -> None:
        assert self._selector is not None
        self._selector.register(target, selectors.EVENT_READ, data)

    def _unregister(self, target: Any) -> None:
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(target)

    def _accept(self, listener: _Listener) -> None:
        assert listener.sock is not None
        config = listener.config
        now_s = self._clock.monotonic_s()
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                sock, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of files, or the like: the next event retries
                log.warning("%s: accept failed: %s", listener.label, exc)
                return
            if len(listener.connections) >= config.max_connections:
                listener.stats.refused_full += 1
                sock.close()
                if not listener.full_logged:
                    log.warning(
                        "%s: %d connections, the most it takes: new ones are closed"
                        " (logged once until there is room again)",
                        listener.label,
                        config.max_connections,
                    )
                    listener.full_logged = True
                continue
            sock.setblocking(False)
            _keepalive(sock)
            connection = _Connection(
                listener, listener.make_link(), f"{peer[0]}:{peer[1]}", now_s, sock=sock
            )
            connection.last_report_s = now_s
            connection.bad_tokens = float(config.bad_frames_per_min)
            connection.bad_at_s = now_s
            listener.connections.add(connection)
            listener.stats.accepted += 1
            self._register(sock, connection)

    # -- connections ----------------------------------------------------------------------

    def _read(self, connection: _Connection) -> None:
        listener = connection.listener
        try:
            if connection.sock is not None:
                data = connection.sock.recv(READ_BYTES)
            else:
                assert connection.line is not None
                data = connection.line.read(min(READ_BYTES, connection.line.in_waiting or 1))
                if not data:
                    return
        except (BlockingIOError, InterruptedError):
            return
        except (OSError, serial.SerialException) as exc:
            log.debug("%s: %s: %s", listener.label, connection.peer, exc)
            data = b""
        now_ms = self._clock.wall_ms()
        if not data:
            self._close(connection, now_ms, counted="closed_by_peer")
            return
        listener.stats.bytes_in += len(data)
        self._handle(connection, connection.link.receive(data, now_ms))

    def _handle(self, connection: _Connection, out: LinkOutput) -> None:
        listener = connection.listener
        name = listener.config.name
        for report in out.reports:
            listener.stats.reports += 1
            connection.last_report_s = self._clock.monotonic_s()
            self._book.take(name, report)
        for problem in out.problems:
            self._book.refuse(name, problem, connection.peer)
        if out.replies:
            connection.out += b"".join(out.replies)
            self._flush(connection)
        if out.problems and connection in listener.connections:
            self._charge_bad_frames(connection, len(out.problems))

    def _charge_bad_frames(self, connection: _Connection, count: int) -> None:
        """A token bucket: ``bad_frames_per_min`` a minute; run dry, the link is closed."""
        per_min = connection.listener.config.bad_frames_per_min
        now_s = self._clock.monotonic_s()
        refill = (now_s - connection.bad_at_s) * per_min / 60
        connection.bad_tokens = min(float(per_min), connection.bad_tokens + refill) - count
        connection.bad_at_s = now_s
        if connection.bad_tokens < 0:
            self._close(connection, self._clock.wall_ms(), counted="closed_bad_frames")

    def _flush(self, connection: _Connection) -> None:
        if not connection.out:
            return
        try:
            if connection.sock is not None:
                sent = connection.sock.send(connection.out)
            else:
                assert connection.line is not None
                sent = connection.line.write(bytes(connection.out)) or 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except (OSError, serial.SerialException):
            self._close(connection, self._clock.wall_ms(), counted="closed_by_peer")
            return
        del connection.out[:sent]
        if len(connection.out) > MAX_PENDING_BYTES:
            self._close(connection, self._clock.wall_ms(), counted="closed_slow")
            return
        if connection.sock is not None and self._selector is not None:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.out else 0)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.modify(connection.sock, events, connection)

    def _close(self, connection: _Connection, now_ms: int, *, counted: str | None) -> None:
        listener = connection.listener
        if connection not in listener.connections:
            return
        listener.connections.discard(connection)
        if counted is not None:  # counted before the peer can see the link closed
            setattr(listener.stats, counted, getattr(listener.stats, counted) + 1)
        if counted == "closed_bad_frames":
            log.info(
                "%s: %s sent more than %d bad frames a minute: closed",
                listener.label,
                connection.peer,
                listener.config.bad_frames_per_min,
            )
        for problem in connection.link.close(now_ms).problems:
            self._book.refuse(listener.config.name, problem, connection.peer)
        target: Any = connection.sock if connection.sock is not None else connection
        self._unregister(target)
        with contextlib.suppress(OSError, serial.SerialException):
            if connection.sock is not None:
                connection.sock.close()
            elif connection.line is not None:
                connection.line.close()
        if connection.line is not None and not self._stopping.is_set():
            listener.reopen_at_s = self._clock.monotonic_s() + listener.backoff.next_s()
        if len(listener.connections) < listener.config.max_connections:
            listener.full_logged = False

    # -- housekeeping, every second ---------------------------------------------------------

    def _housekeeping(self, now_s: float) -> None:
        now_ms = self._clock.wall_ms()
        for listener in self._listeners:
            idle_s = listener.config.idle_timeout_s
            for connection in list(listener.connections):
                if connection.sock is not None and now_s - connection.last_report_s > idle_s:
                    self._close(connection, now_ms, counted="closed_idle")
            closed_line = listener.config.kind == "serial" and not listener.connections
            unbound = listener.sock is None and listener.config.kind == "tcp"
            if (unbound or closed_line) and now_s >= listener.reopen_at_s:
                self._open(listener, now_s)
        if now_s >= self._next_clock_check_s:
            self._next_clock_check_s = now_s + CLOCK_CHECK_S
            trusted = bool(self._clock_trusted())
            if trusted != self._trusted:  # new links may (or may no longer) set clocks
                self._trusted = trusted
                for listener in self._listeners:
                    listener.make_link = self._factory(listener.config, trusted=trusted)


def _keepalive(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in KEEPALIVE.items():
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
