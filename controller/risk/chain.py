"""The alert chain's vocabulary: states and the steps allowed, trail entries, and the row
helpers and center message shared by the engine (controller.alerts) and the API."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from controller.config import TIER_ORDER, Tier
from wire.risk import Colour

SYSTEM = "system"
BLIND_SPOT_COLOUR = Colour.YELLOW  # a blind red-capable point is told like a yellow alert


class AlertState(StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    HANDLING = "handling"
    RESOLVED = "resolved"
    REVIEWED = "reviewed"


class AlertKind(StrEnum):
    RISK = "risk"
    BLIND_SPOT = "blind_spot"


# What an operator may do next from each state; the system may also auto-resolve any open one.
NEXT_STATES: dict[AlertState, tuple[AlertState, ...]] = {
    AlertState.RAISED: (AlertState.ACKNOWLEDGED,),
    AlertState.ACKNOWLEDGED: (AlertState.HANDLING, AlertState.RESOLVED),
    AlertState.HANDLING: (AlertState.RESOLVED,),
    AlertState.RESOLVED: (AlertState.REVIEWED,),
    AlertState.REVIEWED: (),
}
OPEN_STATES = frozenset({AlertState.RAISED, AlertState.ACKNOWLEDGED, AlertState.HANDLING})


@dataclass(frozen=True, slots=True)
class TransitionRefused:
    status: int  # 404 or 409
    detail: str


@dataclass(frozen=True, slots=True)
class Step:
    """One entry of an alert's trail."""

    action: str
    at_ms: int
    by: str
    note: str


def merge_tiers(tiers: Iterable[str], more: Iterable[str]) -> list[str]:
    """Tiers as a set, in bottom-up order."""
    wanted = {Tier(t) for t in tiers} | {Tier(t) for t in more}
    return [t.value for t in TIER_ORDER if t in wanted]


def rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
    """Rows by name, without touching the writer connection's own row factory."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(sql, params).fetchall()


def alert_row(conn: sqlite3.Connection, alert_id: int) -> sqlite3.Row | None:
    found = rows(conn, "SELECT * FROM alerts WHERE id = ?", (alert_id,))
    return found[0] if found else None


def open_alert(
    conn: sqlite3.Connection, point: str, kind: AlertKind, device: str
) -> sqlite3.Row | None:
    """The open episode of a point (risk), or of one of its devices (blind spot)."""
    sql = "SELECT * FROM alerts WHERE open = 1 AND point = ? AND kind = ?"
    params: list[Any] = [point, kind.value]
    if kind is AlertKind.BLIND_SPOT:
        sql += " AND device = ?"
        params.append(device)
    found = rows(conn, sql, params)
    return found[0] if found else None


def message(row: sqlite3.Row, point_name: str, step: Step) -> dict[str, Any]:
    """What a center receives for each step of an alert: the alert as it now is."""
    return {
        "alert_id": row["id"],
        "action": step.action,
        "at_ms": step.at_ms,
        "by": step.by,
        "note": step.note,
        "point": row["point"],
        "point_name": point_name,
        "kind": row["kind"],
        "place": row["place"],
        "colour": row["colour"],
        "peak_colour": row["peak_colour"],
        "state": row["state"],
        "tiers": json.loads(row["tiers"]),
        "source": row["source"],
        "source_ts_ms": row["source_ts_ms"],
        "raised_ms": row["raised_ms"],
        "device": row["device"],
        "metric": row["metric"],
        "value": row["value"],
    }
