"""One background thread that serves until told to stop, and stops at once.

A pty (``firmware_sim.pty``), its RFC 2217 door (``firmware_sim.rfc2217_server``) and the
control socket (``firmware_sim.control``) each serve on a thread blocked in ``select()``.
The thread also watches ``wake_fd``, the read end of a pipe that ``stop()`` writes to, so a
stop is immediate rather than a poll timeout, and ``serve`` must return once it is readable.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
STOP_JOIN_TIMEOUT_S = 2.0


class ServingThread:
    """``serve()`` on a thread named ``name``, from ``start()`` until ``stop()``."""

    def __init__(self, name: str, serve: Callable[[], None]) -> None:
        self.name = name
        self._serve = serve
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1

    @property
    def wake_fd(self) -> int:
        """Readable once ``stop()`` was called: ``serve`` select()s on it and returns."""
        return self._wake_r

    def start(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=self.name)
        self._thread.start()

    def stop(self) -> None:
        """Wake the thread, wait for it (2 s at most: then log, never hang), close the pipe."""
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=STOP_JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.error("%s: serving thread did not stop", self.name)
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
