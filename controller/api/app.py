"""The fleet API (FastAPI): one router per resource under ``/api/v1``; OpenAPI at ``/docs``.

Every endpoint under ``/api/v1`` needs ``Authorization: Bearer <token>`` (``[api] auth =
"tokens"``) unless the controller runs in demo mode. Tokens carry a role (viewer, operator,
admin) and a place: a scoped token sees only gateways, risk points and alerts at or below its
place; others answer 404. Probes (``/healthz``, ``/readyz``) and ``/metrics`` are served at
the root, outside ``/api/v1``, and need no token (``tests/controller/test_authorization.py``
walks every ``/api/v1`` route of the OpenAPI document without a token).

| endpoint | what |
| --- | --- |
| ``GET/POST /api/v1/gateways``, ``GET/PATCH /api/v1/gateways/{id}`` | registry, filters, pages |
| ``GET /api/v1/gateways/{id}/history`` | every health transition with time and reason |
| ``POST/DELETE /api/v1/gateways/{id}/credentials`` | issue (once) / revoke broker access |
| ``POST/GET /api/v1/gateways/{id}/commands[/{cid}]`` | commands and their lifecycle |
| ``GET/PUT /api/v1/gateways/{id}/config``, ``.../versions``, ``.../push`` | config |
| ``GET/POST /api/v1/devices``, ``GET/PATCH /api/v1/devices/{id}[/history, /readings]`` | devices |
| ``GET/POST /api/v1/places``, ``GET/POST/PATCH /api/v1/risk-points`` | registry |
| ``GET /api/v1/risk-map[?place=P]`` | colour per risk point, counts per place |
| ``GET /api/v1/map/config``, ``/map/features``, ``GET/POST /api/v1/map/boundaries`` | the map |
| ``POST /api/v1/risk-points/import`` | risk points in bulk from CSV or GeoJSON (operator) |
| ``GET /api/v1/alerts[?place=&colour=&state=&open=]``, ``GET /api/v1/alerts/{id}`` | alerts |
| ``POST /api/v1/alerts/{id}/transitions`` | one step along the alert chain (operator) |
| ``GET/PUT/DELETE /api/v1/rosters[/{place}]`` | duty rosters: people, shifts, overrides |
| ``GET /api/v1/alerts/{id}/notifications`` | who was told of an alert, by which channel |
| ``GET /api/v1/notify/channels`` | each notification channel's queue and health |
| ``GET/POST /m/a/{token}`` | a duty person's acknowledgement page (the signed link, no token) |
| ``GET /api/v1/risk-rules?gateway=ID`` | ``wire.risk.RuleSet``: the rules an agent evaluates |
| ``GET /api/v1/audit`` | who did what, when, with what outcome |
| ``GET /api/v1/centers``, ``GET /api/v1/summary`` | forwarding per center and lane, an overview |
| ``GET /api/v1/whoami`` | the calling token's name, role and place |
| ``POST /api/v1/alerts/stream-ticket`` | a single-use ticket for the alert stream |
| ``GET /api/v1/alerts/stream`` | alerts as server-sent events (Bearer or ``?ticket=``) |
| ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` | probes and Prometheus |
| ``GET /console/`` | the web console (static files; ``/`` redirects there) |
| ``GET /docs`` | Swagger UI over ``/openapi.json``, its files served from the package |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from controller.api.ack import ack
from controller.api.console import console, mount_console, stream_tickets
from controller.api.deps import ApiBackend
from controller.api.docs import mount_docs
from controller.api.fleet import devices, gateways
from controller.api.gaps import gaps
from controller.api.map import maps
from controller.api.notify import notifications, rosters
from controller.api.ops import audit, commands
from controller.api.registry import registry
from controller.api.risk import alerts, risk, risk_rules
from controller.api.risk_points import points
from controller.api.stream import alert_stream
from controller.api.system import centers, probes, summary
from controller.config import PATTERN_NAMES
from wire.validation import describe, ordered
from wire.version import package_version

API_PREFIX = "/api/v1"

__all__ = ["API_PREFIX", "ApiBackend", "create_app"]


_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})


def validation_errors(
    errors: Any, body_model: type[BaseModel] | None = None
) -> list[dict[str, Any]]:
    """422 details that name the field: ``loc``, ``field`` (dotted) and a message that starts
    with it, in the words of every config error (``wire.validation``): ``body.plcae: unknown
    key (did you mean 'place'?)``. The offending input appears only as a short repr."""
    in_body = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("body",)]
    elsewhere = [e for e in errors if e not in in_body]
    scoped = [{**e, "loc": tuple(e["loc"])[1:]} for e in in_body]  # relative to body_model
    return [_detail(e, ("body",), body_model) for e in ordered(scoped, body_model)] + [
        _detail(e, (), None) for e in ordered(elsewhere, None)
    ]


def _detail(
    error: Mapping[str, Any], outer: tuple[str, ...], model: type[BaseModel] | None
) -> dict[str, Any]:
    loc = [*outer, *(p if isinstance(p, int) else str(p) for p in error.get("loc", ()))]
    if error.get("type") in _TAG_ERRORS:
        loc.append(str(error.get("ctx", {}).get("discriminator", "type")).strip("'"))
    # Tagged unions add the tag as a level ("body.set-interval.args"): keep it, it helps.
    field = ".".join(str(p) for p in loc) or "request"
    text = describe(error, model, PATTERN_NAMES)
    return {
        "loc": loc,
        "field": field,
        "type": str(error.get("type", "")),
        "msg": f"{field}: {text}",
    }


def body_model_of(request: Request) -> type[BaseModel] | None:
    """The pydantic model of the matched route's JSON body, for "did you mean"."""
    route = request.scope.get("route")
    body = getattr(route, "body_field", None)
    model = getattr(getattr(body, "field_info", None), "annotation", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    return None


async def _on_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_errors(exc.errors(), body_model_of(request))
    return JSONResponse(status_code=422, content={"detail": details})


# The API is versioned with the package: one version string (wire.version).
API_VERSION = package_version()


def create_app(backend: ApiBackend) -> FastAPI:
    app = FastAPI(
        title="edgewatch controller",
        summary="Fleet registry, health, commands, config, risk and alerts, and forwarding to"
        " the tier centers.",
        version=API_VERSION,
        docs_url=None,  # mount_docs serves /docs from the package (no CDN)
        redoc_url=None,
    )
    app.state.backend = backend
    app.add_exception_handler(RequestValidationError, _on_invalid)
    # The console's /alerts/stream and /alerts/stream-ticket before /alerts/{alert_id}.
    routers = (console, stream_tickets, alert_stream, gateways, gaps, devices, registry, points)
    duty = (rosters, notifications)
    for router in (
        *routers,
        commands,
        audit,
        centers,
        summary,
        risk,
        risk_rules,
        alerts,
        maps,
        *duty,
    ):
        app.include_router(router, prefix=API_PREFIX)
    # Probes and Prometheus look at the root; nothing under /api/v1 answers without a token.
    app.include_router(probes)
    # The duty person's acknowledgement page: its signed link is its only credential.
    app.include_router(ack)
    mount_console(app)  # the web console at /console/
    mount_docs(app)  # Swagger UI at /docs, its assets vendored
    return app
