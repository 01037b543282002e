"""The map: where risk points and gateways are, clustered per viewport; place outlines.

| endpoint | what |
| --- | --- |
| ``GET /map/config`` | the tiles (or none: the offline base layer), their datum, the extent |
| ``GET /map/features?layer=risk&bbox=W,S,E,N&zoom=Z&datum=D`` | clusters or points |
| ``GET /map/boundaries?zoom=Z&datum=D`` | the outlines, each with its colour counts |
| ``POST /map/boundaries?datum=D`` | load outlines (GeoJSON body; operator) |
| ``POST /risk-points/import?format=csv&datum=D`` | risk points in bulk (``api/risk_points``) |

Boxes and answers are in ``datum`` (default WGS84 / CGCS2000): the console passes the datum
of its tiles so points land where the tiles draw them. A token scoped to a place sees only
the points, gateways and outlines at or below it. Every size is bounded: the box by its
pixels at the zoom, the answer by ``MAX_FEATURES``, the uploads by bytes, rows and vertices.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from controller.access import Principal
from controller.api.deps import (
    ApiBackend,
    BackendDep,
    Operator,
    Viewer,
    audit_ok,
    check_place_in_scope,
)
from controller.map.boundaries import BoundaryError, parse_boundaries
from controller.map.cluster import DETAIL_ZOOM, MAX_FEATURES, MAX_ZOOM, Viewport, ViewportError
from controller.map.datum import Datum, from_wgs84
from controller.map.state import GATEWAY_STATES
from controller.store import map as map_store
from wire.risk import COLOURS_ASCENDING

maps = APIRouter(prefix="/map", tags=["map"])

DatumQuery = Annotated[Datum, Query(description="the datum of the box and of the answer")]
ZoomQuery = Annotated[int, Query(ge=0, le=MAX_ZOOM, description="web map zoom")]
MAX_BOUNDARY_BYTES = 64 * 1024 * 1024


class MapConfigOut(BaseModel):
    tile_url: str | None  # None: draw the places' outlines (offline base layer)
    tile_datum: Datum
    tile_attribution: str
    tile_max_zoom: int
    extent: list[float] | None  # west, south, east, north in tile_datum: what to show first
    detail_zoom: int  # from this zoom on, points come one by one
    max_features: int
    colours: list[str]  # ascending
    gateway_states: list[str]  # ascending


class MapFeatureOut(BaseModel):
    kind: Literal["point", "cluster"]
    id: str | None  # a point's id
    lon: float
    lat: float
    count: int
    level: str  # a risk point's colour or a gateway's state; a cluster's worst
    counts: dict[str, int] | None  # a cluster's count per colour or state


class MapFeaturesOut(BaseModel):
    layer: str
    zoom: int
    datum: Datum
    points: int  # how many points the features stand for
    features: list[MapFeatureOut]


class LoadedOut(BaseModel):
    created: int
    updated: int


@maps.get("/config", response_model=MapConfigOut)
def map_config(backend: BackendDep, principal: Viewer) -> MapConfigOut:
    settings = backend.config.map
    extent = backend.map.boundary_extent(principal.sees)
    if extent is not None:
        west, south = from_wgs84(settings.tile_datum, extent[0], extent[1])
        east, north = from_wgs84(settings.tile_datum, extent[2], extent[3])
        extent = (west, south, east, north)
    return MapConfigOut(
        tile_url=settings.tile_url,
        tile_datum=settings.tile_datum,
        tile_attribution=settings.tile_attribution,
        tile_max_zoom=settings.tile_max_zoom,
        extent=list(extent) if extent is not None else None,
        detail_zoom=DETAIL_ZOOM,
        max_features=MAX_FEATURES,
        colours=[c.value for c in COLOURS_ASCENDING],
        gateway_states=list(GATEWAY_STATES),
    )


@maps.get("/features", response_model=MapFeaturesOut)
def map_features(  # noqa: PLR0917 (FastAPI query parameters)
    backend: BackendDep,
    principal: Viewer,
    bbox: Annotated[str, Query(max_length=200, description="west,south,east,north")],
    zoom: ZoomQuery,
    layer: Annotated[Literal["risk", "gateways"], Query()] = "risk",
    datum: DatumQuery = Datum.WGS84,
) -> MapFeaturesOut:
    """Clusters (each with its worst colour and its count per colour) or, at a street's
    zoom, the points one by one: never more than ``max_features``."""
    try:
        viewport = Viewport.parse(bbox, zoom)
    except ViewportError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    located = backend.map.features(
        layer, viewport, datum=datum, sees=principal.sees, scope=principal.place
    )
    levels = [c.value for c in COLOURS_ASCENDING] if layer == "risk" else list(GATEWAY_STATES)
    features = [
        MapFeatureOut(
            kind="point" if f.count == 1 else "cluster",
            id=f.id,
            lon=round(lon, 6),
            lat=round(lat, 6),
            count=f.count,
            level=levels[f.rank],
            counts={levels[r]: n for r, n in enumerate(f.ranks) if n} if f.ranks else None,
        )
        for f, lon, lat in zip(located.features, located.lon, located.lat, strict=True)
    ]
    return MapFeaturesOut(
        layer=layer,
        zoom=zoom,
        datum=datum,
        points=sum(f.count for f in features),
        features=features,
    )


@maps.get("/boundaries")
def map_boundaries(  # noqa: PLR0917 (FastAPI query parameters)
    backend: BackendDep,
    principal: Viewer,
    zoom: ZoomQuery,
    datum: DatumQuery = Datum.WGS84,
    bbox: Annotated[
        str | None, Query(max_length=200, description="only the outlines crossing this box")
    ] = None,
    geometry: Annotated[bool, Query(description="false: only places and colours")] = True,
) -> dict[str, object]:
    """A GeoJSON FeatureCollection: each outline the token sees, simplified for ``zoom``,
    with ``place``, ``name``, ``level``, ``colour`` (its worst point's) and ``counts``."""
    within = None
    if bbox is not None:
        try:
            within = Viewport.parse(bbox, zoom)
        except ViewportError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
    collection: dict[str, object] = backend.map.boundary_collection(
        zoom, datum=datum, sees=principal.sees, within=within, geometry=geometry
    )
    return collection


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413, detail=f"body: at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=f"body: at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@maps.post("/boundaries", response_model=LoadedOut)
async def load_boundaries(  # noqa: PLR0917 (FastAPI query parameters)
    request: Request,
    backend: BackendDep,
    principal: Operator,
    datum: Annotated[Datum, Query(description="the file's datum (Amap exports: gcj02)")],
    place_property: Annotated[str, Query(max_length=64)] = "place",
    name_property: Annotated[str, Query(max_length=64)] = "name",
) -> LoadedOut:
    """Load place outlines from a GeoJSON FeatureCollection (the body): all or nothing."""
    data = await bounded_body(request, MAX_BOUNDARY_BYTES)
    return await run_in_threadpool(
        _load_boundaries, backend, principal, data, datum, place_property, name_property
    )


def _load_boundaries(  # noqa: PLR0917
    backend: ApiBackend,
    principal: Principal,
    data: bytes,
    datum: Datum,
    place_property: str,
    name_property: str,
) -> LoadedOut:
    try:
        loaded = parse_boundaries(
            data, datum=datum, place_property=place_property, name_property=name_property
        )
    except BoundaryError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    for boundary in loaded:
        check_place_in_scope(principal, boundary.place, f"boundary {boundary.place}")
    rows = [
        map_store.BoundaryRow(b.place, b.name, json.dumps(b.geometry()), b.vertices) for b in loaded
    ]
    now_ms = backend.clock.wall_ms()
    created, replaced = backend.store.call(
        lambda db: map_store.save_boundaries(db, rows, now_ms), timeout_s=60
    )
    audit_ok(backend, principal, "map.boundaries.load", "map:boundaries", principal.place,
             {"places": len(rows), "datum": datum.value})  # fmt: skip
    backend.map.reload_boundaries()
    return LoadedOut(created=created, updated=replaced)


__all__ = ["bounded_body", "maps"]
