"""Who is on duty: a roster's weekly shifts and one-off overrides, at a moment.

While any override of a roster runs, its people are the ones on duty and the weekly shifts
are not asked (a one-off replaces the pattern, it does not add to it). Otherwise everyone
whose shift covers the moment is on duty; a shift whose end is at or before its start runs
past midnight, so ``sat 22:00-06:00`` covers Sunday 03:00. Times are the roster's time zone;
daylight-saving gaps and folds are taken as the zone's rules say (``zoneinfo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from controller.notify.config import Layer, Person, RosterBody, RosterConfig, WeeklyShift


@dataclass(frozen=True, slots=True)
class OnDuty:
    """One person on duty at one place."""

    place: str
    layer: Layer
    person: Person


def on_duty(roster: RosterConfig, at_ms: int) -> list[OnDuty]:
    """The roster's people on duty at ``at_ms`` (wall-clock ms), in the roster's order."""
    ids = on_duty_ids(roster, at_ms)
    layer = roster.resolved_layer
    return [OnDuty(roster.place, layer, p) for p in roster.people if p.id in ids]


def on_duty_ids(roster: RosterBody, at_ms: int) -> set[str]:
    zone = roster.zone()
    local = datetime.fromtimestamp(at_ms / 1000, tz=UTC).astimezone(zone)
    overriding = {
        o.person
        for o in roster.overrides
        if _aware(o.start, roster) <= local < _aware(o.end, roster)
    }
    if overriding:
        return overriding
    return {s.person for s in roster.shifts if _covers(s, local)}


def _aware(moment: datetime, roster: RosterBody) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=roster.zone())


def _covers(shift: WeeklyShift, local: datetime) -> bool:
    start, end = shift.start_time(), shift.end_time()
    clock = local.time().replace(tzinfo=None)
    days = {d.weekday for d in shift.days}
    if start < end:
        return local.weekday() in days and start <= clock < end
    # Past midnight: the evening part on a listed day, the morning part on the day after.
    yesterday = (local - timedelta(days=1)).weekday()
    return (local.weekday() in days and clock >= start) or (yesterday in days and clock < end)
