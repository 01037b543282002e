"""Risk points in the registry: one table with the config's ``[[risk_points]]``.

A point registered here is judged by the risk engine from the next reading on (the engine
refreshes after every write). Without ``metrics`` it takes its category's preset on each of
its devices (``wire.risk_presets.default_rules``). Writes need an operator inside its place,
watching only devices of gateways it sees, and are audited; points declared in the config
are changed there (409).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from sqlite_utils import Database
from starlette.concurrency import run_in_threadpool

from controller.access import Principal
from controller.api.deps import (
    ApiBackend,
    BackendDep,
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
    unprocessable,
)
from controller.api.map import bounded_body
from controller.config import Located, RiskMetricConfig
from controller.fleet import queries
from controller.map.datum import Datum
from controller.map.imports import MAX_FILE_BYTES, FileFormat, PointsFileError, parse_points
from controller.risk import points as risk_points
from controller.store import map as map_store
from wire.risk import Category, Colour, MetricRule

points = APIRouter(prefix="/risk-points", tags=["registry", "risk"])

DeviceRef = Annotated[
    str, Field(max_length=128, pattern=r"^[a-z0-9-]{1,63}\.[A-Za-z0-9_.:-]{1,64}$")
]  # '<gateway>.<device>'
MetricSpecs = Annotated[list[RiskMetricConfig], Field(min_length=1, max_length=100)]
StaleAfterS = Annotated[float, Field(gt=0, le=86400 * 30)]


class RiskPointIn(InputModel, Located):  # lon, lat: WGS84 / CGCS2000, both or neither
    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: Label
    place: Place
    category: Category
    devices: list[DeviceRef] = Field(default=[], max_length=100)
    # As in the config's [[risk_points.metrics]]; None: the category's preset on each device.
    metrics: MetricSpecs | None = None
    stale_after_s: StaleAfterS = 300.0


class RiskPointPatch(InputModel, Located):
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
    lon: float | None  # WGS84 / CGCS2000; None: not on the map
    lat: float | None


class ImportOut(BaseModel):
    created: int
    updated: int


_RISK_COLUMNS = (
    "id, name, place, category, devices_json, rules_json, stale_after_s, source, colour,"
    " colour_since_ms, created_ms, updated_ms, lon, lat"
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


@points.get("", response_model=list[RiskPointOut])
def list_risk_points(
    backend: BackendDep,
    principal: Viewer,
    page: PageDep,
    place: PlaceQuery = None,
    category: Category | None = None,
) -> list[RiskPointOut]:
    where = (
        queries.Where()
        .within("place", principal.place, place)
        .equals("category", category.value if category is not None else None)
    )
    rows = backend.store.read(
        lambda conn: conn.execute(
            f"SELECT {_RISK_COLUMNS} FROM risk_points WHERE {where.sql}"  # noqa: S608
            " ORDER BY id LIMIT ? OFFSET ?",
            [*where.params, page.limit, page.offset],
        ).fetchall()
    )
    return [_risk_point(row) for row in rows]


@points.post("", response_model=RiskPointOut, status_code=201)
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
            " rules_json, stale_after_s, source, created_ms, updated_ms, lon, lat)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'api', ?, ?, ?, ?)",
            (body.id, body.name, body.place, body.category.value, json.dumps(devices),
             risk_points.dump_rules(rules), body.stale_after_s, now_ms, now_ms, body.lon,
             body.lat),
        )  # fmt: skip
        return bool(cursor.rowcount)

    if not backend.store.call(insert):
        raise HTTPException(status_code=409, detail=f"id: risk point {body.id!r} exists")
    audit_ok(
        backend,
        principal,
        "risk-point.create",
        f"risk-point:{body.id}",
        body.place,
        body.model_dump(exclude_none=True),
    )
    backend.alerts.refresh()
    backend.map.reload_point(body.id)
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


@points.patch("/{risk_point_id}", response_model=RiskPointOut)
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
        audit_ok(
            backend,
            principal,
            "risk-point.update",
            f"risk-point:{risk_point_id}",
            row["place"],
            body.model_dump(exclude_none=True),
        )
        backend.alerts.refresh()
        backend.map.reload_point(risk_point_id)
    return _risk_point(_read_risk_point(backend, risk_point_id))


@points.get("/{risk_point_id}", response_model=RiskPointOut)
def get_risk_point(
    risk_point_id: RiskPointId, backend: BackendDep, principal: Viewer
) -> RiskPointOut:
    row = _read_risk_point(backend, risk_point_id)
    if row is None or not principal.sees(row["place"]):
        raise not_found("risk point", risk_point_id)
    return _risk_point(row)


@points.post("/import", response_model=ImportOut)
async def import_risk_points(
    request: Request,
    backend: BackendDep,
    principal: Operator,
    file_format: Annotated[FileFormat, Query(alias="format")],
    datum: Annotated[Datum, Query(description="the file's datum")] = Datum.WGS84,
) -> ImportOut:
    """Create or update risk points from a CSV or GeoJSON file (the body), with their
    coordinates: every bad row is named (422) and then nothing is imported."""
    data = await bounded_body(request, MAX_FILE_BYTES)
    return await run_in_threadpool(_import, backend, principal, data, file_format, datum)


def _import(
    backend: ApiBackend, principal: Principal, data: bytes, file_format: FileFormat, datum: Datum
) -> ImportOut:
    try:
        rows = parse_points(data, file_format=file_format, datum=datum)
    except PointsFileError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    existing = backend.store.read(lambda conn: map_store.point_sources(conn, [r.id for r in rows]))
    problems: list[str] = []
    imported: list[map_store.ImportedPoint] = []
    gateways_seen: dict[str, bool] = {}
    for row in rows:
        where = f"row {row.row} ({row.id})"
        source, old_place = existing.get(row.id, ("", None))
        if not principal.sees(row.place) or (source and not principal.sees(old_place)):
            problems.append(f"{where}: place {row.place!r} is outside the place of token"
                            f" {principal.name!r} ({principal.place})")  # fmt: skip
            continue
        if source == risk_points.CONFIG:
            problems.append(f"{where}: declared in the controller's config; change it there")
            continue
        devices_json = rules_json = None
        if row.devices is not None:
            try:
                rules = risk_points.resolve_rules(row.category, list(row.devices), None)
            except risk_points.RulesError as exc:
                problems.append(f"{where}: {exc}")
                continue
            outside = _gateways_outside(backend, principal, row.devices, gateways_seen)
            if outside:
                problems.append(f"{where}: gateway {outside!r} is outside the place of token"
                                f" {principal.name!r}")  # fmt: skip
                continue
            devices_json = json.dumps(risk_points.devices_of(list(row.devices), rules))
            rules_json = risk_points.dump_rules(rules)
        imported.append(
            map_store.ImportedPoint(row.id, row.name, row.place, row.category.value, row.lon,
                                    row.lat, devices_json, rules_json)
        )  # fmt: skip
    if problems:
        raise HTTPException(status_code=422, detail=str(PointsFileError(problems)))
    now_ms = backend.clock.wall_ms()
    backend.store.call(lambda db: map_store.import_points(db, imported, now_ms), timeout_s=120)
    updated = sum(p.id in existing for p in imported)
    detail = {"rows": len(imported), "format": file_format.value, "datum": datum.value}
    audit_ok(backend, principal, "risk-point.import", "risk-points", principal.place, detail)
    backend.alerts.refresh()
    backend.map.reload_points()
    return ImportOut(created=len(imported) - updated, updated=updated)


def _gateways_outside(
    backend: ApiBackend, principal: Principal, devices: tuple[str, ...], seen: dict[str, bool]
) -> str | None:
    """The first gateway of ``devices`` a scoped token may not watch, if any."""
    if principal.place is None:
        return None
    for device in devices:
        gateway = device.partition(".")[0]
        if gateway not in seen:
            known, place = backend.store.read(partial(queries.gateway_place, gateway=gateway))
            seen[gateway] = known and principal.sees(place)
        if not seen[gateway]:
            return gateway
    return None
