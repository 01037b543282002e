"""Read side of the fleet API: response models and the queries that fill them.

Each function takes a read-only connection (``Store.read``); none of them writes.

A device's id in URLs is ``<gateway>.<device>`` (e.g. ``gw-demo-1.gauge-1``): gateway ids are
DNS labels and never contain a dot, so the first dot splits the id unambiguously.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from pydantic import BaseModel

from controller.fleet import health_of
from controller.health import GatewayHealthState


class GatewayOut(BaseModel):
    id: str
    place: str | None
    state: GatewayHealthState
    state_reason: str | None
    state_since_ms: int | None
    session: int | None
    last_birth_ms: int | None
    last_heartbeat_ms: int | None
    heartbeat_interval_s: float | None
    agent_version: str | None


class TransitionOut(BaseModel):
    from_state: GatewayHealthState
    to_state: GatewayHealthState
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
    state: str | None  # as the gateway's last heartbeat reported it
    last_seq: int | None
    last_ts_ms: int | None
    last_metric: str | None
    last_value: float | None
    last_unit: str | None
    last_quality: str | None
    updated_ms: int


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
    "id, place, state, state_reason, state_since_ms, session, last_birth_ms,"
    " last_heartbeat_ms, heartbeat_interval_s, agent_version"
)


def list_gateways(conn: sqlite3.Connection) -> list[GatewayOut]:
    rows = conn.execute(f"SELECT {_GATEWAY_COLUMNS} FROM gateways ORDER BY id").fetchall()  # noqa: S608
    return [GatewayOut.model_validate(dict(row)) for row in rows]


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
    fields = dict(row)
    health = health_of(fields.pop("health_json"))
    return GatewayDetail(
        **fields,
        health=health,
        devices=[device_id(gateway, d["name"]) for d in devices],
        transitions=[TransitionOut.model_validate(dict(t)) for t in transitions],
    )


def gateway_state_counts(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {state.value: 0 for state in GatewayHealthState}
    for row in conn.execute("SELECT state, count(*) AS n FROM gateways GROUP BY state"):
        counts[row["state"]] = row["n"]
    return counts


def readings_stored(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM counters WHERE name = 'readings_stored'").fetchone()
    return int(row["value"]) if row else 0


def _device(row: sqlite3.Row) -> DeviceOut:
    fields = dict(row)
    return DeviceOut(id=device_id(fields["gateway"], fields["name"]), **fields)


_DEVICE_COLUMNS = (
    "gateway, name, state, last_seq, last_ts_ms, last_metric, last_value, last_unit,"
    " last_quality, updated_ms"
)


def list_devices(conn: sqlite3.Connection, gateway: str | None = None) -> list[DeviceOut]:
    if gateway is None:
        rows = conn.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY gateway, name"  # noqa: S608
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE gateway = ? ORDER BY name",  # noqa: S608
            (gateway,),
        ).fetchall()
    return [_device(row) for row in rows]


def device_readings(
    conn: sqlite3.Connection, gateway: str, name: str, *, limit: int, metric: str | None = None
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
    rows = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit]).fetchall()
    return DeviceReadings(
        device=device_id(gateway, name),
        gateway=gateway,
        name=name,
        readings=[ReadingOut.model_validate(dict(row)) for row in rows],
    )
