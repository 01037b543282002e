"""The registry: places, gateways (with broker credentials), devices, risk points.

Writes need an operator (inside its place) and are audited; credentials are issued once,
in the answer to ``POST /gateways`` or ``POST /gateways/{id}/credentials``, never again.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlite_utils import Database

import wire
from controller import queries, risk_points
from controller.access import AuditEntry, Principal, record_audit
from controller.api_deps import (
    Admin,
    ApiBackend,
    BackendDep,
    GatewayId,
    Operator,
    PageDep,
    PlaceQuery,
    Viewer,
    check_place_in_scope,
    not_found,
    scoped_gateway,
    unprocessable,
)
from controller.api_fleet import DeviceId
from controller.config import PLACE_PATTERN, RiskMetricConfig
from controller.provisioning import ProvisioningError
from controller.queries import DeviceOut, GatewayOut
from wire.risk import Category, Colour, MetricRule

registry = APIRouter(tags=["registry"])

Place = Annotated[str, Field(pattern=PLACE_PATTERN, max_length=255)]
Label = Annotated[str, Field(min_length=1, max_length=128)]
Family = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
LEVELS = ("city", "district", "street", "grid")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlaceIn(_In):
    path: Place
    name: Label


class PlaceOut(BaseModel):
    path: str
    name: str
    level: str
    created_ms: int


class GatewayIn(_In):
    id: str = Field(min_length=1, max_length=63)
    place: Place
    label: Label | None = None

    @field_validator("id")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        try:
            return wire.validate_gateway_id(value)
        except wire.GatewayIdError as exc:
            raise ValueError(str(exc)) from None


class GatewayPatch(_In):
    place: Place | None = None
    label: Label | None = None


class MqttCredentials(BaseModel):
    username: str
    password: str  # shown once: the controller keeps only its hash


class GatewayCreated(BaseModel):
    gateway: GatewayOut
    mqtt: MqttCredentials | None  # None where the controller does not manage the broker


class DeviceIn(_In):
    gateway: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9-]+$")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    family: Family | None = None


class DevicePatch(_In):
    family: Family | None = None
    maintenance: bool | None = None


DeviceRef = Annotated[
    str, Field(max_length=128, pattern=r"^[a-z0-9-]{1,63}\.[A-Za-z0-9_.:-]{1,64}$")
]  # '<gateway>.<device>'
MetricSpecs = Annotated[list[RiskMetricConfig], Field(min_length=1, max_length=100)]
StaleAfterS = Annotated[float, Field(gt=0, le=86400 * 30)]


class RiskPointIn(_In):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: Label
    place: Place
    category: Category
    devices: list[DeviceRef] = Field(default=[], max_length=100)
    # As in the config's [[risk_points.metrics]]; None: the category's preset on each device.
    metrics: MetricSpecs | None = None
    stale_after_s: StaleAfterS = 300.0


class RiskPointPatch(_In):
    name: Label | None = None
    place: Place | None = None
    category: Category | None = None
    devices: list[DeviceRef] | None = Field(default=None, max_length=100)
    metrics: MetricSpecs | None = None
    stale_after_s: StaleAfterS | None = None


class RiskPointOut(BaseModel):
    id: str
    name: str
    place: str
    category: str
    devices: list[str]
    metrics: list[MetricRule]  # the rules it is judged by, presets resolved
    stale_after_s: float
    source: str  # "api", or "config" ([[risk_points]]: change it there)
    colour: Colour
    colour_since_ms: int | None
    created_ms: int
    updated_ms: int


def _audit(  # noqa: PLR0917
    backend: ApiBackend,
    principal: Principal,
    action: str,
    target: str,
    place: str | None,
    detail: dict[str, Any],
) -> None:
    now_ms = backend.clock.wall_ms()
    backend.store.call(
        lambda db: record_audit(
            db, AuditEntry(principal, action, target, place, detail, "ok"), now_ms=now_ms
        )
    )


# -- places -------------------------------------------------------------------------------------


@registry.get("/places", response_model=list[PlaceOut])
def list_places(
    backend: BackendDep, principal: Viewer, page: PageDep, under: PlaceQuery = None
) -> list[PlaceOut]:
    where, params = ["1"], []
    for subtree in (principal.place, under):
        if subtree is not None:
            clause, more = queries.subtree_clause("path", subtree)
            where.append(clause)
            params += more
    rows = backend.store.read(
        lambda conn: conn.execute(
            f"SELECT path, name, level, created_ms FROM places WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY path LIMIT ? OFFSET ?",
            [*params, page.limit, page.offset],
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
    _audit(backend, principal, "place.create", f"place:{body.path}", body.path, body.model_dump())
    return PlaceOut(path=body.path, name=body.name, level=level, created_ms=now_ms)


# -- gateways -----------------------------------------------------------------------------------


def _issue(backend: ApiBackend, gateway: str) -> MqttCredentials | None:
    provisioner = backend.provisioner
    if not provisioner.enabled:
        return None
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
    _audit(
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
        _audit(backend, principal, "gateway.update", f"gateway:{gateway_id}", place, changes)
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
    _audit(backend, principal, "gateway.credentials", f"gateway:{gateway_id}", place, {})
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
    _audit(backend, principal, "gateway.revoke", f"gateway:{gateway_id}", place, {})


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
    _audit(backend, principal, "device.create", f"device:{device}", place, body.model_dump())
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
    _audit(
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


# -- risk points --------------------------------------------------------------------------------

_RISK_COLUMNS = (
    "id, name, place, category, devices_json, rules_json, stale_after_s, source, colour,"
    " colour_since_ms, created_ms, updated_ms"
)
RiskPointId = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


def _risk_point(row: Any) -> RiskPointOut:
    fields = dict(row)
    fields["devices"] = json.loads(fields.pop("devices_json"))
    fields["metrics"] = risk_points.load_rules(fields.pop("rules_json"))
    return RiskPointOut.model_validate(fields)


def _read_risk_point(backend: ApiBackend, point_id: str) -> Any:
    return backend.store.read(
        lambda conn: conn.execute(
            f"SELECT {_RISK_COLUMNS} FROM risk_points WHERE id = ?",  # noqa: S608
            (point_id,),
        ).fetchone()
    )


def _rules(
    category: Category, devices: list[str], metrics: list[RiskMetricConfig] | None
) -> list[MetricRule]:
    try:
        return risk_points.resolve_rules(category, devices, metrics)
    except risk_points.RulesError as exc:
        raise unprocessable("metrics", str(exc)) from None


def _check_devices_in_scope(backend: ApiBackend, principal: Principal, devices: list[str]) -> None:
    """A token scoped to a place may only watch devices of gateways it sees."""
    if principal.place is None:
        return
    gateways = list(dict.fromkeys(d.partition(".")[0] for d in devices))
    places = backend.store.read(lambda conn: {g: queries.gateway_place(conn, g) for g in gateways})
    for gateway, (known, place) in places.items():
        if not known or not principal.sees(place):
            raise HTTPException(
                status_code=403,
                detail=f"devices: gateway {gateway!r} is outside the place of token"
                f" {principal.name!r} ({principal.place})",
            )


@registry.get("/risk-points", response_model=list[RiskPointOut])
def list_risk_points(
    backend: BackendDep,
    principal: Viewer,
    page: PageDep,
    place: PlaceQuery = None,
    category: Category | None = None,
) -> list[RiskPointOut]:
    where, params = ["1"], []
    for subtree in (principal.place, place):
        if subtree is not None:
            clause, more = queries.subtree_clause("place", subtree)
            where.append(clause)
            params += more
    if category is not None:
        where.append("category = ?")
        params.append(category.value)
    rows = backend.store.read(
        lambda conn: conn.execute(
            f"SELECT {_RISK_COLUMNS} FROM risk_points WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY id LIMIT ? OFFSET ?",
            [*params, page.limit, page.offset],
        ).fetchall()
    )
    return [_risk_point(row) for row in rows]


@registry.post("/risk-points", response_model=RiskPointOut, status_code=201)
def create_risk_point(body: RiskPointIn, backend: BackendDep, principal: Operator) -> RiskPointOut:
    """Register a risk point; without ``metrics`` it takes its category's preset rules on
    each device. The risk engine judges it from the next reading on."""
    check_place_in_scope(principal, body.place, "place")
    rules = _rules(body.category, body.devices, body.metrics)
    devices = risk_points.devices_of(body.devices, rules)
    _check_devices_in_scope(backend, principal, devices)
    now_ms = backend.clock.wall_ms()

    def insert(db: Database) -> bool:
        cursor = db.execute(
            "INSERT OR IGNORE INTO risk_points (id, name, place, category, devices_json,"
            " rules_json, stale_after_s, source, created_ms, updated_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'api', ?, ?)",
            (body.id, body.name, body.place, body.category.value, json.dumps(devices),
             risk_points.dump_rules(rules), body.stale_after_s, now_ms, now_ms),
        )  # fmt: skip
        return bool(cursor.rowcount)

    if not backend.store.call(insert):
        raise HTTPException(status_code=409, detail=f"id: risk point {body.id!r} exists")
    _audit(
        backend,
        principal,
        "risk-point.create",
        f"risk-point:{body.id}",
        body.place,
        body.model_dump(exclude_none=True),
    )
    backend.alerts.refresh()
    return _risk_point(_read_risk_point(backend, body.id))


def _patched_rules(row: Any, body: RiskPointPatch, devices: list[str]) -> list[MetricRule]:
    """New rules for a patch: given ones; re-derived defaults if the point had its
    category's defaults; else its own rules, on the devices it keeps."""
    stored = risk_points.load_rules(row["rules_json"])
    category = body.category or _category(row["category"])
    if body.metrics is not None:
        return _rules(category, devices, body.metrics)
    if body.category is None and body.devices is None:
        return stored
    old_devices = json.loads(row["devices_json"])
    try:
        defaults = risk_points.resolve_rules(_category(row["category"]), old_devices, None)
    except risk_points.RulesError:
        defaults = None
    if stored == defaults:
        return _rules(category, devices, None)
    return [rule for rule in stored if rule.device in devices]


