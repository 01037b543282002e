"""The map's statements: where points and gateways are, and the places' outlines.

Functions over a read-only connection (``Store.read``) or the writer's ``Database``
(``Store.call``), as the rest of the store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from sqlite_utils import Database

LEVELS = ("city", "district", "street", "grid")


@dataclass(frozen=True, slots=True)
class LocatedRow:
    id: str
    place: str | None
    state: str  # a risk point's colour, a gateway's state
    lon: float | None
    lat: float | None


def risk_point_locations(conn: sqlite3.Connection) -> list[LocatedRow]:
    """Every risk point, placed or not (an unplaced one still colours its place)."""
    return [
        LocatedRow(*row)
        for row in conn.execute("SELECT id, place, colour, lon, lat FROM risk_points")
    ]


def risk_point_location(conn: sqlite3.Connection, point_id: str) -> LocatedRow | None:
    row = conn.execute(
        "SELECT id, place, colour, lon, lat FROM risk_points WHERE id = ?", (point_id,)
    ).fetchone()
    return LocatedRow(*row) if row is not None else None


def gateway_locations(conn: sqlite3.Connection) -> list[LocatedRow]:
    return [
        LocatedRow(*row)
        for row in conn.execute(
            "SELECT id, place, state, lon, lat FROM gateways WHERE lon IS NOT NULL"
        )
    ]


def set_gateway_locations(db: Database, locations: dict[str, tuple[float, float]]) -> None:
    """The configured gateways' coordinates (a gateway not yet seen gets its row)."""
    db.conn.executemany(
        "INSERT INTO gateways (id, lon, lat) VALUES (?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET lon = excluded.lon, lat = excluded.lat",
        [(gateway, lon, lat) for gateway, (lon, lat) in locations.items()],
    )


@dataclass(frozen=True, slots=True)
class StoredBoundary:
    place: str
    name: str
    geometry: dict[str, object]  # GeoJSON MultiPolygon, WGS84


def boundaries(conn: sqlite3.Connection) -> list[StoredBoundary]:
    return [
        StoredBoundary(place, name, json.loads(geometry))
        for place, name, geometry in conn.execute(
            "SELECT place, name, geometry FROM place_boundaries ORDER BY place"
        )
    ]


@dataclass(frozen=True, slots=True)
class BoundaryRow:
    place: str
    name: str
    geometry_json: str
    vertices: int


def save_boundaries(db: Database, rows: Sequence[BoundaryRow], now_ms: int) -> tuple[int, int]:
    """Store the outlines (a place loaded again is replaced), and register each place the
    registry does not know yet under the outline's name. (created, replaced)."""
    known = {place for (place,) in db.conn.execute("SELECT place FROM place_boundaries")}
    db.conn.executemany(
        "INSERT INTO place_boundaries (place, name, geometry, vertices, loaded_ms)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (place) DO UPDATE SET name = excluded.name,"
        " geometry = excluded.geometry, vertices = excluded.vertices,"
        " loaded_ms = excluded.loaded_ms",
        [(r.place, r.name, r.geometry_json, r.vertices, now_ms) for r in rows],
    )
    db.conn.executemany(
        "INSERT OR IGNORE INTO places (path, name, level, created_ms) VALUES (?, ?, ?, ?)",
        [(r.place, r.name, LEVELS[r.place.count("/")], now_ms) for r in rows],
    )
    replaced = sum(r.place in known for r in rows)
    return len(rows) - replaced, replaced


@dataclass(frozen=True, slots=True)
class ImportedPoint:
    id: str
    name: str
    place: str
    category: str
    lon: float
    lat: float
    devices_json: str | None  # None: keep the point's devices and rules
    rules_json: str | None


def point_sources(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """id -> (source, place) of those of ``ids`` that exist."""
    found: dict[str, tuple[str, str]] = {}
    chunk = 500
    for start in range(0, len(ids), chunk):
        part = list(ids[start : start + chunk])
        marks = ", ".join("?" * len(part))
        for pid, source, place in conn.execute(
            f"SELECT id, source, place FROM risk_points WHERE id IN ({marks})",  # noqa: S608
            part,
        ):
            found[pid] = (source, place)
    return found


def import_points(db: Database, points: Sequence[ImportedPoint], now_ms: int) -> None:
    """Create or update every point, in the caller's one transaction. An update keeps the
    point's colour and history; its devices and rules change only when the file gave
    devices; a point the config declares is never touched (the caller refuses those)."""
    db.conn.executemany(
        "INSERT INTO risk_points (id, name, place, category, devices_json, rules_json,"
        " stale_after_s, source, created_ms, updated_ms, lon, lat)"
        " VALUES (:id, :name, :place, :category, coalesce(:devices, '[]'),"
        " coalesce(:rules, '[]'), 300, 'api', :now, :now, :lon, :lat)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, place = excluded.place,"
        " category = excluded.category, lon = excluded.lon, lat = excluded.lat,"
        " devices_json = coalesce(:devices, risk_points.devices_json),"
        " rules_json = coalesce(:rules, risk_points.rules_json), updated_ms = :now"
        " WHERE risk_points.source = 'api'",
        [
            {"id": p.id, "name": p.name, "place": p.place, "category": p.category,
             "devices": p.devices_json, "rules": p.rules_json, "now": now_ms, "lon": p.lon,
             "lat": p.lat}
            for p in points
        ],
    )  # fmt: skip


def set_colours(db: Database, colours: dict[str, str], now_ms: int) -> None:
    """Fixtures only (the demo's and bench.map's synthetic points, which no rule judges):
    write colours directly. The risk engine owns the colour of every judged point."""
    db.conn.executemany(
        "UPDATE risk_points SET colour = ?, colour_since_ms = ? WHERE id = ?",
        [(colour, now_ms, pid) for pid, colour in colours.items()],
    )
