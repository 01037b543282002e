"""Risk and alerts: the risk map, the alert chain, and the rules agents evaluate at the edge.

A token scoped to a place sees only the risk points and alerts at or below it (anything else
answers 404); moving an alert along its chain needs an operator, and the trail records the
token's name as who acted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from controller.access import AuditEntry, Principal, record_audit
from controller.api.deps import (
    GATEWAY_ID_PATTERN,
    ApiBackend,
    BackendDep,
    Operator,
    PageDep,
    PlaceQuery,
    Viewer,
)
from controller.risk import queries as alert_queries
from controller.risk.chain import AlertState
from controller.risk.edge_rules import gateway_rules
from controller.risk.queries import AlertDetail, AlertOut, RiskMap, TransitionIn
from wire.risk import Colour, RuleSet

risk = APIRouter(prefix="/risk-map", tags=["risk"])
risk_rules = APIRouter(prefix="/risk-rules", tags=["risk"])
alerts = APIRouter(prefix="/alerts", tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**62)]


@risk.get("", response_model=RiskMap)
def get_risk_map(backend: BackendDep, principal: Viewer, place: PlaceQuery = None) -> RiskMap:
    """Each risk point's colour, and colour counts per place at or above the points."""
    return backend.store.read(
        lambda conn: alert_queries.risk_map(conn, place, scope=principal.place)
    )


@risk_rules.get("", response_model=RuleSet)
def get_risk_rules(
    backend: BackendDep,
    principal: Viewer,
    gateway: Annotated[
        str,
        Query(
            pattern=GATEWAY_ID_PATTERN,
            max_length=63,
            description="only the metrics of this gateway's devices",
        ),
    ],
) -> RuleSet:
    """The rules for one gateway's edge alerts: what the controller pushes to its agent
    (``set-rules``), and what ``[risk] rules_file`` may hold."""
    return gateway_rules(backend.alerts.points.values(), gateway, principal.sees)


@alerts.get("", response_model=list[AlertOut])
def list_alerts(  # noqa: PLR0917 (FastAPI query parameters)
    backend: BackendDep,
    principal: Viewer,
    page: PageDep,
    place: PlaceQuery = None,
    colour: Colour | None = None,
    state: AlertState | None = None,
    open: Annotated[bool | None, Query(description="only open (or closed) episodes")] = None,
) -> list[AlertOut]:
    """Newest first."""
    return backend.store.read(
        lambda conn: alert_queries.list_alerts(
            conn,
            within=(principal.place, place),
            colour=colour,
            state=state,
            open_only=open,
            page=page,
        )
    )


def _scoped_alert(backend: ApiBackend, principal: Principal, alert_id: int) -> AlertDetail:
    """The alert, or 404 if it does not exist or lies outside the caller's place."""
    found = backend.store.read(lambda conn: alert_queries.get_alert(conn, alert_id))
    if found is None or not principal.sees(found.place):
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    return found


@alerts.get("/{alert_id}", response_model=AlertDetail)
def get_alert(alert_id: AlertId, backend: BackendDep, principal: Viewer) -> AlertDetail:
    return _scoped_alert(backend, principal, alert_id)


@alerts.post("/{alert_id}/transitions", response_model=AlertDetail)
def transition_alert(
    alert_id: AlertId, body: TransitionIn, backend: BackendDep, principal: Operator
) -> AlertDetail:
    """Move the alert one step: raised -> acknowledged -> handling -> resolved -> reviewed."""
    place = _scoped_alert(backend, principal, alert_id).place
    refused = backend.alerts.transition(alert_id, body.to, principal.name, body.note)
    outcome = "ok" if refused is None else f"refused: {refused.detail}"
    now_ms = backend.clock.wall_ms()
    entry = AuditEntry(
        principal, "alert.transition", f"alert:{alert_id}", place, body.model_dump(), outcome
    )
    backend.store.call(lambda db: record_audit(db, entry, now_ms=now_ms))
    if refused is not None:
        raise HTTPException(status_code=refused.status, detail=refused.detail)
    return _scoped_alert(backend, principal, alert_id)
