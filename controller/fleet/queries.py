"""Read side of the fleet API: response models and the queries that fill them.

Each function takes a read-only connection (``Store.read``); none of them writes.

A device's id in URLs is ``<gateway>.<device>`` (e.g. ``gw-demo-1.gauge-1``): gateway ids are
DNS labels and never contain a dot, so the first dot splits the id unambiguously.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from controller.fleet.health import GatewayHealthState
from controller.fleet.messages import health_of


class GatewayOut(BaseModel):
    id: str
    place: str | None
    label: str | None
    source: str  # "config", "api" (registered) or "seen" (known from its traffic only)
    state: GatewayHealthState
    state_reason: str | None
    state_since_ms: int | None
    degraded_reasons: list[str]
    session: int | None
    last_birth_ms: int | None
    last_heartbeat_ms: int | None
    heartbeat_interval_s: float | None
    clock_skew_ms: int | None  # gateway clock minus controller clock at the last heartbeat
    agent_version: str | None
    reported_config_hash: str | None


class TransitionOut(BaseModel):
    from_state: str
    to_state: str
    reason: str
    at_ms: int


class GatewayDetail(GatewayOut):
    health: dict[str, Any] | None  # the latest heartbeat as the agent sent it
    devices: list[str]  # device ids
    transitions: list[TransitionOut]  # newest first, at most 50


class DeviceOut(BaseModel):
    id: str
    gateway: str
    name: str
    family: str | None
    health_state: str  # ok, failing, stale, unreachable, maintenance (or unknown)
    health_reason: str | None
    health_since_ms: int | None
    maintenance: bool
    last_good_ms: int | None
    state: str | None  # as the gateway's last heartbeat reported it
    last_seq: int | None
    last_ts_ms: int | None
    last_metric: str | None
    last_value: float | None
    last_unit: str | None
    last_quality: str | None
    updated_ms: int
    # What the device reports about itself (reboot count, supply voltage...), from the
    # gateway's last heartbeat; empty for a device without health registers.
    health_registers: dict[str, float]


class ReadingOut(BaseModel):
    seq: int
    ts_ms: int
    metric: str
    value: float | None
    unit: str
    quality: str
    lane: str
    received_ms: int


class DeviceReadings(BaseModel):
    device: str
    gateway: str
    name: str
    readings: list[ReadingOut]  # newest (highest seq) first


def device_id(gateway: str, name: str) -> str:
    return f"{gateway}.{name}"


def split_device_id(device: str) -> tuple[str, str] | None:
    gateway, dot, name = device.partition(".")
    return (gateway, name) if dot and gateway and name else None


_GATEWAY_COLUMNS = (
    "id, place, label, source, state, state_reason, state_since_ms, degraded_reasons, session,"
    " last_birth_ms, last_heartbeat_ms, heartbeat_interval_s, clock_skew_ms, agent_version,"
    " reported_config_hash"
)


def _gateway(row: sqlite3.Row) -> dict[str, Any]:
    fields = dict(row)
    reasons = fields.pop("degraded_reasons")
    fields["degraded_reasons"] = (
        json.loads(reasons) if reasons and fields["state"] == "degraded" else []
    )
    return fields


# GatewayOut as SQLite's json_object: the same fields and values as _gateway gives.
_GATEWAY_JSON = "json_object({})".format(
    ", ".join(
        f"'{name}', "
        + (
            "CASE WHEN state = 'degraded' AND degraded_reasons IS NOT NULL"
            " THEN json(degraded_reasons) ELSE json_array() END"
            if name == "degraded_reasons"
            else name
        )
        for name in GatewayOut.model_fields
    )
)


def subtree_clause(column: str, place: str) -> tuple[str, list[Any]]:
    """SQL for "``column`` is ``place`` or below it" (no LIKE: labels may hold ``_``)."""
    prefix = place + "/"
    return f"({column} = ? OR substr({column}, 1, ?) = ?)", [place, len(prefix), prefix]


class Where:
    """The AND-ed conditions of a list query and their parameters, from optional filters:
    a filter given as None adds nothing. ``sql`` is ``1`` when there is none."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def equals(self, column: str, value: object | None) -> Where:
        if value is not None:
            self.clauses.append(f"{column} = ?")
            self.params.append(value)
        return self

    def within(self, column: str, *places: str | None) -> Where:
        """``column`` at or below every place given (``subtree_clause``)."""
        for place in places:
            if place is not None:
                clause, more = subtree_clause(column, place)
                self.clauses.append(clause)
                self.params += more
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses) or "1"


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = 100
    offset: int = 0


