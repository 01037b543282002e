"""The controller itself: centers, summary, probes (``/healthz``, ``/readyz``), ``/metrics``."""

from __future__ import annotations

import sqlite3

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from controller.api.deps import ApiBackend, BackendDep, Viewer
from controller.fleet import commands, queries
from controller.fleet.devices import DeviceHealthState
from controller.fleet.health import GatewayHealthState
from controller.forwarding.routing import place_contains
from controller.metrics import Family, render
from wire.risk import Colour

centers = APIRouter(prefix="/centers", tags=["centers"])
summary = APIRouter(prefix="/summary", tags=["summary"])
probes = APIRouter(tags=["probes"])


class LaneOut(BaseModel):
    lane: str  # "readings" or "priority" (alerts and health summaries)
    queued: int
    delivered: int
    failed_attempts: int
    oldest_undelivered_age_s: float


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
    lanes: list[LaneOut]


class CenterSummary(BaseModel):
    tier: str
    delivered: int
    queued: int
    lag_s: float


class Summary(BaseModel):
    gateways: dict[str, int]  # state -> count: online, degraded, offline, unknown
    readings_stored: int
    centers: dict[str, CenterSummary]
    rejected: dict[str, int]  # reason -> messages refused since start


class Healthz(BaseModel):
    status: str  # "ok" or "degraded"
    store_writer: bool
    mqtt_connected: bool


class Readyz(BaseModel):
    ready: bool
    database: bool
    broker: bool
    detail: str


def _centers(backend: ApiBackend, scope: str | None) -> list[CenterOut]:
    """The centers seen from ``scope``: those serving it (above it) or inside it."""
    return [
        CenterOut.model_validate(s, from_attributes=True)
        for s in backend.outboxes.stats()
        if scope is None or place_contains(s.place, scope) or place_contains(scope, s.place)
    ]


@centers.get("", response_model=list[CenterOut])
def list_centers(backend: BackendDep, principal: Viewer) -> list[CenterOut]:
    return _centers(backend, principal.place)


@summary.get("", response_model=Summary)
def get_summary(backend: BackendDep, principal: Viewer) -> Summary:
    """Counts for the token's place (a street operator sees its street's, not the city's)."""
    scope = principal.place
    counts, stored = backend.store.read(
        lambda conn: (
            queries.gateway_state_counts(conn, scope),
            queries.readings_stored(conn, scope),
        )
    )
    return Summary(
        gateways=counts,
        readings_stored=stored,
        centers={
            c.name: CenterSummary(
                tier=c.tier, delivered=c.delivered, queued=c.queued, lag_s=c.lag_s
            )
            for c in _centers(backend, scope)
        },
        # Refusals are counted per reason for the whole controller: admins of all places.
        rejected=backend.rejections.counts() if scope is None else {},
    )


@probes.get("/healthz", response_model=Healthz)
def healthz(backend: BackendDep, response: Response) -> Healthz:
    """Liveness: 503 only when the store writer is down (a restart would help)."""
    writer = backend.store.writer_alive
    if not writer:
        response.status_code = 503
    return Healthz(
        status="ok" if writer and backend.mqtt_connected else "degraded",
        store_writer=writer,
        mqtt_connected=backend.mqtt_connected,
    )


@probes.get("/readyz", response_model=Readyz)
def readyz(backend: BackendDep, response: Response) -> Readyz:
    """Readiness: the database answers a query, the writer runs, and the broker is connected."""
    try:
        backend.store.read(lambda conn: conn.execute("SELECT 1").fetchone())
        database = backend.store.writer_alive
        problem = "" if database else "store writer is not running"
    except sqlite3.Error as exc:
        database, problem = False, f"database: {exc}"
    broker = backend.mqtt_connected
    if not broker:
        problem = "; ".join(p for p in (problem, "broker: not connected") if p)
    ready = database and broker
    if not ready:
        response.status_code = 503
    return Readyz(ready=ready, database=database, broker=broker, detail=problem or "ready")


