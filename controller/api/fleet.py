"""Gateways and devices: list with filters and pages, detail, health history, readings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from controller.api.deps import (
    BackendDep,
    GatewayId,
    PageDep,
    PlaceQuery,
    Viewer,
    not_found,
    scoped_gateway,
)
from controller.fleet import queries
from controller.fleet.devices import DeviceHealthState
from controller.fleet.health import GatewayHealthState
from controller.fleet.queries import (
    DeviceOut,
    DeviceReadings,
    GatewayDetail,
    GatewayOut,
    TransitionOut,
)

MAX_READINGS_LIMIT = 10_000

gateways = APIRouter(prefix="/gateways", tags=["gateways"])
devices = APIRouter(prefix="/devices", tags=["devices"])

DeviceId = Annotated[
    str,
    Path(
        min_length=3,
        max_length=128,
        pattern=r"^[a-z0-9-]{1,63}\.[A-Za-z0-9_.:-]{1,64}$",
        description="'<gateway>.<device>'",
    ),
]
Version = Annotated[str | None, Query(min_length=1, max_length=32, description="agent version")]
Family = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


@gateways.get("", response_model=list[GatewayOut])
async def list_gateways(  # noqa: PLR0917
    backend: BackendDep,
    principal: Viewer,
    page: PageDep,
    place: PlaceQuery = None,
    state: GatewayHealthState | None = None,
    version: Version = None,
) -> Response:
    """The page of gateways, as SQLite builds it (``queries.list_gateways_json``)."""
    body = backend.store.read(
        lambda conn: queries.list_gateways_json(
            conn,
            scope=principal.place,
            place=place,
            state=state.value if state else None,
            version=version,
            page=page,
        )
    )
    return Response(content=body, media_type="application/json")


@gateways.get("/{gateway_id}", response_model=GatewayDetail)
def get_gateway(gateway_id: GatewayId, backend: BackendDep, principal: Viewer) -> GatewayDetail:
    scoped_gateway(backend, principal, gateway_id)
    found = backend.store.read(lambda conn: queries.get_gateway(conn, gateway_id))
    if found is None:
        raise not_found("gateway", gateway_id)
    return found


@gateways.get("/{gateway_id}/history", response_model=list[TransitionOut])
def gateway_history(
    gateway_id: GatewayId, backend: BackendDep, principal: Viewer, page: PageDep
) -> list[TransitionOut]:
    """Every state transition of the gateway, newest first, with time and reason."""
    scoped_gateway(backend, principal, gateway_id)
    return backend.store.read(lambda conn: queries.gateway_transitions(conn, gateway_id, page))


@devices.get("", response_model=list[DeviceOut])
def list_devices(  # noqa: PLR0917
    backend: BackendDep,
    principal: Viewer,
    page: PageDep,
    gateway: Annotated[
        str | None, Query(pattern=r"^[a-z0-9-]{1,63}$", description="only this gateway's")
    ] = None,
    place: PlaceQuery = None,
    state: DeviceHealthState | None = None,
    family: Family = None,
) -> list[DeviceOut]:
    return backend.store.read(
        lambda conn: queries.list_devices(
            conn,
            gateway,
            scope=principal.place,
            place=place,
            state=state.value if state else None,
            family=family,
            page=page,
        )
    )


def _device_parts(backend: BackendDep, principal: Viewer, device_id: str) -> tuple[str, str]:
    parts = queries.split_device_id(device_id)
    if parts is None:
        raise HTTPException(
            status_code=404,
            detail=f"device {device_id!r} is not known (device ids are '<gateway>.<device>')",
        )
    try:
        scoped_gateway(backend, principal, parts[0])
    except HTTPException:
        raise HTTPException(
            status_code=404,
            detail=f"device {device_id!r} is not known (device ids are '<gateway>.<device>')",
        ) from None
    return parts


@devices.get("/{device_id}", response_model=DeviceOut)
def get_device(device_id: DeviceId, backend: BackendDep, principal: Viewer) -> DeviceOut:
    gateway, name = _device_parts(backend, principal, device_id)
    found = backend.store.read(lambda conn: queries.get_device(conn, gateway, name))
    if found is None:
        raise not_found("device", device_id)
    return found


@devices.get("/{device_id}/history", response_model=list[TransitionOut])
def device_history(
    device_id: DeviceId, backend: BackendDep, principal: Viewer, page: PageDep
) -> list[TransitionOut]:
    gateway, name = _device_parts(backend, principal, device_id)
    if backend.store.read(lambda conn: queries.get_device(conn, gateway, name)) is None:
        raise not_found("device", device_id)
    return backend.store.read(lambda conn: queries.device_transitions(conn, gateway, name, page))


@devices.get("/{device_id}/readings", response_model=DeviceReadings)
def device_readings(  # noqa: PLR0917
    device_id: Annotated[str, Path(max_length=128)],
    backend: BackendDep,
    principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=MAX_READINGS_LIMIT)] = 100,
    metric: Annotated[
        str | None, Query(min_length=1, max_length=64, description="only this metric")
    ] = None,
    since_ms: Annotated[
        int | None, Query(ge=0, le=2**53, description="only readings with ts_ms at or after")
    ] = None,
) -> DeviceReadings:
    """The device's readings, newest first (at most ``limit``; ``since_ms`` for a window)."""
    gateway, name = _device_parts(backend, principal, device_id)
    found = backend.store.read(
        lambda conn: queries.device_readings(
            conn, gateway, name, limit=limit, metric=metric, since_ms=since_ms
        )
    )
    if found is None:
        raise HTTPException(
            status_code=404,
            detail=f"device {device_id!r} is not known (device ids are '<gateway>.<device>')",
        )
    return found