def list_gateways_json(
    conn: sqlite3.Connection,
    *,
    scope: str | None = None,
    place: str | None = None,
    state: str | None = None,
    version: str | None = None,
    page: Page = Page(),
) -> str:
    """A page of gateways as the JSON array of GatewayOut the API answers, built by SQLite
    in one step.

    The fleet list is the request operators' consoles repeat most. Building it in SQLite
    takes no Python per gateway, and a single ``sqlite3_step`` gives the GIL back once
    instead of once per row: under full ingest every re-acquisition of the GIL waits behind
    the ingest threads, and that wait, not the query, was the request's tail latency.
    """
    where = (
        Where()
        .within("place", scope, place)
        .equals("state", state)
        .equals("agent_version", version)
    )
    # The aggregate keeps the subquery's order (SQLite runs it as a co-routine, in order).
    row = conn.execute(
        f"SELECT coalesce(json_group_array({_GATEWAY_JSON}), '[]') FROM ("  # noqa: S608
        f" SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE {where.sql}"
        " ORDER BY id LIMIT ? OFFSET ?)",
        [*where.params, page.limit, page.offset],
    ).fetchone()
    return str(row[0])


def gateway_place(conn: sqlite3.Connection, gateway: str) -> tuple[bool, str | None]:
    """(known, place) of a gateway."""
    row = conn.execute("SELECT place FROM gateways WHERE id = ?", (gateway,)).fetchone()
    return (False, None) if row is None else (True, row[0])


def gateway_transitions(conn: sqlite3.Connection, gateway: str, page: Page) -> list[TransitionOut]:
    rows = conn.execute(
        "SELECT from_state, to_state, reason, at_ms FROM gateway_transitions"
        " WHERE gateway = ? ORDER BY id DESC LIMIT ? OFFSET ?",
        (gateway, page.limit, page.offset),
    ).fetchall()
    return [TransitionOut.model_validate(dict(t)) for t in rows]


def device_transitions(
    conn: sqlite3.Connection, gateway: str, device: str, page: Page
) -> list[TransitionOut]:
    rows = conn.execute(
        "SELECT from_state, to_state, reason, at_ms FROM device_transitions"
        " WHERE gateway = ? AND device = ? ORDER BY id DESC LIMIT ? OFFSET ?",
        (gateway, device, page.limit, page.offset),
    ).fetchall()
    return [TransitionOut.model_validate(dict(t)) for t in rows]


def get_gateway(conn: sqlite3.Connection, gateway: str) -> GatewayDetail | None:
    row = conn.execute(
        f"SELECT {_GATEWAY_COLUMNS}, health_json FROM gateways WHERE id = ?",  # noqa: S608
        (gateway,),
    ).fetchone()
    if row is None:
        return None
    transitions = conn.execute(
        "SELECT from_state, to_state, reason, at_ms FROM gateway_transitions"
        " WHERE gateway = ? ORDER BY id DESC LIMIT 50",
        (gateway,),
    ).fetchall()
    devices = conn.execute(
        "SELECT name FROM devices WHERE gateway = ? ORDER BY name", (gateway,)
    ).fetchall()
    fields = _gateway(row)
    health = health_of(fields.pop("health_json"))
    return GatewayDetail(
        **fields,
        health=health,
        devices=[device_id(gateway, d["name"]) for d in devices],
        transitions=[TransitionOut.model_validate(dict(t)) for t in transitions],
    )