def _category(value: str) -> Category:
    try:
        return Category(value)
    except ValueError:  # registered before categories were checked
        return Category.OTHER


@registry.patch("/risk-points/{risk_point_id}", response_model=RiskPointOut)
def update_risk_point(
    risk_point_id: RiskPointId, body: RiskPointPatch, backend: BackendDep, principal: Operator
) -> RiskPointOut:
    row = _read_risk_point(backend, risk_point_id)
    if row is None or not principal.sees(row["place"]):
        raise not_found("risk point", risk_point_id)
    if row["source"] == risk_points.CONFIG:
        raise HTTPException(
            status_code=409,
            detail=f"risk point {risk_point_id!r} is declared in the controller's config"
            " ([[risk_points]]): change it there",
        )
    if body.place is not None:
        check_place_in_scope(principal, body.place, "place")
    given = body.devices if body.devices is not None else json.loads(row["devices_json"])
    rules = _patched_rules(row, body, given)
    devices = risk_points.devices_of(given, rules)
    _check_devices_in_scope(backend, principal, devices)
    changes: dict[str, Any] = body.model_dump(
        exclude_none=True, exclude={"devices", "metrics", "category"}
    )
    if body.category is not None:
        changes["category"] = body.category.value
    if body.devices is not None or body.metrics is not None or body.category is not None:
        changes["devices_json"] = json.dumps(devices)
        changes["rules_json"] = risk_points.dump_rules(rules)
    now_ms = backend.clock.wall_ms()
    if changes:
        sets = ", ".join(f"{key} = ?" for key in changes)
        backend.store.call(
            lambda db: db.execute(
                f"UPDATE risk_points SET {sets}, updated_ms = ? WHERE id = ?",  # noqa: S608
                [*changes.values(), now_ms, risk_point_id],
            )
        )
        _audit(
            backend,
            principal,
            "risk-point.update",
            f"risk-point:{risk_point_id}",
            row["place"],
            body.model_dump(exclude_none=True),
        )
        backend.alerts.refresh()
    return _risk_point(_read_risk_point(backend, risk_point_id))
