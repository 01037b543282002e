"""The registry: places, gateways (with broker credentials), devices (risk points:
``controller.api.risk_points``).

Writes need an operator (inside its place) and are audited; credentials are issued once,
in the answer to ``POST /gateways`` or ``POST /gateways/{id}/credentials``, never again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlite_utils import Database

import wire
from controller.api.deps import (
    Admin,
    ApiBackend,
    BackendDep,
    GatewayId,
    InputModel,
    Label,
    Operator,
    PageDep,
    Place,
    PlaceQuery,
    Viewer,
    audit_ok,
    check_place_in_scope,
    not_found,
    scoped_gateway,
)
from controller.api.fleet import DeviceId
from controller.fleet import queries
from controller.fleet.provisioning import ProvisioningError, UserTakenError
from controller.fleet.queries import DeviceOut, GatewayOut

registry = APIRouter(tags=["registry"])

Family = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
# By depth. A place four levels deep is a grid under its street, or a community whose grids
# sit one level below it (its duty roster says layer = "community": docs/notify.md).
LEVELS = ("city", "district", "street", "grid", "grid")


class PlaceIn(InputModel):
    path: Place
    name: Label


class PlaceOut(BaseModel):
    path: str
    name: str
    level: str
    created_ms: int


class GatewayIn(InputModel):
    id: wire.ValidGatewayId = Field(min_length=1, max_length=63)
    place: Place
    label: Label | None = None


class GatewayPatch(InputModel):
    place: Place | None = None
    label: Label | None = None


class MqttCredentials(BaseModel):
    username: str
    password: str  # shown once: the controller keeps only its hash


class GatewayCreated(BaseModel):
    gateway: GatewayOut
    mqtt: MqttCredentials | None  # None where the controller does not manage the broker


class DeviceIn(InputModel):
    gateway: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9-]+$")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    family: Family | None = None


class DevicePatch(InputModel):
    family: Family | None = None
    maintenance: bool | None = None


# -- places -------------------------------------------------------------------------------------


@registry.get("/places", response_model=list[PlaceOut])
def list_places(
    backend: BackendDep, principal: Viewer, page: PageDep, under: PlaceQuery = None
) -> list[PlaceOut]:
    where = queries.Where().within("path", principal.place, under)
    rows = backend.store.read(
        lambda conn: conn.execute(
            f"SELECT path, name, level, created_ms FROM places WHERE {where.sql}"  # noqa: S608
            " ORDER BY path LIMIT ? OFFSET ?",
            [*where.params, page.limit, page.offset],
        ).fetchall()
    )
    return [PlaceOut.model_validate(dict(row)) for row in rows]


@registry.post("/places", response_model=PlaceOut, status_code=201)
def create_place(body: PlaceIn, backend: BackendDep, principal: Operator) -> PlaceOut:
    check_place_in_scope(principal, body.path, "path")
    level = LEVELS[body.path.count("/")]
    now_ms = backend.clock.wall_ms()

    def insert(db: Database) -> bool:
        cursor = db.execute(
            "INSERT OR IGNORE INTO places (path, name, level, created_ms) VALUES (?, ?, ?, ?)",
            (body.path, body.name, level, now_ms),
        )
        return bool(cursor.rowcount)

    if not backend.store.call(insert):
        raise HTTPException(status_code=409, detail=f"path: place {body.path!r} exists")
    audit_ok(backend, principal, "place.create", f"place:{body.path}", body.path, body.model_dump())
    return PlaceOut(path=body.path, name=body.name, level=level, created_ms=now_ms)


# -- gateways -----------------------------------------------------------------------------------


def _check_gateway_id(backend: ApiBackend, gateway: str) -> None:
    """409 if ``gateway`` is a broker user that is not this gateway (the controller's own
    login, a user of the broker's password file): it would take over that login."""
    provisioner = backend.provisioner
    try:
        backend.store.read(lambda conn: provisioner.check_gateway_id(conn, gateway))
    except UserTakenError as exc:
        raise HTTPException(status_code=409, detail=f"id: {exc}") from None
    except ProvisioningError as exc:
        raise HTTPException(status_code=502, detail=f"broker: {exc}") from None


def _issue(backend: ApiBackend, gateway: str) -> MqttCredentials | None:
    provisioner = backend.provisioner
    if not provisioner.enabled:
        return None
    _check_gateway_id(backend, gateway)
    now_ms = backend.clock.wall_ms()
    password = backend.store.call(lambda db: provisioner.issue(db, gateway, now_ms=now_ms))
    try:
        backend.store.read(provisioner.sync)
    except ProvisioningError as exc:
        raise HTTPException(status_code=502, detail=f"broker: {exc}") from None
    return MqttCredentials(username=gateway, password=password)


@registry.post("/gateways", response_model=GatewayCreated, status_code=201)
def create_gateway(body: GatewayIn, backend: BackendDep, principal: Operator) -> GatewayCreated:
    """Register a gateway; where the controller keeps the broker's files, issue credentials."""
    check_place_in_scope(principal, body.place, "place")
    _check_gateway_id(backend, body.id)
    now_ms = backend.clock.wall_ms()

    def insert(db: Database) -> bool:
        cursor = db.execute(
            "INSERT OR IGNORE INTO gateways (id, place, label, source, created_ms)"
            " VALUES (?, ?, ?, 'api', ?)",
            (body.id, body.place, body.label, now_ms),
        )
        return bool(cursor.rowcount)

    if not backend.store.call(insert):
        raise HTTPException(status_code=409, detail=f"id: gateway {body.id!r} exists")
    backend.fleet.router.set_place(body.id, body.place)
    mqtt = _issue(backend, body.id)
    audit_ok(
        backend,
        principal,
        "gateway.create",
        f"gateway:{body.id}",
        body.place,
        {**body.model_dump(), "credentials": mqtt is not None},
    )
    found = backend.store.read(lambda conn: queries.get_gateway(conn, body.id))
    assert found is not None
    return GatewayCreated(gateway=GatewayOut.model_validate(found.model_dump()), mqtt=mqtt)


@registry.patch("/gateways/{gateway_id}", response_model=GatewayOut)
def update_gateway(
    gateway_id: GatewayId, body: GatewayPatch, backend: BackendDep, principal: Operator
) -> GatewayOut:
    place = scoped_gateway(backend, principal, gateway_id)
    if body.place is not None:
        check_place_in_scope(principal, body.place, "place")
    changes = body.model_dump(exclude_none=True)
    if changes:
        sets = ", ".join(f"{key} = ?" for key in changes)
        backend.store.call(
            lambda db: db.execute(
                f"UPDATE gateways SET {sets} WHERE id = ?",  # noqa: S608 (keys from the model)
                [*changes.values(), gateway_id],
            )
        )
        if body.place is not None:
            backend.fleet.router.set_place(gateway_id, body.place)
        audit_ok(backend, principal, "gateway.update", f"gateway:{gateway_id}", place, changes)
    found = backend.store.read(lambda conn: queries.get_gateway(conn, gateway_id))
    if found is None:
        raise not_found("gateway", gateway_id)
    return GatewayOut.model_validate(found.model_dump())


@registry.post(
    "/gateways/{gateway_id}/credentials", response_model=MqttCredentials, status_code=201
)
def rotate_credentials(
    gateway_id: GatewayId, backend: BackendDep, principal: Admin
) -> MqttCredentials:
    """New MQTT credentials for a gateway (the old password stops working)."""
    place = scoped_gateway(backend, principal, gateway_id)
    issued = _issue(backend, gateway_id)
    if issued is None:
        raise HTTPException(
            status_code=409, detail="broker: this controller does not manage the broker's files"
        )
    audit_ok(backend, principal, "gateway.credentials", f"gateway:{gateway_id}", place, {})
    return issued


@registry.delete("/gateways/{gateway_id}/credentials", status_code=204)
def revoke_credentials(gateway_id: GatewayId, backend: BackendDep, principal: Admin) -> None:
    """Revoke a gateway's broker access: its password and ACL entries are removed."""
    place = scoped_gateway(backend, principal, gateway_id)
    provisioner = backend.provisioner
    now_ms = backend.clock.wall_ms()
    revoked = backend.store.call(lambda db: provisioner.revoke(db, gateway_id, now_ms=now_ms))
    if not revoked:
        raise HTTPException(
            status_code=404, detail=f"gateway {gateway_id!r} has no active credentials"
        )
    try:
        backend.store.read(provisioner.sync)
    except ProvisioningError as exc:
        raise HTTPException(status_code=502, detail=f"broker: {exc}") from None
    audit_ok(backend, principal, "gateway.revoke", f"gateway:{gateway_id}", place, {})


# -- devices ------------------------------------------------------------------------------------


@registry.post("/devices", response_model=DeviceOut, status_code=201)
def create_device(body: DeviceIn, backend: BackendDep, principal: Operator) -> DeviceOut:
    place = scoped_gateway(backend, principal, body.gateway)
    now_ms = backend.clock.wall_ms()

    def insert(db: Database) -> bool:
        cursor = db.execute(
            "INSERT OR IGNORE INTO devices (gateway, name, family, first_seen_ms, updated_ms)"
            " VALUES (?, ?, ?, ?, ?)",
            (body.gateway, body.name, body.family, now_ms, now_ms),
        )
        return bool(cursor.rowcount)

    device = queries.device_id(body.gateway, body.name)
    if not backend.store.call(insert):
        raise HTTPException(status_code=409, detail=f"name: device {device!r} exists")
    audit_ok(backend, principal, "device.create", f"device:{device}", place, body.model_dump())
    found = backend.store.read(lambda conn: queries.get_device(conn, body.gateway, body.name))
    assert found is not None
    return found


@registry.patch("/devices/{device_id}", response_model=DeviceOut)
def update_device(
    device_id: DeviceId, body: DevicePatch, backend: BackendDep, principal: Operator
) -> DeviceOut:
    gateway, _, name = device_id.partition(".")
    place = scoped_gateway(backend, principal, gateway)
    if backend.store.read(lambda conn: queries.get_device(conn, gateway, name)) is None:
        raise not_found("device", device_id)
    if body.family is not None:
        backend.store.call(
            lambda db: db.execute(
                "UPDATE devices SET family = ? WHERE gateway = ? AND name = ?",
                (body.family, gateway, name),
            )
        )
    if body.maintenance is not None:
        backend.fleet.set_maintenance(gateway, name, on=body.maintenance)
    audit_ok(
        backend,
        principal,
        "device.update",
        f"device:{device_id}",
        place,
        body.model_dump(exclude_none=True),
    )
    found = backend.store.read(lambda conn: queries.get_device(conn, gateway, name))
    assert found is not None
    return found
