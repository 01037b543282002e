"""Versioned desired config per gateway, and drift against what the agent reports.

A desired config is a JSON object; its hash is the sha256 of its canonical form (sorted
keys, compact separators), the same recipe as the agent's ``config_hash``, so a pushed
config that the agent applied shows as in sync. Setting an identical config again makes no
new version. Pushing is a ``reload-config`` command that carries the config.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlite_utils import Database

from wire.commands import canonical_json


class Drift(StrEnum):
    IN_SYNC = "in_sync"
    DRIFT = "drift"  # the agent reports another config than the desired one
    NOT_REPORTED = "not_reported"  # no heartbeat with a config hash yet
    NO_DESIRED = "no_desired"  # no desired config set


class ConfigVersion(BaseModel):
    version: int
    hash: str
    created_ms: int
    actor: str
    config: dict[str, Any] | None = None


class ConfigState(BaseModel):
    gateway: str
    desired: ConfigVersion | None
    reported_hash: str | None
    drift: Drift


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def set_desired(
    db: Database, gateway: str, config: dict[str, Any], *, actor: str, now_ms: int
) -> tuple[ConfigVersion, bool]:
    """Store ``config`` as the next version unless it equals the latest; (version, changed)."""
    digest = config_hash(config)
    latest = db.execute(
        "SELECT version, hash FROM gateway_configs WHERE gateway = ? ORDER BY version DESC LIMIT 1",
        (gateway,),
    ).fetchone()
    if latest is not None and latest[1] == digest:
        found = get_version(db.conn, gateway, latest[0])
        assert found is not None
        return found, False
    version = (latest[0] if latest else 0) + 1
    db.execute(
        "INSERT INTO gateway_configs (gateway, version, hash, config_json, created_ms, actor)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (gateway, version, digest, canonical_json(config), now_ms, actor),
    )
    return ConfigVersion(
        version=version, hash=digest, created_ms=now_ms, actor=actor, config=config
    ), True


def get_version(
    conn: sqlite3.Connection, gateway: str, version: int | None = None
) -> ConfigVersion | None:
    sql = (
        "SELECT version, hash, created_ms, actor, config_json FROM gateway_configs"
        " WHERE gateway = ?"
    )
    params: list[Any] = [gateway]
    if version is not None:
        sql += " AND version = ?"
        params.append(version)
    row = conn.execute(sql + " ORDER BY version DESC LIMIT 1", params).fetchone()
    if row is None:
        return None
    return ConfigVersion(
        version=row[0], hash=row[1], created_ms=row[2], actor=row[3], config=json.loads(row[4])
    )


def list_versions(
    conn: sqlite3.Connection, gateway: str, *, limit: int, offset: int
) -> list[ConfigVersion]:
    rows = conn.execute(
        "SELECT version, hash, created_ms, actor FROM gateway_configs WHERE gateway = ?"
        " ORDER BY version DESC LIMIT ? OFFSET ?",
        (gateway, limit, offset),
    ).fetchall()
    return [ConfigVersion(version=r[0], hash=r[1], created_ms=r[2], actor=r[3]) for r in rows]


def config_state(conn: sqlite3.Connection, gateway: str) -> ConfigState:
    desired = get_version(conn, gateway)
    row = conn.execute(
        "SELECT reported_config_hash FROM gateways WHERE id = ?", (gateway,)
    ).fetchone()
    reported = row[0] if row else None
    if desired is None:
        drift = Drift.NO_DESIRED
    elif not reported:
        drift = Drift.NOT_REPORTED
    else:
        drift = Drift.IN_SYNC if reported == desired.hash else Drift.DRIFT
    return ConfigState(gateway=gateway, desired=desired, reported_hash=reported, drift=drift)
