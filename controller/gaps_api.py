"""``GET /api/v1/gateways/{id}/gaps``: the seq gaps detected for one gateway (see gaps.py)."""

from __future__ import annotations

import json
import sqlite3
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from controller.api import BackendDep


class GapOut(BaseModel):
    id: int
    from_seq: int
    to_seq: int
    missing: int  # seqs of the gap still missing
    ranges: list[list[int]]  # what is still missing, as [from, to] pairs
    state: str  # open, requested, filled or unfillable
    attempts: int  # replays asked for
    detected_ms: int
    updated_ms: int
    detail: str | None


router = APIRouter(prefix="/gateways", tags=["gateways"])


def gaps_of(conn: sqlite3.Connection, gateway: str, state: str | None) -> list[GapOut] | None:
    if conn.execute("SELECT 1 FROM gateways WHERE id = ?", (gateway,)).fetchone() is None:
        return None
    query = "SELECT * FROM gaps WHERE gateway = ?"
    params: tuple[str, ...] = (gateway,)
    if state is not None:
        query += " AND state = ?"
        params += (state,)
    try:
        rows = conn.execute(query + " ORDER BY id", params).fetchall()
    except sqlite3.OperationalError:  # no gaps table yet
        return []
    return [
        GapOut.model_validate({**dict(row), "ranges": json.loads(row["ranges"])}) for row in rows
    ]


@router.get("/{gateway_id}/gaps", response_model=list[GapOut])
def list_gaps(
    gateway_id: str,
    backend: BackendDep,
    state: Annotated[str | None, Query(description="only gaps in this state")] = None,
) -> list[GapOut]:
    found = backend.store.read(lambda conn: gaps_of(conn, gateway_id, state))
    if found is None:
        raise HTTPException(status_code=404, detail=f"gateway {gateway_id!r} is not known")
    return found
