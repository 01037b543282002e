"""Duty rosters, the notifications of an alert, and the notification channels.

Rosters are place-scoped like everything else: a token sees and changes only the rosters
at or below its place. Writes need an operator and are audited; rosters from the config's
``[[notify.rosters]]`` are changed there (409). A PUT replaces the whole roster, so a client
that edits one (the console) sends ``If-Match: "<revision>"`` of the roster it read, or
``If-None-Match: *`` to create one only if none exists: 412 when someone changed it since,
instead of one operator's edit silently undoing another's. Channels are named, never shown:
their URLs hold credentials and stay in the config.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Response
from pydantic import BaseModel

from controller.access import Principal
from controller.api.deps import (
    ApiBackend,
    BackendDep,
    Operator,
    PageDep,
    PlaceQuery,
    Viewer,
    audit_ok,
    check_place_in_scope,
    unprocessable,
)
from controller.config import PLACE_PATTERN
from controller.notify.config import (
    LAYERS_AT_DEPTH,
    Layer,
    Override,
    Person,
    RosterBody,
    WeeklyShift,
    contacts_problem,
    place_depth,
)
from controller.notify.planner import parse_roster
from controller.notify.rosters import on_duty_ids
from controller.risk import queries as alert_queries
from controller.store import notify as notify_store
from controller.store.notify import Precondition

rosters = APIRouter(prefix="/rosters", tags=["duty"])
notifications = APIRouter(tags=["duty"])

RosterPlace = Annotated[str, Path(max_length=255, description="the roster's place path")]
AlertId = Annotated[int, Path(ge=1, le=2**62)]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=512)]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=512)]
MAX_NOTIFICATIONS = 2000


class RosterOut(BaseModel):
    place: str
    layer: Layer
    name: str
    timezone: str
    source: str  # "api", or "config" ([[notify.rosters]]: change it there)
    people: list[Person]
    shifts: list[WeeklyShift]
    overrides: list[Override]
    on_duty_now: list[str]  # person ids
    revision: str  # for If-Match (also the ETag of GET/PUT /rosters/{place})
    created_ms: int
    updated_ms: int


class NotificationOut(BaseModel):
    id: int
    step: str
    place: str
    layer: str
    person: str
    person_name: str
    channel: str
    state: str  # queued, sent, failed, cancelled
    attempts: int
    enqueued_ms: int
    sent_ms: int | None
    last_error: str | None
    link_expires_ms: int
    link_action: str | None  # what the person did with the link


class ChannelOut(BaseModel):
    name: str
    kind: str
    queued: int
    sent: int
    failed: int
    cancelled: int
    oldest_queued_ms: int | None
    in_flight: int
    failing: bool
    consecutive_failures: int
    last_error: str | None


def _place(place: str) -> str:
    if not re.match(PLACE_PATTERN, place) or len(place) > 255:
        raise unprocessable("place", "must be a place path like 'cq/yuzhong/jiefangbei/grid-1'")
    return place


def _out(backend: ApiBackend, row: dict[str, Any]) -> RosterOut:
    roster = parse_roster(row)
    return RosterOut(
        place=roster.place,
        layer=roster.resolved_layer,
        name=roster.name,
        timezone=roster.timezone,
        source=row["source"],
        people=roster.people,
        shifts=roster.shifts,
        overrides=roster.overrides,
        on_duty_now=sorted(on_duty_ids(roster, backend.clock.wall_ms())),
        revision=notify_store.roster_revision(row),
        created_ms=row["created_ms"],
        updated_ms=row["updated_ms"],
    )


def _precondition(if_match: str | None, if_none_match: str | None) -> Precondition | None:
    """``If-Match: "rev"[, "rev"...]`` or ``*``; ``If-None-Match: *`` (create only)."""
    if if_match is not None and if_none_match is not None:
        raise _bad_header("If-Match", "send If-Match or If-None-Match, not both")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise _bad_header("If-None-Match", "only * (create if there is none) is taken")
        return Precondition(absent=True)
    if if_match is None:
        return None
    tags = frozenset(t.strip().removeprefix("W/").strip('"') for t in if_match.split(","))
    if not tags or "" in tags or len(tags) > 16:
        raise _bad_header("If-Match", 'one to 16 revisions, like "3f2a9c0d1e2b4a5c", or *')
    return Precondition(revisions=tags)


def _bad_header(name: str, message: str) -> HTTPException:
    loc = ["header", name]
    return HTTPException(
        status_code=422,
        detail=[{"loc": loc, "field": f"header.{name}", "type": "value_error",
                 "msg": f"header.{name}: {message}"}],
    )  # fmt: skip


def _changed(place: str) -> HTTPException:
    return HTTPException(
        status_code=412,
        detail=f"the roster of {place!r} was changed since you read it: read it again and"
        " make your change on what it is now",
    )


def _scoped(backend: ApiBackend, principal: Principal, place: str) -> dict[str, Any]:
    row = backend.store.read(lambda conn: notify_store.get_roster(conn, place))
    if row is None or not principal.sees(place):
        raise HTTPException(status_code=404, detail=f"no duty roster for place {place!r}")
    return row


@rosters.get("", response_model=list[RosterOut])
def list_rosters(
    backend: BackendDep, principal: Viewer, page: PageDep, under: PlaceQuery = None
) -> list[RosterOut]:
    """The rosters at or below the caller's place (and ``under``), by place."""
    rows = backend.store.read(
        lambda conn: notify_store.list_rosters(
            conn, scope=principal.place, under=under, limit=page.limit, offset=page.offset
        )
    )
    return [_out(backend, row) for row in rows]


