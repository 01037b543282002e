"""Device health, judged from the device's own evidence only, apart from I/O.

- ``maintenance``: an admin state set by an operator; it wins over everything and
  suppresses alarms while a technician works;
- ``unreachable``: its gateway is offline (one gateway event, no alarm per device);
- ``failing``: the agent reports N consecutive read errors;
- ``stale``: no good reading for ``stale_after_s`` (or the agent says so);
- ``degraded``: good readings, but a station's own clock is off by more than
  ``clock_skew_max_s`` (its readings keep the station's time, so they land in the wrong
  place on a chart; the heartbeat's ``station_clock_offsets_ms``);
- ``ok``: a recent good reading.

Gateway traffic never makes a device look alive: freshness comes only from the device's
good readings (its own last good timestamp), never from the heartbeat that carried them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import wire
from wire.readable import duration

log = logging.getLogger(__name__)


class DeviceHealthState(StrEnum):
    UNKNOWN = "unknown"  # seen, but no good reading yet
    OK = "ok"
    FAILING = "failing"
    STALE = "stale"
    DEGRADED = "degraded"  # a station whose clock is off beyond the limit
    UNREACHABLE = "unreachable"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class DeviceEvidence:
    maintenance: bool
    gateway_alive: bool
    reported: wire.DeviceHealth | None  # from the latest heartbeat, if it named the device
    last_good_ms: int | None  # newest good reading's source time (readings or heartbeat)
    clock_offset_ms: int | None = None  # a pushing station's clock minus its gateway's


def judge_device(
    evidence: DeviceEvidence,
    *,
    now_ms: int,
    stale_after_s: float,
    clock_skew_max_s: float | None = None,
) -> tuple[DeviceHealthState, str]:
    """The device's state and the reason, from its evidence alone."""
    if evidence.maintenance:
        return DeviceHealthState.MAINTENANCE, "maintenance (set by an operator)"
    if not evidence.gateway_alive:
        return DeviceHealthState.UNREACHABLE, "gateway offline"
    reported = evidence.reported
    if reported is not None and reported.state == "failing":
        error = f": {reported.last_error}" if reported.last_error else ""
        return (
            DeviceHealthState.FAILING,
            f"{reported.consecutive_failures} consecutive read errors{error}",
        )
    # 0 is no time (a store that wrote it for "never"): not 1970.
    last_good_ms = max(evidence.last_good_ms or 0, (reported and reported.last_good_ms) or 0)
    if reported is not None and reported.state == "stale":
        return DeviceHealthState.STALE, (
            "the agent reports no good reading for 3 poll intervals"
            if last_good_ms
            else "the agent reports no reading yet"
        )
    if not last_good_ms:
        return DeviceHealthState.UNKNOWN, "no reading yet"
    age_s = (now_ms - last_good_ms) / 1000
    if age_s > stale_after_s:
        return DeviceHealthState.STALE, f"no good reading for {duration(age_s)}"
    offset_ms = evidence.clock_offset_ms
    if (
        offset_ms is not None
        and clock_skew_max_s is not None
        and abs(offset_ms) > clock_skew_max_s * 1000
    ):
        return (
            DeviceHealthState.DEGRADED,
            f"station clock off by {offset_ms / 1000:+.0f} s (limit {clock_skew_max_s:g} s)",
        )
    return DeviceHealthState.OK, "good readings"


@dataclass(frozen=True, slots=True)
class DeviceTransition:
    gateway: str
    device: str
    from_state: DeviceHealthState
    to_state: DeviceHealthState
    reason: str
    at_ms: int


def reevaluate_devices(
    conn: sqlite3.Connection,
    gateway: str,
    *,
    gateway_alive: bool,
    reported: Mapping[str, wire.DeviceHealth] | None,
    now_ms: int,
    stale_after_s: float,
    clock_offsets_ms: Mapping[str, int] | None = None,
    clock_skew_max_s: float | None = None,
) -> list[DeviceTransition]:
    """Judge every device of ``gateway`` (writer thread), store and return the transitions.

    ``reported`` is the latest heartbeat's device map, or None when there is no new heartbeat
    (a gateway transition or a maintenance change): then the stored agent state is used.
    ``clock_offsets_ms``: the pushing stations' clock offsets the gateway last reported.
    """
    rows = conn.execute(
        "SELECT name, state, maintenance, health_state, last_good_ms FROM devices"
        " WHERE gateway = ?",
        (gateway,),
    ).fetchall()
    transitions: list[DeviceTransition] = []
    for name, agent_state, maintenance, current, last_good_ms in rows:
        device_report = reported.get(name) if reported is not None else None
        if device_report is None and agent_state:
            device_report = wire.DeviceHealth(state=agent_state)
        state, reason = judge_device(
            DeviceEvidence(
                maintenance=bool(maintenance),
                gateway_alive=gateway_alive,
                reported=device_report,
                last_good_ms=last_good_ms,
                clock_offset_ms=(clock_offsets_ms or {}).get(name),
            ),
            now_ms=now_ms,
            stale_after_s=stale_after_s,
            clock_skew_max_s=clock_skew_max_s,
        )
        if state.value == current:
            continue
        transition = DeviceTransition(
            gateway, name, DeviceHealthState(current), state, reason, now_ms
        )
        transitions.append(transition)
        conn.execute(
            "UPDATE devices SET health_state = ?, health_reason = ?, health_since_ms = ?"
            " WHERE gateway = ? AND name = ?",
            (state.value, reason, now_ms, gateway, name),
        )
    if transitions:
        conn.executemany(
            "INSERT INTO device_transitions (gateway, device, from_state, to_state, reason, at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (t.gateway, t.device, t.from_state.value, t.to_state.value, t.reason, t.at_ms)
                for t in transitions
            ],
        )
        _log(gateway, transitions)
    return transitions


def _log(gateway: str, transitions: list[DeviceTransition]) -> None:
    """Once per change; devices made unreachable by their gateway share one line."""
    unreachable = [t for t in transitions if t.to_state is DeviceHealthState.UNREACHABLE]
    if unreachable:
        log.info(
            "gateway %s offline: %d device(s) unreachable (one gateway event, no device alarms)",
            gateway,
            len(unreachable),
        )
    for t in transitions:
        if t.to_state is not DeviceHealthState.UNREACHABLE:
            log.info(
                "device %s.%s: %s -> %s (%s)",
                gateway,
                t.device,
                t.from_state.value,
                t.to_state.value,
                t.reason,
            )
