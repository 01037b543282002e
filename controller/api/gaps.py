"""``GET /api/v1/gateways/{id}/gaps``: the seq gaps detected for one gateway (see gaps.py)."""

from __future__ import annotations

import json
import sqlite3
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from controller.api.deps import BackendDep, GatewayId, Viewer, scoped_gateway


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


gaps = APIRouter(prefix="/gateways", tags=["gateways"])


def gaps_of(conn: sqlite3.Connection, gateway: str, state: str | None) -> list[GapOut]:
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


GapState = Annotated[
    str | None,
    Query(
        pattern="^(open|requested|filled|unfillable)$",
        description="only gaps in this state: open, requested, filled or unfillable",
    ),
]


@gaps.get("/{gateway_id}/gaps", response_model=list[GapOut])
def list_gaps(
    gateway_id: GatewayId, backend: BackendDep, principal: Viewer, state: GapState = None
) -> list[GapOut]:
    """The seq gaps the controller detected for this gateway, and what became of them."""
    scoped_gateway(backend, principal, gateway_id)
    return backend.store.read(lambda conn: gaps_of(conn, gateway_id, state))
