"""The controller's retained status (``edgewatch/v1/controller/status``): ``online`` only while
every session that must receive the gateways' topics is subscribed.

Agents send nothing while the status is not ``online`` (``hold_while_controller_offline``),
and once it is, they send at once. So ``online`` may be said only when the broker holds a
subscription for every topic a gateway sends on: each session (live, backlog) is *ready*
from its SUBACK until it loses its connection. When the last one becomes ready, ``online``
is published; when one of them is lost while all were ready, ``offline`` is published (by
the live session, if it is still connected; a lost live session leaves it to its will).

Why it matters: a broker restarted without persistence has forgotten every subscription and
the retained status. In issue 11 the live session reconnected and said ``online`` 7 ms
before the backlog session had subscribed; the agent sent its backlog at once, the broker
acknowledged about 200 readings it had no subscriber for, and the agent, keeping no acked
rows (``acked_retention_s = 0``), deleted them.

A session that connects and hears from the broker that it kept no session for it
(CONNACK ``session present`` = 0) learns that the broker lost its state, so every other
session's subscriptions are gone too, even if that session has not noticed yet (a broker
host that went down without closing its TCP connections leaves them half-open until
keepalive says so). ``forgotten`` then marks every session not ready and has the others
subscribe again: a half-open one never gets its SUBACK, and ``online`` waits for its
reconnect.

``online`` is published at QoS 0. paho re-sends a QoS 1 message that was not acknowledged
when its connection dropped as soon as the next connection is up, before that connection
has subscribed: a stale ``online`` would open exactly the window this module closes. A QoS 0
message is sent on the connection it was made for or not at all, and a lost one is
followed by a new ``online`` after the next subscription. ``offline`` stays QoS 1 (a late
``offline`` only makes agents wait for the next ``online``).

Publishing happens under the lock, so the broker sees the states in the order they were
decided (paho's ``publish`` only queues the packet for its network thread).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

import wire
from wire.clock import wall_ms

log = logging.getLogger(__name__)

# publish(payload, qos) -> True if handed to a connected client.
StatusPublisher = Callable[[bytes, int], bool]


def status_payload(state: wire.GatewayState) -> bytes:
    return wire.encode(wire.ControllerStatus(state=state, ts_ms=wall_ms()))


class ControllerPresence:
    """Which sessions are subscribed, and the status that follows from it."""

    def __init__(self, sessions: Iterable[str]) -> None:
        self._ready = dict.fromkeys(sessions, False)
        if not self._ready:
            raise ValueError("presence needs at least one session")
        self._publish: StatusPublisher | None = None
        self._resubscribe: dict[str, Callable[[], None]] = {}
        self._lock = threading.Lock()
        # What was published, in order (the last few; tests and debugging read it).
        self.announced: deque[wire.GatewayState] = deque(maxlen=64)

    @property
    def online(self) -> bool:
        """Every session is subscribed."""
        with self._lock:
            return all(self._ready.values())

    def publish_with(self, publish: StatusPublisher) -> None:
        """The session whose client publishes the status (the one that carries the will)."""
        self._publish = publish

    def resubscribe_with(self, session: str, resubscribe: Callable[[], None]) -> None:
        """How ``session`` sends its subscriptions again on its current connection."""
        self._resubscribe[session] = resubscribe

    def forgotten(self, session: str) -> None:
        """``session`` connected to a broker that kept no session for it: the broker lost
        every session's subscriptions. All must subscribe (again) before ``online``."""
        with self._lock:
            was_online = all(self._ready.values())
            others = [name for name in self._ready if name != session]
            for name in self._ready:
                self._ready[name] = False
            if was_online:
                self._say(wire.GatewayState.OFFLINE, qos=1)
        for name in others:
            resubscribe = self._resubscribe.get(name)
            if resubscribe is not None:
                try:
                    resubscribe()
                except (RuntimeError, ValueError, OSError) as exc:  # its reconnect will
                    log.warning("session %s could not subscribe again: %s", name, exc)

    def subscribed(self, session: str) -> None:
        """``session`` has its subscriptions acknowledged (SUBACK) on its current connection."""
        with self._lock:
            was_online = all(self._ready.values())
            self._ready[session] = True
            if not was_online and all(self._ready.values()):
                self._say(wire.GatewayState.ONLINE, qos=0)

    def lost(self, session: str) -> None:
        """``session`` lost its connection (or is stopping): the broker may forget its
        subscriptions, so the gateways must not send until it has subscribed again."""
        with self._lock:
            was_online = all(self._ready.values())
            self._ready[session] = False
            if was_online:
                self._say(wire.GatewayState.OFFLINE, qos=1)

    def _say(self, state: wire.GatewayState, *, qos: int) -> None:
        if self._publish is None:
            return
        try:
            sent = self._publish(status_payload(state), qos)
        except (RuntimeError, ValueError) as exc:
            log.warning("could not publish the controller's %s status: %s", state.value, exc)
            return
        if sent:
            self.announced.append(state)
            log.info("controller status: %s", state.value)
