"""A simulated line served over RFC 2217 (a Telnet remote serial port): parity that shows.

A Linux pty cannot carry parity (the kernel drops "parity on" from every setting a client
makes, ``firmware_sim.uart``), so a master on the pty at 8E1 and one at 8N1 look alike to
the simulator. RFC 2217 carries the master's baud, data bits, parity and stop bits with
the bytes; pyserial speaks it as a client (``serial_for_url("rfc2217://host:port")``,
which the agent, ``agent probe`` and ``agent doctor`` open like any port) and implements
the server's Telnet side (``serial.rfc2217.PortManager``), which this module uses.

The server listens on 127.0.0.1 only (a free port), takes one client at a time (a second
is closed at once and counted, as a port server refuses a port in use), and bridges it
onto the pty: the client's bytes go in at the pty's slave side, as a master on the pty
would write them, and what the simulated devices send comes back. The settings the client
asked for are kept in a ``RequestedLine`` (nothing is applied to the pty), which the bus
or line reads through ``client_framing()`` to judge each request.

Bounds: reads of 4 KiB; a 16 KiB socket send buffer and at most 64 KiB more waiting to go
to a client (a client that sends Telnet requests and never reads its answers is dropped);
a Telnet subnegotiation longer than 64 bytes (RFC 2217's are at most 6) or a malformed one
drops the client. Each drop is counted in ``stats`` and logged, the first of each reason
as a warning (a client that keeps coming back must not flood the log).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import termios
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import serial
from serial import rfc2217

from firmware_sim.serving import ServingThread
from firmware_sim.uart import MasterFraming

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
READ_BYTES = 4096
MAX_PENDING_OUT_BYTES = 64 * 1024
MAX_SUBOPTION_BYTES = 64
SOCKET_SEND_BUFFER_BYTES = 16 * 1024  # a 115200-baud line moves 11 KiB/s: plenty


@dataclass(slots=True)
class Rfc2217Stats:
    clients: int = 0  # sessions served
    refused: int = 0  # connections closed at once: another client had the line
    bad_telnet: int = 0  # clients dropped for a malformed or oversized Telnet command
    slow_clients: int = 0  # clients dropped for not reading what they were sent
    bytes_to_line: int = 0
    bytes_from_line: int = 0
    dropped_to_line: int = 0  # bytes the pty could not take (the bus fell behind)


class RequestedLine(serial.SerialBase):
    """The serial settings an RFC 2217 client asked for; a port never opened.

    ``PortManager`` sets baud, data bits, parity, stop bits, flow control, DTR and RTS on
    it (``SerialBase`` validates them; nothing reaches the pty) and reads the modem lines,
    which a simulated line does not have: all off. A purge empties what waits on the pty.
    """

    def __init__(self, pty_fd: int) -> None:
        super().__init__()  # 9600 8N1, as a port server's default, until the client asks
        self._pty_fd = pty_fd

    @property
    def cts(self) -> bool:
        return False

    @property
    def dsr(self) -> bool:
        return False

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return False

    def read(self, size: int = -1, /) -> bytes:
        raise serial.PortNotOpenError()  # the bytes go through the session, never here

    def write(self, b: ReadableBuffer, /) -> int | None:
        raise serial.PortNotOpenError()

    def reset_input_buffer(self) -> None:
        with contextlib.suppress(termios.error):
            termios.tcflush(self._pty_fd, termios.TCIFLUSH)

    def reset_output_buffer(self) -> None:
        """Nothing waits to go to the line: the client's bytes are written as they come."""

    def framing(self) -> MasterFraming:
        return MasterFraming.exactly(
            self.baudrate, self.parity, self.stopbits, self.bytesize, source="rfc2217"
        )


