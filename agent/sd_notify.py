"""systemd's notify protocol, without a dependency: datagrams to ``$NOTIFY_SOCKET``.

With ``Type=notify`` systemd waits for ``READY=1`` before it calls the service started;
with ``WatchdogSec=`` it expects ``WATCHDOG=1`` at least that often (it passes the period
in ``$WATCHDOG_USEC``; we ping at half of it) and kills and restarts a service that goes
quiet; ``STOPPING=1`` says a stop has begun. Outside systemd (no ``$NOTIFY_SOCKET``) every
call is a no-op, so the agent runs the same by hand and in tests.

The environment is read when a ``Notifier`` is built (``Notifier.from_environment()``),
never at import time. A socket path starting with ``@`` is an abstract socket.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

READY = "READY=1"
WATCHDOG = "WATCHDOG=1"
STOPPING = "STOPPING=1"


class Notifier:
    """Sends notify messages to one socket; ``address`` None: no service manager listens."""

    def __init__(self, address: str | None, *, watchdog_interval_s: float | None = None) -> None:
        self.address = address
        # How often to ping: half the period systemd allows (None: no watchdog asked for).
        self.watchdog_interval_s = watchdog_interval_s
        self._failure_logged = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        interval_s: float | None = None
        watchdog_pid = env.get("WATCHDOG_PID")
        for_us = watchdog_pid is None or watchdog_pid == str(os.getpid())
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
        except ValueError:
            usec = 0
        if usec > 0 and for_us:
            interval_s = usec / 1_000_000 / 2
        return cls(address, watchdog_interval_s=interval_s)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Send ``message`` (e.g. ``READY=1``); True when it was sent. Never raises."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), target)
        except OSError as exc:
            if not self._failure_logged:  # once per outage: a watchdog pings often
                log.warning("sd_notify %s to %s failed: %s", message, self.address, exc)
                self._failure_logged = True
            return False
        self._failure_logged = False
        return True

    def ready(self) -> bool:
        return self.notify(READY)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG)

    def stopping(self) -> bool:
        return self.notify(STOPPING)


NO_NOTIFIER = Notifier(None)