@rosters.get("/{place:path}", response_model=RosterOut)
def get_roster(
    place: RosterPlace, backend: BackendDep, principal: Viewer, response: Response
) -> RosterOut:
    out = _out(backend, _scoped(backend, principal, _place(place)))
    response.headers["ETag"] = f'"{out.revision}"'
    return out


@rosters.put("/{place:path}", response_model=RosterOut)
def put_roster(  # noqa: PLR0917
    place: RosterPlace,
    body: RosterBody,
    backend: BackendDep,
    principal: Operator,
    response: Response,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> RosterOut:
    """Create or replace the roster of a place: its people and their contacts (channels by
    name), weekly shifts and one-off overrides. ``If-Match`` (the ``revision`` read) or
    ``If-None-Match: *`` make it conditional: 412 when the roster is not what was read."""
    place = _place(place)
    precondition = _precondition(if_match, if_none_match)
    check_place_in_scope(principal, place, "place")
    allowed = LAYERS_AT_DEPTH[place_depth(place)]
    if body.layer is not None and body.layer not in allowed:
        names = " or ".join(layer.value for layer in allowed)
        raise unprocessable("layer", f"a place {place_depth(place)} levels deep is a {names}")
    problem = contacts_problem(body, backend.config.notify.channel_kinds())
    if problem is not None:
        raise unprocessable("people", problem)
    layer = (body.layer or allowed[0]).value
    row = notify_store.RosterRow(place, layer, body.model_dump_json(exclude={"layer"}))
    now_ms = backend.clock.wall_ms()
    outcome = backend.store.call(
        lambda db: notify_store.put_roster(db.conn, row, now_ms, precondition)
    )
    if outcome == "config":
        raise HTTPException(
            status_code=409,
            detail=f"the roster of {place!r} comes from the config ([[notify.rosters]]):"
            " change it there",
        )
    if outcome == "exists":
        raise HTTPException(status_code=412, detail=f"there is already a duty roster for {place!r}")
    if outcome == "changed":
        raise _changed(place)
    backend.notify.planner.refresh()
    action = {"created": "roster.create", "updated": "roster.update"}[outcome]
    counts = {"people": len(body.people), "shifts": len(body.shifts),
              "overrides": len(body.overrides)}  # fmt: skip
    audit_ok(backend, principal, action, f"roster:{place}", place, counts)
    out = _out(backend, _scoped(backend, principal, place))
    response.headers["ETag"] = f'"{out.revision}"'
    return out


@rosters.delete("/{place:path}", status_code=204)
def delete_roster(
    place: RosterPlace, backend: BackendDep, principal: Operator, if_match: IfMatch = None
) -> None:
    place = _place(place)
    precondition = _precondition(if_match, None)
    _scoped(backend, principal, place)
    outcome = backend.store.call(
        lambda db: notify_store.delete_roster(db.conn, place, precondition)
    )
    if outcome == "config":
        raise HTTPException(
            status_code=409,
            detail=f"the roster of {place!r} comes from the config: remove it there",
        )
    if outcome == "changed":
        raise _changed(place)
    backend.notify.planner.refresh()
    audit_ok(backend, principal, "roster.delete", f"roster:{place}", place, {})


@notifications.get("/alerts/{alert_id}/notifications", response_model=list[NotificationOut])
def alert_notifications(
    alert_id: AlertId, backend: BackendDep, principal: Viewer
) -> list[NotificationOut]:
    """Who was told of the alert, by which channel, and what came of it."""
    found = backend.store.read(lambda conn: alert_queries.get_alert(conn, alert_id))
    if found is None or not principal.sees(found.place):
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    rows = backend.store.read(
        lambda conn: notify_store.notifications(conn, alert_id, MAX_NOTIFICATIONS)
    )
    return [
        NotificationOut(
            **{k: v for k, v in row.items() if k not in ("deadline_ms", "last_action")},
            link_expires_ms=row["deadline_ms"],
            link_action=row["last_action"],
        )
        for row in rows
    ]


@notifications.get("/notify/channels", response_model=list[ChannelOut])
def list_channels(backend: BackendDep, principal: Operator) -> list[ChannelOut]:
    """Each configured channel: what waits, what went, whether it is failing now."""
    counts = backend.store.read(notify_store.channel_counts)
    delivery = backend.notify.delivery
    out = []
    for channel in backend.config.notify.channels:
        c = counts.get(channel.name, {})
        state = delivery.channels.get(channel.name)
        out.append(
            ChannelOut(
                name=channel.name,
                kind=channel.kind.value,
                queued=c.get("queued", 0),
                sent=c.get("sent", 0),
                failed=c.get("failed", 0),
                cancelled=c.get("cancelled", 0),
                oldest_queued_ms=c.get("oldest_queued_ms"),
                in_flight=state.in_flight if state else 0,
                failing=bool(state and state.failures),
                consecutive_failures=state.failures if state else 0,
                last_error=state.last_error if state else None,
            )
        )
    return out