def _families(backend: ApiBackend) -> list[Family]:
    def query(
        conn: sqlite3.Connection,
    ) -> tuple[dict[str, int], dict[str, int], int, dict[tuple[str, str], int], dict[str, int]]:
        devices = {state.value: 0 for state in DeviceHealthState}
        for state, count in conn.execute(
            "SELECT health_state, count(*) FROM devices GROUP BY health_state"
        ):
            devices[state] = count
        open_alerts = dict(
            conn.execute("SELECT colour, count(*) FROM alerts WHERE open = 1 GROUP BY colour")
        )
        return (
            queries.gateway_state_counts(conn),
            devices,
            queries.readings_stored(conn),
            commands.outcome_counts(conn),
            open_alerts,
        )

    gateways, devices, stored, outcomes, alerts = backend.store.read(query)
    messages, received = backend.metrics.snapshot()
    rate = backend.metrics.readings_rate_per_s(stored)
    families = [
        Family("edgewatch_readings_stored_total", "counter", "Readings stored (deduplicated).").add(
            stored
        ),
        Family("edgewatch_readings_received_total", "counter", "Readings received by MQTT.").add(
            received
        ),
        Family(
            "edgewatch_ingest_readings_per_second", "gauge", "Readings stored per second (10 s)."
        ).add(rate),
    ]
    by_kind = Family("edgewatch_mqtt_messages_total", "counter", "MQTT messages by topic kind.")
    for kind, count in sorted(messages.items()):
        by_kind.add(count, kind=kind)
    rejected = Family("edgewatch_rejected_messages_total", "counter", "Refused, by reason.")
    for reason, count in sorted(backend.rejections.counts().items()):
        rejected.add(count, reason=reason)
    states = Family("edgewatch_gateways", "gauge", "Gateways by health state.")
    for state in GatewayHealthState:
        states.add(gateways.get(state.value, 0), state=state.value)
    device_states = Family("edgewatch_devices", "gauge", "Devices by health state.")
    for state_name, count in sorted(devices.items()):
        device_states.add(count, state=state_name)
    outbox = _outbox_families(_centers(backend, None))
    outcome = Family("edgewatch_commands", "gauge", "Commands by type and lifecycle state.")
    for (kind, state_name), count in sorted(outcomes.items()):
        outcome.add(count, type=kind, state=state_name)
    up = Family("edgewatch_mqtt_connected", "gauge", "1 when subscribed to the broker.").add(
        1 if backend.mqtt_connected else 0
    )
    return [
        *families,
        by_kind,
        rejected,
        states,
        device_states,
        *outbox,
        outcome,
        _alert_family(alerts),
        *backend.notify.metric_families(),
        up,
    ]


def _outbox_families(centers: list[CenterOut]) -> list[Family]:
    """Per center and lane (readings, priority): queued, delivered, failed, oldest age."""
    queued = Family("edgewatch_center_queued", "gauge", "Rows waiting, per center and lane.")
    delivered = Family(
        "edgewatch_center_delivered_total", "counter", "Rows delivered, per center and lane."
    )
    failed = Family(
        "edgewatch_center_failed_attempts_total",
        "counter",
        "Failed delivery attempts since start, per center and lane.",
    )
    age = Family(
        "edgewatch_center_oldest_undelivered_age_seconds",
        "gauge",
        "Age of the oldest undelivered row, per center and lane.",
    )
    for center in centers:
        for lane in center.lanes:
            labels = {"center": center.name, "tier": center.tier, "lane": lane.lane}
            queued.add(lane.queued, **labels)
            delivered.add(lane.delivered, **labels)
            failed.add(lane.failed_attempts, **labels)
            age.add(lane.oldest_undelivered_age_s, **labels)
    return [queued, delivered, failed, age]


def _alert_family(open_alerts: dict[str, int]) -> Family:
    family = Family("edgewatch_alerts_open", "gauge", "Open alert episodes by colour.")
    for colour in Colour:
        family.add(open_alerts.get(colour.value, 0), colour=colour.value)
    return family


@probes.get("/metrics", response_class=PlainTextResponse)
def metrics(backend: BackendDep) -> PlainTextResponse:
    """Prometheus text format, version 0.0.4."""
    return PlainTextResponse(
        render(_families(backend)), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
