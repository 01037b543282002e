"""Read side of risk and alerts: response models and the queries that fill them.

Each function takes a read-only connection (``Store.read``); none of them writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controller.fleet.queries import Page, Where
from controller.forwarding.routing import place_contains
from controller.risk.chain import AlertKind, AlertState
from wire.risk import Colour


class TrailEntry(BaseModel):
    action: str  # raised, colour_raised, colour_lowered, escalated, acknowledged, ...
    state: AlertState
    colour: Colour
    at_ms: int
    by: str
    note: str


class AlertOut(BaseModel):
    id: int
    point: str
    kind: AlertKind
    device: str  # the device that caused it (risk) or went quiet (blind spot)
    metric: str
    value: float | None
    place: str
    colour: Colour  # now
    peak_colour: Colour  # the highest this episode reached; routing follows it
    state: AlertState
    open: bool
    source: str  # "controller" or "edge:<gateway>"
    source_ts_ms: int | None  # the source timestamp of the reading that raised it
    raised_ms: int
    updated_ms: int
    closed_ms: int | None
    tiers: list[str]  # tiers told so far (escalation adds one)
    ack_deadline_ms: int | None  # escalates at this time unless acknowledged


class AlertDetail(AlertOut):
    trail: list[TrailEntry]  # oldest first


class TransitionIn(BaseModel):
    """One step along the chain; who acts is the caller's token (its name goes in the trail)."""

    model_config = ConfigDict(extra="forbid")

    to: AlertState
    note: str = Field(default="", max_length=2000)


class RiskPointColour(BaseModel):
    id: str
    name: str
    category: str
    place: str
    colour: Colour
    colour_since_ms: int | None
    blind_devices: list[str]  # devices of the point that went quiet


class RiskMap(BaseModel):
    place: str | None  # the filter, if any
    points: list[RiskPointColour]
    # Every place at or above the points (city, district, street, grid) -> colour -> count.
    places: dict[str, dict[Colour, int]]
    totals: dict[Colour, int]


def _alert(row: sqlite3.Row) -> dict[str, Any]:
    fields = dict(row)
    fields["tiers"] = json.loads(fields["tiers"])
    fields["open"] = bool(fields["open"])
    return fields


def list_alerts(
    conn: sqlite3.Connection,
    *,
    within: Sequence[str | None] = (),
    colour: Colour | None = None,
    state: AlertState | None = None,
    open_only: bool | None = None,
    page: Page | None = None,
) -> list[AlertOut]:
    """Newest first; ``within``: places the alert must be at or below (None: anywhere)."""
    where = (
        Where()
        .within("place", *within)
        .equals("colour", colour.value if colour is not None else None)
        .equals("state", state.value if state is not None else None)
        .equals("open", int(open_only) if open_only is not None else None)
    )
    page = page or Page()
    rows = conn.execute(
        f"SELECT * FROM alerts WHERE {where.sql} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
        [*where.params, page.limit, page.offset],
    ).fetchall()
    return [AlertOut.model_validate(_alert(row)) for row in rows]


def get_alert(conn: sqlite3.Connection, alert_id: int) -> AlertDetail | None:
    row = conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    if row is None:
        return None
    trail = conn.execute(
        "SELECT action, state, colour, at_ms, by, note FROM alert_trail"
        " WHERE alert_id = ? ORDER BY id",
        (alert_id,),
    ).fetchall()
    return AlertDetail(**_alert(row), trail=[TrailEntry.model_validate(dict(t)) for t in trail])


def risk_map(
    conn: sqlite3.Connection, place: str | None = None, *, scope: str | None = None
) -> RiskMap:
    """Points at or below ``place`` and the caller's ``scope`` (None: anywhere)."""
    rows = conn.execute(
        "SELECT id, name, category, place, colour, colour_since_ms, blind_devices"
        " FROM risk_points ORDER BY place, id"
    ).fetchall()
    points = [
        RiskPointColour(**{**dict(r), "blind_devices": json.loads(r["blind_devices"])})
        for r in rows
        if all(p is None or place_contains(p, r["place"]) for p in (place, scope))
    ]
    places: dict[str, dict[Colour, int]] = {}
    totals = dict.fromkeys(Colour, 0)
    for point in points:
        totals[point.colour] += 1
        levels = point.place.split("/")
        for depth in range(1, len(levels) + 1):
            counts = places.setdefault("/".join(levels[:depth]), dict.fromkeys(Colour, 0))
            counts[point.colour] += 1
    return RiskMap(place=place, points=points, places=places, totals=totals)