def gateway_state_counts(conn: sqlite3.Connection, scope: str | None = None) -> dict[str, int]:
    """Gateways by state, at or below ``scope`` (None: everywhere)."""
    counts = {state.value: 0 for state in GatewayHealthState}
    where = Where().within("place", scope)
    query = f"SELECT state, count(*) AS n FROM gateways WHERE {where.sql} GROUP BY state"  # noqa: S608
    for row in conn.execute(query, where.params):
        counts[row["state"]] = row["n"]
    return counts


def readings_stored(conn: sqlite3.Connection, scope: str | None = None) -> int:
    """Readings stored, of gateways at or below ``scope`` (None: all, from a counter)."""
    if scope is None:
        return counter(conn, "readings_stored")
    where, params = subtree_clause("place", scope)
    row = conn.execute(
        f"SELECT count(*) FROM readings WHERE gateway IN (SELECT id FROM gateways WHERE {where})",  # noqa: S608 (a fixed clause)
        params,
    ).fetchone()
    return int(row[0])


def counter(conn: sqlite3.Connection, name: str) -> int:
    """A controller-wide counter of the store (``readings_stored``, ``readings_duplicate``)."""
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def _device(row: sqlite3.Row) -> DeviceOut:
    fields = dict(row)
    fields.pop("place", None)
    fields["maintenance"] = bool(fields["maintenance"])
    registers = fields.pop("health_registers")
    fields["health_registers"] = json.loads(registers) if registers else {}
    return DeviceOut(id=device_id(fields["gateway"], fields["name"]), **fields)


_DEVICE_COLUMNS = (
    "d.gateway, d.name, d.family, d.health_state, d.health_reason, d.health_since_ms,"
    " d.maintenance, d.last_good_ms, d.state, d.last_seq, d.last_ts_ms, d.last_metric,"
    " d.last_value, d.last_unit, d.last_quality, d.updated_ms, d.health_registers, g.place"
)


def list_devices(
    conn: sqlite3.Connection,
    gateway: str | None = None,
    *,
    scope: str | None = None,
    place: str | None = None,
    state: str | None = None,
    family: str | None = None,
    page: Page = Page(limit=1000),
) -> list[DeviceOut]:
    where = (
        Where()
        .equals("d.gateway", gateway)
        .within("g.place", scope, place)
        .equals("d.health_state", state)
        .equals("d.family", family)
    )
    rows = conn.execute(
        f"SELECT {_DEVICE_COLUMNS} FROM devices d LEFT JOIN gateways g ON g.id = d.gateway"  # noqa: S608
        f" WHERE {where.sql} ORDER BY d.gateway, d.name LIMIT ? OFFSET ?",
        [*where.params, page.limit, page.offset],
    ).fetchall()
    return [_device(row) for row in rows]


def get_device(conn: sqlite3.Connection, gateway: str, name: str) -> DeviceOut | None:
    row = conn.execute(
        f"SELECT {_DEVICE_COLUMNS} FROM devices d LEFT JOIN gateways g ON g.id = d.gateway"  # noqa: S608
        " WHERE d.gateway = ? AND d.name = ?",
        (gateway, name),
    ).fetchone()
    return _device(row) if row else None


def device_readings(
    conn: sqlite3.Connection,
    gateway: str,
    name: str,
    *,
    limit: int,
    metric: str | None = None,
    since_ms: int | None = None,
) -> DeviceReadings | None:
    known = conn.execute(
        "SELECT 1 FROM devices WHERE gateway = ? AND name = ?", (gateway, name)
    ).fetchone()
    if known is None:
        return None
    sql = (
        "SELECT seq, ts_ms, metric, value, unit, quality, lane, received_ms FROM readings"
        " WHERE gateway = ? AND device = ?"
    )
    params: list[Any] = [gateway, name]
    if metric is not None:
        sql += " AND metric = ?"
        params.append(metric)
    if since_ms is not None:
        sql += " AND ts_ms >= ?"
        params.append(since_ms)
    rows = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit]).fetchall()
    return DeviceReadings(
        device=device_id(gateway, name),
        gateway=gateway,
        name=name,
        readings=[ReadingOut.model_validate(dict(row)) for row in rows],
    )
