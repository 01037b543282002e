"""A pseudo-terminal that plays a serial line: we hold the master, a driver opens the slave.

The slave side is put in raw mode (no echo, no line editing, no CR/LF translation) and its
fd is kept open for the pty's whole life: otherwise, between one client closing
``/dev/pts/N`` and the next opening it, reads on the master fail with EIO.
"""

from __future__ import annotations

import contextlib
import os
import tty
from pathlib import Path
from types import TracebackType


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
