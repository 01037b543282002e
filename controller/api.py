"""The fleet API (FastAPI): one router per resource under ``/api/v1``; OpenAPI at ``/docs``.

| endpoint | returns |
| --- | --- |
| ``GET /api/v1/gateways`` | ``[GatewayOut]`` |
| ``GET /api/v1/gateways/{id}`` | ``GatewayDetail`` (404 naming the id if unknown) |
| ``GET /api/v1/devices[?gateway=ID]`` | ``[DeviceOut]``; a device id is ``<gateway>.<device>`` |
| ``GET /api/v1/devices/{id}/readings?limit=N[&metric=M]`` | ``DeviceReadings``, newest first |
| ``GET /api/v1/centers`` | ``[CenterOut]``: delivered, queued, lag per center |
| ``GET /api/v1/summary`` | ``Summary``: gateway states, readings stored, centers, rejected |
| ``GET /api/v1/healthz``, ``GET /healthz`` | ``Healthz``; 503 when the store writer is down |
| ``GET /api/v1/risk-map[?place=P]`` | ``RiskMap``: colour per risk point, counts per place |
| ``GET /api/v1/alerts[?place=&colour=&state=&open=&limit=]`` | ``[AlertOut]``, newest first |
| ``GET /api/v1/alerts/{id}`` | ``AlertDetail`` with its trail |
| ``POST /api/v1/alerts/{id}/transitions`` | ``TransitionIn`` -> ``AlertDetail``; 409 if not next |
| ``GET /api/v1/risk-rules?gateway=ID`` | ``wire.risk.RuleSet``: the rules an agent evaluates |
| ``GET /metrics`` | Prometheus text: per center and lane queued, delivered, failed, age |
"""

from __future__ import annotations

from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from controller import alert_queries, queries
from controller.alert_chain import AlertState
from controller.alert_queries import AlertDetail, AlertOut, RiskMap, TransitionIn
from controller.alerts import AlertEngine
from controller.ingest import Rejections
from controller.outbox import Outboxes
from controller.queries import DeviceOut, DeviceReadings, GatewayDetail, GatewayOut
from controller.store import Store
from wire.risk import Colour, RuleSet

API_PREFIX = "/api/v1"
MAX_READINGS_LIMIT = 10_000


class ApiBackend(Protocol):
    """What the API needs from the running controller."""

    @property
    def store(self) -> Store: ...

    @property
    def outboxes(self) -> Outboxes: ...

    @property
    def rejections(self) -> Rejections: ...

    @property
    def mqtt_connected(self) -> bool: ...

    @property
    def alerts(self) -> AlertEngine: ...


def _backend(request: Request) -> ApiBackend:
    return cast(ApiBackend, request.app.state.backend)


BackendDep = Annotated[ApiBackend, Depends(_backend)]


class CenterOut(BaseModel):
    name: str
    tier: str
    place: str
    url: str
    delivered: int
    queued: int
    lag_s: float  # age of the oldest undelivered reading
    priority_queued: int  # alerts and health summaries waiting
    priority_delivered: int
    oldest_undelivered_age_s: float  # of either lane
    failed_attempts: int
    last_error: str | None
    last_delivered_ms: int | None


class CenterSummary(BaseModel):
    tier: str
    delivered: int
    queued: int
    lag_s: float


class Summary(BaseModel):
    gateways: dict[str, int]  # state -> count: online, offline, unknown
    readings_stored: int
    centers: dict[str, CenterSummary]
    rejected: dict[str, int]  # reason -> messages refused since start


class Healthz(BaseModel):
    status: str  # "ok" or "degraded"
    store_writer: bool
    mqtt_connected: bool


gateways = APIRouter(prefix="/gateways", tags=["gateways"])
devices = APIRouter(prefix="/devices", tags=["devices"])
centers = APIRouter(prefix="/centers", tags=["centers"])
summary = APIRouter(prefix="/summary", tags=["summary"])
health = APIRouter(tags=["health"])
risk = APIRouter(prefix="/risk-map", tags=["risk"])
alerts = APIRouter(prefix="/alerts", tags=["alerts"])
risk_rules = APIRouter(prefix="/risk-rules", tags=["risk"])
metrics = APIRouter(tags=["metrics"])


@gateways.get("", response_model=list[GatewayOut])
def list_gateways(backend: BackendDep) -> list[GatewayOut]:
    return backend.store.read(queries.list_gateways)


@gateways.get("/{gateway_id}", response_model=GatewayDetail)
def get_gateway(gateway_id: str, backend: BackendDep) -> GatewayDetail:
    found = backend.store.read(lambda conn: queries.get_gateway(conn, gateway_id))
    if found is None:
        raise HTTPException(status_code=404, detail=f"gateway {gateway_id!r} is not known")
    return found


@devices.get("", response_model=list[DeviceOut])
def list_devices(
    backend: BackendDep,
    gateway: Annotated[str | None, Query(description="only this gateway's devices")] = None,
) -> list[DeviceOut]:
    return backend.store.read(lambda conn: queries.list_devices(conn, gateway))


@devices.get("/{device_id}/readings", response_model=DeviceReadings)
def device_readings(
    device_id: str,
    backend: BackendDep,
    limit: Annotated[int, Query(ge=1, le=MAX_READINGS_LIMIT)] = 100,
    metric: Annotated[str | None, Query(description="only this metric")] = None,
) -> DeviceReadings:
    parts = queries.split_device_id(device_id)
    found = None
    if parts is not None:
        gateway, name = parts
        found = backend.store.read(
            lambda conn: queries.device_readings(conn, gateway, name, limit=limit, metric=metric)
        )
    if found is None:
        raise HTTPException(
            status_code=404,
            detail=f"device {device_id!r} is not known (device ids are '<gateway>.<device>')",
        )
    return found


