"""Gateway health as a state machine, apart from I/O and with an injectable clock.

- ``online`` on a birth (retained status ``state=online``), and again when heartbeats or
  data resume after a heartbeat timeout;
- ``offline`` on the will or a graceful offline status, unless its session is older than the
  newest birth's (a reconnect race: the old session's will arrives after the new birth);
- ``offline`` when nothing (status, heartbeat, data) was seen for ``heartbeat_misses``
  heartbeat intervals; the interval comes from the birth or the latest health message.

Each method returns the transition it caused, if any, exactly once; the caller stores and
logs it. Thread-safe: MQTT callbacks and the health ticker call in from different threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import wire


class GatewayHealthState(StrEnum):
    UNKNOWN = "unknown"  # configured, never heard from
    ONLINE = "online"
    OFFLINE = "offline"


class Clock(Protocol):
    def monotonic_s(self) -> float: ...

    def wall_ms(self) -> int: ...


class SystemClock:
    def monotonic_s(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Transition:
    gateway: str
    from_state: GatewayHealthState
    to_state: GatewayHealthState
    reason: str
    at_ms: int


class StatusVerdict(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # older session than the newest birth: ignored


@dataclass(slots=True)
class _Gateway:
    state: GatewayHealthState
    session: int | None
    heartbeat_interval_s: float
    last_seen_s: float
    offline_by_timeout: bool = False


class HealthTracker:
    def __init__(
        self,
        *,
        heartbeat_misses: int = 3,
        default_heartbeat_interval_s: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.heartbeat_misses = heartbeat_misses
        self.default_heartbeat_interval_s = default_heartbeat_interval_s
        self.clock: Clock = clock or SystemClock()
        self._gateways: dict[str, _Gateway] = {}
        self._lock = threading.Lock()

    def restore(
        self,
        gateway: str,
        state: GatewayHealthState,
        session: int | None,
        heartbeat_interval_s: float | None,
    ) -> None:
        """Take up a gateway known from the store; an online one gets a full timeout of grace."""
        with self._lock:
            self._gateways[gateway] = _Gateway(
                state=state,
                session=session,
                heartbeat_interval_s=heartbeat_interval_s or self.default_heartbeat_interval_s,
                last_seen_s=self.clock.monotonic_s(),
            )

    def grace(self) -> None:
        """Restart every gateway's timeout, e.g. after the controller itself was cut off."""
        with self._lock:
            now_s = self.clock.monotonic_s()
            for entry in self._gateways.values():
                entry.last_seen_s = now_s

    def state_of(self, gateway: str) -> GatewayHealthState:
        with self._lock:
            known = self._gateways.get(gateway)
            return known.state if known else GatewayHealthState.UNKNOWN

    def on_status(
        self, gateway: str, status: wire.Status
    ) -> tuple[StatusVerdict, Transition | None]:
        with self._lock:
            entry = self._entry(gateway)
            if entry.session is not None and status.session < entry.session:
                return StatusVerdict.STALE, None
            entry.session = status.session
            entry.last_seen_s = self.clock.monotonic_s()
            if status.state is wire.GatewayState.ONLINE:
                if status.heartbeat_interval_s > 0:
                    entry.heartbeat_interval_s = status.heartbeat_interval_s
                return StatusVerdict.APPLIED, self._move(
                    gateway, entry, GatewayHealthState.ONLINE, f"birth (session {status.session})"
                )
            return StatusVerdict.APPLIED, self._move(
                gateway,
                entry,
                GatewayHealthState.OFFLINE,
                f"offline status (session {status.session})",
            )

    def on_health(self, gateway: str, health: wire.Health) -> Transition | None:
        with self._lock:
            entry = self._entry(gateway)
            entry.heartbeat_interval_s = health.heartbeat_interval_s
            return self._seen(gateway, entry, health.session, "heartbeat")

    def on_data(self, gateway: str, session: int) -> Transition | None:
        with self._lock:
            return self._seen(gateway, self._entry(gateway), session, "data")

    def check(self) -> list[Transition]:
        """Gateways whose heartbeat is overdue go offline; call this every second or so."""
        now_s = self.clock.monotonic_s()
        transitions: list[Transition] = []
        with self._lock:
            for gateway, entry in self._gateways.items():
                limit_s = self.heartbeat_misses * entry.heartbeat_interval_s
                silent_s = now_s - entry.last_seen_s
                if entry.state is GatewayHealthState.ONLINE and silent_s > limit_s:
                    reason = (
                        f"no heartbeat for {silent_s:.1f} s "
                        f"({self.heartbeat_misses} x {entry.heartbeat_interval_s:g} s)"
                    )
                    transition = self._move(gateway, entry, GatewayHealthState.OFFLINE, reason)
                    entry.offline_by_timeout = True
                    if transition:
                        transitions.append(transition)
        return transitions

    def _entry(self, gateway: str) -> _Gateway:
        entry = self._gateways.get(gateway)
        if entry is None:
            entry = _Gateway(
                state=GatewayHealthState.UNKNOWN,
                session=None,
                heartbeat_interval_s=self.default_heartbeat_interval_s,
                last_seen_s=self.clock.monotonic_s(),
            )
            self._gateways[gateway] = entry
        return entry

    def _seen(self, gateway: str, entry: _Gateway, session: int, what: str) -> Transition | None:
        if entry.session is not None and session < entry.session:
            return None  # a late message of an older session proves nothing about now
        newer = entry.session is None or session > entry.session
        entry.session = session
        entry.last_seen_s = self.clock.monotonic_s()
        # Traffic brings a gateway back after a timeout, or in a newer session than its will;
        # a message of the session that said goodbye does not.
        if entry.state is GatewayHealthState.ONLINE:
            return None
        if entry.state is GatewayHealthState.OFFLINE and not (entry.offline_by_timeout or newer):
            return None
        verb = "resumed" if entry.state is GatewayHealthState.OFFLINE else "seen"
        return self._move(
            gateway, entry, GatewayHealthState.ONLINE, f"{what} {verb} (session {session})"
        )

    def _move(
        self, gateway: str, entry: _Gateway, to_state: GatewayHealthState, reason: str
    ) -> Transition | None:
        entry.offline_by_timeout = False
        if entry.state is to_state:
            return None
        transition = Transition(gateway, entry.state, to_state, reason, self.clock.wall_ms())
        entry.state = to_state
        return transition
