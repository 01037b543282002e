"""The two lanes of a center's outbox: which rows a batch takes, and the body it POSTs.

*readings* (table ``outbox``, joined to ``readings``) and *priority* (table
``priority_outbox``: alerts and health summaries, one kind per POST). ``Lane`` is what
differs between them; ``controller.forwarding.outbox.LaneWorker`` runs either. Pure SQL and dict
building, no delivery.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_PENDING = """
SELECT o.id AS outbox_id, r.id AS reading_id, r.gateway, r.device, r.metric, r.value,
       r.unit, r.quality, r.seq, r.ts_ms
FROM outbox o JOIN readings r ON r.id = o.reading_id
WHERE o.center = ? ORDER BY o.id LIMIT ?
"""
_PENDING_PRIORITY = (
    "SELECT id AS outbox_id, kind, body FROM priority_outbox WHERE center = ? ORDER BY id LIMIT ?"
)
PRIORITY_BATCH_MAX = 100


@dataclass(frozen=True, slots=True)
class Lane:
    """What differs between the readings lane and the priority lane."""

    name: str  # "readings" or "priority"
    fetch: Callable[[sqlite3.Connection, str, int], list[sqlite3.Row]]
    body: Callable[[str, str, list[sqlite3.Row]], dict[str, Any]]
    table: str
    delivered_column: str


def _fetch_readings(conn: sqlite3.Connection, center: str, limit: int) -> list[sqlite3.Row]:
    return conn.execute(_PENDING, (center, limit)).fetchall()


def _fetch_priority(conn: sqlite3.Connection, center: str, limit: int) -> list[sqlite3.Row]:
    rows = conn.execute(_PENDING_PRIORITY, (center, min(limit, PRIORITY_BATCH_MAX))).fetchall()
    # One kind per POST: take the run of rows of the first row's kind.
    return list(itertools.takewhile(lambda r: r["kind"] == rows[0]["kind"], rows))


def _readings_body(center: str, batch_id: str, rows: list[sqlite3.Row]) -> dict[str, Any]:
    return {
        "kind": "readings",
        "center": center,
        "batch_id": batch_id,
        "readings": [_reading(row) for row in rows],
    }


def _priority_body(center: str, batch_id: str, rows: list[sqlite3.Row]) -> dict[str, Any]:
    kind = rows[0]["kind"]
    return {
        "kind": kind,
        "center": center,
        "batch_id": batch_id,
        kind: [json.loads(row["body"]) for row in rows],
    }


READINGS_LANE = Lane("readings", _fetch_readings, _readings_body, "outbox", "delivered")
PRIORITY_LANE = Lane(
    "priority", _fetch_priority, _priority_body, "priority_outbox", "priority_delivered"
)


def _reading(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "gateway": row["gateway"],
        "device": row["device"],
        "metric": row["metric"],
        "value": row["value"],
        "unit": row["unit"],
        "quality": row["quality"],
        "seq": row["seq"],
        "ts_ms": row["ts_ms"],
    }