def _centers(backend: ApiBackend) -> list[CenterOut]:
    return [CenterOut.model_validate(s, from_attributes=True) for s in backend.outboxes.stats()]


@centers.get("", response_model=list[CenterOut])
def list_centers(backend: BackendDep) -> list[CenterOut]:
    return _centers(backend)


@summary.get("", response_model=Summary)
def get_summary(backend: BackendDep) -> Summary:
    counts, stored = backend.store.read(
        lambda conn: (queries.gateway_state_counts(conn), queries.readings_stored(conn))
    )
    return Summary(
        gateways=counts,
        readings_stored=stored,
        centers={
            c.name: CenterSummary(
                tier=c.tier, delivered=c.delivered, queued=c.queued, lag_s=c.lag_s
            )
            for c in _centers(backend)
        },
        rejected=backend.rejections.counts(),
    )


@health.get("/healthz", response_model=Healthz)
def healthz(backend: BackendDep, response: Response) -> Healthz:
    writer = backend.store.writer_alive
    if not writer:
        response.status_code = 503
    return Healthz(
        status="ok" if writer and backend.mqtt_connected else "degraded",
        store_writer=writer,
        mqtt_connected=backend.mqtt_connected,
    )


@risk.get("", response_model=RiskMap)
def get_risk_map(
    backend: BackendDep,
    place: Annotated[str | None, Query(description="only points at or below this place")] = None,
) -> RiskMap:
    return backend.store.read(lambda conn: alert_queries.risk_map(conn, place))


@risk_rules.get("", response_model=RuleSet)
def get_risk_rules(
    backend: BackendDep,
    gateway: Annotated[str, Query(description="only the metrics of this gateway's devices")],
) -> RuleSet:
    """The rules for one gateway's edge alerts, as its agent loads them (risk.rules_file)."""
    points = []
    for config in backend.alerts.points.values():
        rules = config.rules()
        mine = [m for m in rules.metrics if m.device.startswith(f"{gateway}.")]
        if mine:
            points.append(rules.model_copy(update={"metrics": mine}))
    return RuleSet(points=points)


@alerts.get("", response_model=list[AlertOut])
def list_alerts(  # noqa: PLR0917 (FastAPI query parameters)
    backend: BackendDep,
    place: Annotated[str | None, Query(description="at or below this place")] = None,
    colour: Colour | None = None,
    state: AlertState | None = None,
    open: Annotated[bool | None, Query(description="only open (or closed) episodes")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[AlertOut]:
    return backend.store.read(
        lambda conn: alert_queries.list_alerts(
            conn, place=place, colour=colour, state=state, open_only=open, limit=limit
        )
    )


def _alert_or_404(backend: ApiBackend, alert_id: int) -> AlertDetail:
    found = backend.store.read(lambda conn: alert_queries.get_alert(conn, alert_id))
    if found is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    return found


@alerts.get("/{alert_id}", response_model=AlertDetail)
def get_alert(alert_id: int, backend: BackendDep) -> AlertDetail:
    return _alert_or_404(backend, alert_id)


@alerts.post("/{alert_id}/transitions", response_model=AlertDetail)
def transition_alert(alert_id: int, body: TransitionIn, backend: BackendDep) -> AlertDetail:
    """Move the alert one step: raised -> acknowledged -> handling -> resolved -> reviewed."""
    refused = backend.alerts.transition(alert_id, body.to, body.by, body.note)
    if refused is not None:
        raise HTTPException(status_code=refused.status, detail=refused.detail)
    return _alert_or_404(backend, alert_id)


@metrics.get("/metrics", response_class=PlainTextResponse)
def get_metrics(backend: BackendDep) -> str:
    """Prometheus text exposition of the forwarding counters."""
    lines = [
        "# TYPE edgewatch_center_queued gauge",
        "# TYPE edgewatch_center_delivered_total counter",
        "# TYPE edgewatch_center_failed_attempts_total counter",
        "# TYPE edgewatch_center_oldest_undelivered_age_seconds gauge",
    ]
    for c in backend.outboxes.stats():
        for lane, queued, delivered in (
            ("readings", c.queued, c.delivered),
            ("priority", c.priority_queued, c.priority_delivered),
        ):
            label = f'center="{c.name}",tier="{c.tier}",lane="{lane}"'
            lines.append(f"edgewatch_center_queued{{{label}}} {queued}")
            lines.append(f"edgewatch_center_delivered_total{{{label}}} {delivered}")
        label = f'center="{c.name}",tier="{c.tier}"'
        lines.append(f"edgewatch_center_failed_attempts_total{{{label}}} {c.failed_attempts}")
        lines.append(
            f"edgewatch_center_oldest_undelivered_age_seconds{{{label}}}"
            f" {c.oldest_undelivered_age_s:.3f}"
        )
    return "\n".join(lines) + "\n"


def create_app(backend: ApiBackend) -> FastAPI:
    app = FastAPI(
        title="edgewatch controller",
        summary="Fleet state, readings and forwarding to the tier centers.",
        version="0.1.0",
    )
    app.state.backend = backend
    for router in (gateways, devices, centers, summary, health, risk, risk_rules, alerts):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health)  # also at /healthz, where probes look
    app.include_router(metrics)
    return app
