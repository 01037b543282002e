"""Gateway health as a state machine, apart from I/O and with an injectable clock.

- ``degraded``: online, but the latest heartbeat shows devices failing, a backlog growing,
  disk low or a clock skewed beyond its limit (the reasons are kept);
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
from dataclasses import dataclass
from enum import StrEnum

import wire
from wire.clock import SYSTEM_CLOCK, Clock


class GatewayHealthState(StrEnum):
    UNKNOWN = "unknown"  # configured, never heard from
    ONLINE = "online"
    DEGRADED = "degraded"  # online, with reasons
    OFFLINE = "offline"

    @property
    def alive(self) -> bool:
        return self in _ALIVE


_ALIVE = frozenset({GatewayHealthState.ONLINE, GatewayHealthState.DEGRADED})


@dataclass(frozen=True, slots=True)
class DegradationLimits:
    clock_skew_max_s: float = 10.0
    backlog_max_age_s: float = 60.0
    disk_low_bytes: int = 100_000_000


def clock_skew_ms(health: wire.Health, received_ms: int) -> int:
    """The gateway's clock minus the controller's (positive: the gateway is ahead)."""
    return health.ts_ms - received_ms


def degradation_reasons(
    health: wire.Health,
    *,
    received_ms: int,
    limits: DegradationLimits,
    ignore_devices: frozenset[str] = frozenset(),
) -> list[str]:
    """Why a heartbeat shows a gateway that is alive but not well (empty: all is well)."""
    reasons: list[str] = []
    failing = sorted(
        name
        for name, device in health.devices.items()
        if device.state == "failing" and name not in ignore_devices
    )
    if failing:
        reasons.append(f"devices failing: {', '.join(failing[:10])}")
    if health.oldest_unsent_age_s > limits.backlog_max_age_s:
        reasons.append(
            f"backlog growing: oldest unsent reading {health.oldest_unsent_age_s:.0f} s old"
            f" ({health.buffer_rows} rows buffered)"
        )
    disk_free = (health.model_extra or {}).get("disk_free_bytes")
    if isinstance(disk_free, int | float) and disk_free < limits.disk_low_bytes:
        reasons.append(f"disk low: {int(disk_free)} bytes free")
    skew_ms = clock_skew_ms(health, received_ms)
    if abs(skew_ms) > limits.clock_skew_max_s * 1000:
        reasons.append(f"clock skewed: {skew_ms / 1000:+.1f} s")
    return reasons


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
    reasons: tuple[str, ...] = ()


def _kinds(reasons: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(reason.split(":", 1)[0] for reason in reasons)


class HealthTracker:
    def __init__(
        self,
        *,
        heartbeat_misses: int = 3,
        default_heartbeat_interval_s: float = 5.0,
        limits: DegradationLimits | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.limits = limits or DegradationLimits()
        self.heartbeat_misses = heartbeat_misses
        self.default_heartbeat_interval_s = default_heartbeat_interval_s
        self.clock: Clock = clock or SYSTEM_CLOCK
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

    def on_health(
        self,
        gateway: str,
        health: wire.Health,
        *,
        received_ms: int | None = None,
        ignore_devices: frozenset[str] = frozenset(),
    ) -> Transition | None:
        """A heartbeat keeps a gateway alive and decides between online and degraded."""
        received = self.clock.wall_ms() if received_ms is None else received_ms
        reasons = degradation_reasons(
            health, received_ms=received, limits=self.limits, ignore_devices=ignore_devices
        )
        with self._lock:
            entry = self._entry(gateway)
            if entry.session is not None and health.session < entry.session:
                return None
            entry.heartbeat_interval_s = health.heartbeat_interval_s
            transition = self._seen(gateway, entry, health.session, "heartbeat")
            if not entry.state.alive:
                return transition
            previous_kinds = _kinds(entry.reasons)
            entry.reasons = tuple(reasons)
            if reasons:
                if entry.state is GatewayHealthState.DEGRADED and previous_kinds == _kinds(
                    entry.reasons
                ):
                    return transition  # the same trouble, numbers aside: no new transition
                from_state = transition.from_state if transition else entry.state
                entry.state = GatewayHealthState.DEGRADED
                return Transition(
                    gateway, from_state, entry.state, "; ".join(reasons), self.clock.wall_ms()
                )
            if entry.state is GatewayHealthState.DEGRADED:
                reason = transition.reason if transition else "heartbeat shows all well again"
                return self._move(gateway, entry, GatewayHealthState.ONLINE, reason)
            return transition

    def reasons_of(self, gateway: str) -> tuple[str, ...]:
        with self._lock:
            known = self._gateways.get(gateway)
            return known.reasons if known else ()

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
                if entry.state.alive and silent_s > limit_s:
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
        if entry.state.alive:
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
        if to_state is GatewayHealthState.OFFLINE:
            entry.reasons = ()
        if entry.state is to_state:
            return None
        transition = Transition(gateway, entry.state, to_state, reason, self.clock.wall_ms())
        entry.state = to_state
        return transition
