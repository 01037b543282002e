"""What every API router shares: the backend, the caller, role checks, scoped lookups.

Dependencies are ``async``: FastAPI runs a sync dependency on its thread pool, and every hop
there waits for the GIL behind the ingest threads (tens of ms each under load). They do no
blocking I/O beyond a token lookup on SQLite (sub-millisecond).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, cast

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from controller.access import (
    DEMO_PRINCIPAL,
    AuditEntry,
    Principal,
    Role,
    principal_for,
    record_audit,
)
from controller.config import PLACE_PATTERN, AuthMode, ControllerConfig
from controller.fleet import queries
from controller.fleet.commands import Commands
from controller.fleet.ingest import Rejections
from controller.fleet.messages import Fleet
from controller.fleet.provisioning import Provisioner
from controller.forwarding.outbox import Outboxes
from controller.map.state import MapState
from controller.metrics import Metrics
from controller.notify.service import Notify
from controller.risk.alerts import AlertEngine
from controller.store.sqlite import Store
from wire.clock import Clock

GATEWAY_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
MAX_PAGE = 1000


class ApiBackend(Protocol):
    """What the API needs from the running controller."""

    @property
    def config(self) -> ControllerConfig: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def store(self) -> Store: ...

    @property
    def fleet(self) -> Fleet: ...

    @property
    def outboxes(self) -> Outboxes: ...

    @property
    def rejections(self) -> Rejections: ...

    @property
    def commands(self) -> Commands: ...

    @property
    def provisioner(self) -> Provisioner: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def alerts(self) -> AlertEngine: ...

    @property
    def notify(self) -> Notify: ...

    @property
    def map(self) -> MapState: ...

    @property
    def mqtt_connected(self) -> bool: ...


async def _backend(request: Request) -> ApiBackend:
    return cast(ApiBackend, request.app.state.backend)


BackendDep = Annotated[ApiBackend, Depends(_backend)]

bearer = HTTPBearer(auto_error=False, description="an API token: edgewatch controller token create")


async def authenticate(
    backend: BackendDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if backend.config.api.auth is AuthMode.DEMO:
        return DEMO_PRINCIPAL
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status_code=401,
            detail="Authorization: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = credentials.credentials
    found = backend.store.read(lambda conn: principal_for(conn, token))
    if found is None:
        raise HTTPException(
            status_code=401,
            detail="Authorization: unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.may(role):
            raise HTTPException(
                status_code=403,
                detail=f"token {principal.name!r} has role {principal.role.value};"
                f" this needs {role.value} or above",
            )
        return principal

    return check


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


class InputModel(BaseModel):
    """A request body: unknown fields are refused (422 naming them), never ignored."""

    model_config = ConfigDict(extra="forbid")


Place = Annotated[str, Field(pattern=PLACE_PATTERN, max_length=255)]
Label = Annotated[str, Field(min_length=1, max_length=128)]
GatewayId = Annotated[
    str, Path(pattern=GATEWAY_ID_PATTERN, max_length=63, description="a DNS-label gateway id")
]
PlaceQuery = Annotated[
    str | None,
    Query(pattern=PLACE_PATTERN, max_length=255, description="only at or below this place"),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]


async def page(limit: Limit = 100, offset: Offset = 0) -> queries.Page:
    return queries.Page(limit=limit, offset=offset)


PageDep = Annotated[queries.Page, Depends(page)]


def not_found(what: str, name: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} {name!r} is not known")


def scoped_gateway(backend: ApiBackend, principal: Principal, gateway_id: str) -> str | None:
    """The gateway's place, or 404 if it is unknown or outside the caller's place."""
    known, place = backend.store.read(lambda conn: queries.gateway_place(conn, gateway_id))
    if not known or not principal.sees(place):
        raise not_found("gateway", gateway_id)
    return place


def check_place_in_scope(principal: Principal, place: str | None, field: str) -> None:
    if not principal.sees(place):
        raise HTTPException(
            status_code=403,
            detail=f"{field}: {place!r} is outside the place of token {principal.name!r}"
            f" ({principal.place})",
        )


def unprocessable(field: str, message: str) -> HTTPException:
    """A 422 shaped like the request-validation ones (``controller.api.app``): it names
    the field."""
    loc = ["body", field]
    dotted = ".".join(loc)
    return HTTPException(
        status_code=422,
        detail=[
            {"loc": loc, "field": dotted, "type": "value_error", "msg": f"{dotted}: {message}"}
        ],
    )


def audit_ok(  # noqa: PLR0917
    backend: ApiBackend,
    principal: Principal,
    action: str,
    target: str,
    place: str | None,
    detail: dict[str, Any],
) -> None:
    """Record a write that went through in the audit log, as the caller."""
    now_ms = backend.clock.wall_ms()
    backend.store.call(
        lambda db: record_audit(
            db, AuditEntry(principal, action, target, place, detail, "ok"), now_ms=now_ms
        )
    )
