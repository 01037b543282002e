"""``GET /api/v1/alerts/stream``: alerts as server-sent events, for the console and anyone.

Every step of every alert (raised, colour raised or lowered, escalated, acknowledged, ...)
is a row of ``alert_trail``; the stream follows that table's ids and sends, for each step,
the alert as it now is (``event: alert``, ``id:`` the trail id, ``data:`` an AlertDetail),
only for alerts the caller may see. It opens with ``event: ready`` (``{"cursor": id}``),
resumes after ``?after=ID`` or ``Last-Event-ID``, and sends a comment every
``KEEPALIVE_S`` so proxies keep it open. It polls the store every ``POLL_S``: a read of one
indexed table, cheap next to the second-level push it serves.

Authentication: ``Authorization: Bearer`` as everywhere, or ``?ticket=`` from
``POST /api/v1/alerts/stream-ticket`` for a browser's EventSource (which cannot send headers).
The token itself (by its digest, not its name) is checked again every ``RECHECK_S``: a
revoked token's stream ends, even when a new token took its name.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, cast

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from controller.access import Principal, token_still_grants
from controller.api.console import tickets_of
from controller.api.deps import ApiBackend, BackendDep, authenticate, bearer
from controller.config import AuthMode
from controller.risk import queries as alert_queries
from controller.risk.queries import AlertDetail

POLL_S = 0.25
KEEPALIVE_S = 15.0
RECHECK_S = 10.0
BATCH = 500

alert_stream = APIRouter(prefix="/alerts", tags=["alerts"])


def trail_cursor(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM alert_trail").fetchone()[0])


def changes_after(
    conn: sqlite3.Connection, cursor: int, principal: Principal
) -> tuple[int, list[tuple[int, AlertDetail]]]:
    """(new cursor, [(trail id, alert as it now is)]) for the steps after ``cursor`` that
    the principal may see; one entry per alert, at its latest step."""
    rows = conn.execute(
        "SELECT id, alert_id FROM alert_trail WHERE id > ? ORDER BY id LIMIT ?", (cursor, BATCH)
    ).fetchall()
    latest: dict[int, int] = {}
    for trail_id, alert_id in rows:
        latest[int(alert_id)] = int(trail_id)
    out: list[tuple[int, AlertDetail]] = []
    for alert_id, trail_id in sorted(latest.items(), key=lambda item: item[1]):
        alert = alert_queries.get_alert(conn, alert_id)
        if alert is not None and principal.sees(alert.place):
            out.append((trail_id, alert))
    return (int(rows[-1][0]) if rows else cursor), out


def event(name: str, data: str, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {data}\n\n"


async def stream_principal(
    request: Request,
    backend: BackendDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ticket: Annotated[
        str | None, Query(max_length=2048, description="from POST /alerts/stream-ticket")
    ] = None,
) -> Principal:
    if ticket is None or backend.config.api.auth is AuthMode.DEMO:
        return await authenticate(backend, credentials)
    tickets = tickets_of(request)
    claims = tickets.redeem(ticket, now_ms=backend.clock.wall_ms())
    principal = None
    if claims is not None:
        redeemed = claims
        principal = backend.store.read(lambda conn: tickets.holder(conn, redeemed))
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail="ticket: unknown, expired or used; ask POST /api/v1/alerts/stream-ticket",
        )
    return principal


def stopping_of(request: Request) -> threading.Event:
    return cast(threading.Event, request.app.state.stopping)


@alert_stream.get("/stream", response_class=StreamingResponse)
async def stream_alerts(
    request: Request,
    backend: BackendDep,
    principal: Annotated[Principal, Depends(stream_principal)],
    after: Annotated[int | None, Query(ge=0, le=2**62, description="resume after")] = None,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    """Server-sent events: ``ready`` then one ``alert`` per step of an alert you may see."""
    if after is None and last_event_id is not None and last_event_id.isdigit():
        after = int(last_event_id)
    start = after if after is not None else backend.store.read(trail_cursor)
    return StreamingResponse(
        _events(request, backend, principal, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, backend: ApiBackend, principal: Principal, cursor: int
) -> AsyncIterator[str]:
    stopping = stopping_of(request)
    demo = backend.config.api.auth is AuthMode.DEMO
    yield "retry: 1000\n" + event("ready", json.dumps({"cursor": cursor}))
    last_sent = last_check = time.monotonic()
    while not stopping.is_set() and not await request.is_disconnected():
        read = partial(changes_after, cursor=cursor, principal=principal)
        cursor, changes = await anyio.to_thread.run_sync(backend.store.read, read)
        now = time.monotonic()
        for trail_id, alert in changes:
            yield event("alert", alert.model_dump_json(), trail_id)
            last_sent = now
        if not demo and now - last_check >= RECHECK_S:
            last_check = now
            if not backend.store.read(lambda conn: token_still_grants(conn, principal)):
                yield event("end", json.dumps({"reason": "token revoked"}))
                return
        if now - last_sent >= KEEPALIVE_S:
            yield ": keepalive\n\n"
            last_sent = now
        await anyio.sleep(POLL_S)