class _Session:
    """One client bridged onto the pty: its socket, its own descriptor of the pty's slave
    side, the Telnet state and what waits to be sent to it."""

    def __init__(self, client: socket.socket, pty_path: str) -> None:
        self.client = client
        self.pty_fd = os.open(pty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.line = RequestedLine(self.pty_fd)
        self.line.reset_input_buffer()  # a fresh master starts on a quiet line
        self.pending_out = bytearray()
        # The stubs type both arguments as rfc2217.Serial; PortManager uses only the
        # settings attributes of the first and write() of the second.
        line: Any = self.line
        connection: Any = self
        self.manager = rfc2217.PortManager(line, connection)

    def write(self, data: bytes) -> None:
        """PortManager's connection: Telnet answers wait with the line's bytes."""
        self.pending_out += data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.client.close()
        with contextlib.suppress(OSError):
            os.close(self.pty_fd)


class Rfc2217Server:
    """Serve the pty at ``pty_path`` over RFC 2217 on 127.0.0.1 until the context exits."""

    def __init__(self, pty_path: str, *, name: str) -> None:
        self.name = name
        self._pty_path = pty_path
        self.stats = Rfc2217Stats()
        self._listener: socket.socket | None = None
        self._session: _Session | None = None
        self._serving = ServingThread(f"sim-rfc2217-{name}", self._serve)
        self.port = 0

    @property
    def url(self) -> str:
        return f"rfc2217://{HOST}:{self.port}"

    def client_framing(self) -> MasterFraming | None:
        """The connected client's settings; None while no client is connected."""
        session = self._session
        return session.line.framing() if session is not None else None

    def __enter__(self) -> Self:
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
        self._listener = socket.create_server((HOST, 0), backlog=4)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._serving.start()

    def stop(self) -> None:
        self._serving.stop()
        self._end_session()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _serve(self) -> None:
        assert self._listener is not None
        listener, wake_fd = self._listener, self._serving.wake_fd
        while True:
            session = self._session
            readable: list[Any] = [wake_fd, listener]
            writable: list[Any] = []
            if session is not None:
                readable.append(session.client)
                if len(session.pending_out) < MAX_PENDING_OUT_BYTES:
                    readable.append(session.pty_fd)  # else the pty holds it: back-pressure
                if session.pending_out:
                    writable.append(session.client)
            ready, can_write, _ = select.select(readable, writable, [])
            if wake_fd in ready:
                return
            if session is not None:  # first, so a client that just left frees the line
                if session.client in can_write:
                    self._send(session)
                if self._session is session and session.client in ready:
                    self._from_client(session)
                if self._session is session and session.pty_fd in ready:
                    self._from_line(session)
            if listener in ready:
                self._accept(listener)

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        if self._session is not None:
            self.stats.refused += 1
            if self.stats.refused == 1:
                log.warning("rfc2217 %s: a second client refused: one master at a time", self.name)
            client.close()
            return
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER_BYTES)
        try:
            self._session = _Session(client, self._pty_path)
        except OSError as exc:
            log.error("rfc2217 %s: cannot open %s for a client: %s", self.name, self._pty_path, exc)
            client.close()
            return
        self.stats.clients += 1

    def _from_client(self, session: _Session) -> None:
        try:
            chunk = session.client.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._end_session()
            return
        try:
            data = b"".join(session.manager.filter(chunk))
        except Exception as exc:  # PortManager raises what a bad value makes it raise
            self._drop(f"a malformed Telnet command ({exc!r})", "bad_telnet")
            return
        suboption = session.manager.suboption
        if suboption is not None and len(suboption) > MAX_SUBOPTION_BYTES:
            self._drop(f"a Telnet subnegotiation past {MAX_SUBOPTION_BYTES} bytes", "bad_telnet")
            return
        if len(session.pending_out) > MAX_PENDING_OUT_BYTES:
            self._drop("not reading its answers", "slow_clients")
            return
        self._to_line(session, data)

    def _to_line(self, session: _Session, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(session.pty_fd, view)
            except (BlockingIOError, InterruptedError):
                self.stats.dropped_to_line += len(view)  # lost, as on an overrun line
                return
            except OSError:
                self._end_session()
                return
            self.stats.bytes_to_line += written
            view = view[written:]

    def _from_line(self, session: _Session) -> None:
        try:
            data = os.read(session.pty_fd, READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._end_session()
            return
        self.stats.bytes_from_line += len(data)
        session.pending_out += b"".join(session.manager.escape(data))

    def _send(self, session: _Session) -> None:
        try:
            sent = session.client.send(session.pending_out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._end_session()
            return
        del session.pending_out[:sent]

    def _drop(self, why: str, counter: str) -> None:
        """End the session for ``why``: counted each time, logged the first time per reason
        (a client that keeps coming back must not flood the log)."""
        count = getattr(self.stats, counter) + 1
        setattr(self.stats, counter, count)
        level = logging.WARNING if count == 1 else logging.DEBUG
        log.log(level, "rfc2217 %s: client dropped: %s (%s: %d)", self.name, why, counter, count)
        self._end_session()

    def _end_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()
