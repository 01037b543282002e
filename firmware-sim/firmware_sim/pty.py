"""A pseudo-terminal that plays a serial line: we hold the master, a driver opens the slave.

The slave side is put in raw mode (no echo, no line editing, no CR/LF translation) and its
fd is kept open for the pty's whole life: otherwise, between one client closing
``/dev/pts/N`` and the next opening it, reads on the master fail with EIO.

A served pty may also be served over RFC 2217 (``firmware_sim.rfc2217_server``), the one
way a master's parity reaches the simulator; ``PtyServer.master_framing`` says how the
master frames its characters, from whichever door it came in by.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tty
from pathlib import Path
from types import TracebackType
from typing import Self

from firmware_sim.rfc2217_server import Rfc2217Server
from firmware_sim.serving import ServingThread
from firmware_sim.uart import MasterFraming, read_pty_framing

log = logging.getLogger(__name__)


class PtyPort:
    """A pty pair; ``port_path`` is what a serial client opens. A context manager."""

    def __init__(self, *, link_path: Path | None = None) -> None:
        self._link_path = link_path
        self._master_fd = -1
        self._slave_fd = -1
        self.port_path = ""

    def __enter__(self) -> PtyPort:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def master_fd(self) -> int:
        return self._master_fd

    @property
    def link_path(self) -> Path | None:
        return self._link_path

    def open(self) -> None:
        self._master_fd, self._slave_fd = os.openpty()
        tty.setraw(self._slave_fd)
        os.set_blocking(self._master_fd, False)
        self.port_path = os.ttyname(self._slave_fd)
        if self._link_path is not None:
            # Replace atomically, so a stale link from a crashed run never blocks a start.
            tmp = self._link_path.with_name(f".{self._link_path.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.port_path)
            tmp.replace(self._link_path)

    def close(self) -> None:
        if self._link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                if self._link_path.is_symlink() and os.readlink(self._link_path) == self.port_path:
                    self._link_path.unlink()
        for fd in (self._master_fd, self._slave_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master_fd = self._slave_fd = -1

    def read_available(self, max_bytes: int = 4096) -> bytes:
        """What the client has written so far (b"" if nothing); never blocks."""
        try:
            return os.read(self._master_fd, max_bytes)
        except (BlockingIOError, InterruptedError):
            return b""

    def write_all(self, data: bytes) -> None:
        """Send ``data`` to the client.

        When the client has not read for so long that the pty's buffer is full, the rest is
        dropped, as a real line would lose it: a stuck client must never stall the bus.
        """
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master_fd, view)
            except BlockingIOError:
                return
            view = view[written:]


class PtyServer:
    """A pty served by one background thread: what a bus and a serial line have in common.

    Subclasses implement ``_serve()``; it must return once ``_wake_r`` becomes readable
    (``firmware_sim.serving``), so stopping is immediate rather than a poll timeout.
    With ``rfc2217=True`` the pty is also served over RFC 2217 on 127.0.0.1
    (``rfc2217_url``): one master at a time, by either door, as on a real bus.
    """

    kind = "pty"

    def __init__(self, name: str, *, link_path: Path | None = None, rfc2217: bool = False) -> None:
        self.name = name
        self._port = PtyPort(link_path=link_path)
        self._serving = ServingThread(f"sim-{self.kind}-{name}", self._serve)
        self._serve_rfc2217 = rfc2217
        self._rfc2217: Rfc2217Server | None = None

    @property
    def port_path(self) -> str:
        return self._port.port_path

    @property
    def _wake_r(self) -> int:
        return self._serving.wake_fd

    @property
    def rfc2217(self) -> Rfc2217Server | None:
        """The RFC 2217 server while serving (``rfc2217=True``), for its URL and stats."""
        return self._rfc2217

    @property
    def rfc2217_url(self) -> str | None:
        return self._rfc2217.url if self._rfc2217 is not None else None

    def master_framing(self) -> MasterFraming | None:
        """How the master frames its characters: the RFC 2217 client's settings while one
        is connected, else what the client on the pty set (all a pty keeps of them)."""
        if self._rfc2217 is not None:
            framing = self._rfc2217.client_framing()
            if framing is not None:
                return framing
        return read_pty_framing(self._port.master_fd)

    @property
    def link_path(self) -> Path | None:
        return self._port.link_path

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
        self._port.open()
        if self._serve_rfc2217:
            server = Rfc2217Server(self._port.port_path, name=self.name)
            try:
                server.start()
            except OSError:
                self._port.close()
                raise
            self._rfc2217 = server
        self._serving.start()

    def stop(self) -> None:
        """Stop serving (at once: the thread is woken through a pipe) and close the pty."""
        self._serving.stop()
        if self._rfc2217 is not None:
            self._rfc2217.stop()
            self._rfc2217 = None
        self._port.close()

    def _serve(self) -> None:
        raise NotImplementedError
