"""The map as the controller holds it: risk points and gateways in memory, and outlines.

``MapState.load()`` reads every risk point (placed or not: an unplaced one still colours its
place), the gateways with coordinates, and the stored outlines. From then on:

- a risk point's colour follows the risk engine (``AlertEngine.on_colours``, after the
  change committed), in place, so the next viewport query and the next boundary colours
  show it;
- an import or a registry write calls ``reload_points()``;
- gateways are re-read when a query finds them older than ``GATEWAY_REFRESH_S`` (their
  state lives in the fleet's health machine; a read of their few rows is cheap).

Everything here is in WGS84; ``features()`` and ``boundary_collection()`` shift the answer
to the datum the map's tiles are drawn in (``controller.map.datum``), and take the box in it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.config import ControllerConfig
from controller.map.boundaries import (
    DISPLAY_ZOOMS,
    Boundary,
    display_band,
    simplified_geometry,
)
from controller.map.cluster import Feature, MapPoint, PointIndex, Viewport
from controller.map.datum import Datum, from_wgs84, to_wgs84
from controller.store import map as map_store
from controller.store.sqlite import Store
from wire.risk import COLOURS_ASCENDING, Colour

# Ascending: a cluster shows the worst. "unknown": configured, never seen.
GATEWAY_STATES = ("online", "unknown", "degraded", "offline")
GATEWAY_RANK = {state: rank for rank, state in enumerate(GATEWAY_STATES)}
GATEWAY_REFRESH_S = 2.0
WARM_UP_TO = 10  # outline bands simplified at start


def _colour_rank(value: str) -> int:
    try:
        return Colour(value).rank
    except ValueError:
        return Colour.GREEN.rank


@dataclass(frozen=True, slots=True)
class Located:
    """Features of one layer in the asked datum."""

    features: list[Feature]
    lon: list[float]
    lat: list[float]


class MapState:
    def __init__(self, config: ControllerConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.risk = PointIndex(len(COLOURS_ASCENDING))
        self.gateways = PointIndex(len(GATEWAY_STATES))
        self._gateways_read_at = -math.inf
        self._gateways_lock = threading.Lock()
        self._boundaries: dict[str, Boundary] = {}
        self._geometry: dict[tuple[int, Datum], dict[str, dict[str, Any] | None]] = {}
        self._geometry_lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        locations = self.config.gateway_locations()
        if locations:
            self.store.call(lambda db: map_store.set_gateway_locations(db, locations))
        self.reload_points()
        self.reload_boundaries()
        # The city's and districts' outlines are simplified ahead, off the start's path, so
        # the first map opened does not wait for them (~0.5 s for Chongqing's districts).
        threading.Thread(target=self._warm, name="map-warm", daemon=True).start()

    def _warm(self) -> None:
        for band in (band for band in DISPLAY_ZOOMS if band <= WARM_UP_TO):
            self._geometries(band, self.config.map.tile_datum)

    def reload_points(self) -> None:
        """Every risk point again (after an import)."""
        rows = self.store.read(map_store.risk_point_locations)
        self.risk.replace_all(_risk_point(r) for r in rows)

    def reload_point(self, point_id: str) -> None:
        """One risk point again (after the registry created or changed it)."""
        row = self.store.read(lambda conn: map_store.risk_point_location(conn, point_id))
        if row is None:
            self.risk.remove(point_id)
        else:
            self.risk.upsert(_risk_point(row))

    def reload_boundaries(self) -> None:
        stored = self.store.read(map_store.boundaries)
        loaded = {}
        for b in stored:
            coordinates: list[list[list[list[float]]]] = b.geometry["coordinates"]  # type: ignore[assignment]
            polygons = [[np.asarray(ring, dtype=np.float64) for ring in p] for p in coordinates]
            loaded[b.place] = Boundary(place=b.place, name=b.name, polygons=polygons)
        with self._geometry_lock:
            self._boundaries = loaded
            self._geometry = {}

    def on_colours(self, colours: dict[str, Colour]) -> None:
        """The risk engine's committed colour changes."""
        for point, colour in colours.items():
            self.risk.set_rank(point, colour.rank)

    def _fresh_gateways(self) -> PointIndex:
        with self._gateways_lock:
            now = time.monotonic()
            if now - self._gateways_read_at >= GATEWAY_REFRESH_S:
                rows = self.store.read(map_store.gateway_locations)
                unknown = GATEWAY_RANK["unknown"]
                self.gateways.replace_all(
                    MapPoint(r.id, r.lon or 0.0, r.lat or 0.0, GATEWAY_RANK.get(r.state, unknown),
                             r.place or "")
                    for r in rows
                )  # fmt: skip
                self._gateways_read_at = now
        return self.gateways

    # -- queries ---------------------------------------------------------------------------

    def features(
        self,
        layer: str,
        viewport: Viewport,
        *,
        datum: Datum,
        sees: Callable[[str | None], bool],
        scope: str | None,
    ) -> Located:
        """The layer's features in a box given in ``datum``, positions in ``datum``."""
        index = self.risk if layer == "risk" else self._fresh_gateways()
        west, south = to_wgs84(datum, viewport.west, viewport.south)
        east, north = to_wgs84(datum, viewport.east, viewport.north)
        box = Viewport(
            max(-180.0, west), max(-90.0, south), min(180.0, east), min(90.0, north),
            viewport.zoom,
        )  # fmt: skip
        found = index.query(
            box,
            sees=None if scope is None else sees,
            scope_key=scope or "",
        )
        if not found:
            return Located([], [], [])
        lon, lat = from_wgs84(
            datum, np.array([f.lon for f in found]), np.array([f.lat for f in found])
        )
        return Located(found, lon.tolist(), lat.tolist())

    def boundary_collection(
        self,
        zoom: int,
        *,
        datum: Datum,
        sees: Callable[[str | None], bool],
        within: Viewport | None = None,
        geometry: bool = True,
    ) -> dict[str, Any]:
        """The outlines a token sees (those crossing ``within``, a box in ``datum``),
        simplified for ``zoom``, each with its colour counts; without ``geometry`` only
        the colours (what a live recolouring needs)."""
        band = display_band(zoom)
        geometries = self._geometries(band, datum)
        counts = self._counts_within(list(geometries))
        crossing = self._crossing(within, datum)
        features: list[dict[str, Any]] = []
        for place, shape in geometries.items():
            if shape is None or not sees(place) or (crossing is not None and place not in crossing):
                continue
            by_colour = counts.get(place, (0,) * len(COLOURS_ASCENDING))
            worst = max((c for c, n in zip(COLOURS_ASCENDING, by_colour, strict=True) if n),
                        key=lambda c: c.rank, default=Colour.GREEN)  # fmt: skip
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "place": place,
                        "name": self._boundaries[place].name,
                        "level": place.count("/"),
                        "colour": worst.value,
                        "points": sum(by_colour),
                        "counts": {
                            c.value: n
                            for c, n in zip(COLOURS_ASCENDING, by_colour, strict=True)
                            if n
                        },
                    },
                    "geometry": shape if geometry else None,
                }
            )
        features.sort(key=lambda f: (place_depth(f), str(f["properties"]["place"])))
        return {"type": "FeatureCollection", "features": features}

    def _crossing(self, within: Viewport | None, datum: Datum) -> set[str] | None:
        if within is None:
            return None
        west, south = to_wgs84(datum, within.west, within.south)
        east, north = to_wgs84(datum, within.east, within.north)
        margin = 0.01  # degrees: the datum shift and the simplification, with room
        return {
            place
            for place, b in self._boundaries.items()
            if b.bbox[0] <= east + margin
            and b.bbox[2] >= west - margin
            and b.bbox[1] <= north + margin
            and b.bbox[3] >= south - margin
        }

    def boundary_extent(self, sees: Callable[[str | None], bool]) -> tuple[float, ...] | None:
        """West, south, east, north (WGS84) of the outlines a token sees."""
        boxes = [b.bbox for place, b in self._boundaries.items() if sees(place)]
        if not boxes:
            return None
        return (
            min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes),
        )  # fmt: skip

    def _geometries(self, band: int, datum: Datum) -> dict[str, dict[str, Any] | None]:
        with self._geometry_lock:
            cached = self._geometry.get((band, datum))
            if cached is not None:
                return cached
            boundaries = self._boundaries
        built = {
            place: _shifted(simplified_geometry(b, band), datum) for place, b in boundaries.items()
        }
        with self._geometry_lock:
            if self._boundaries is boundaries:  # not reloaded meanwhile
                self._geometry[(band, datum)] = built
        return built

    def _counts_within(self, places: Sequence[str]) -> dict[str, tuple[int, ...]]:
        """Colour counts of the risk points at or below each of ``places``."""
        wanted = set(places)
        totals: dict[str, list[int]] = {}
        for leaf, counts in self.risk.counts_by_place().items():
            parts = leaf.split("/")
            for depth in range(1, len(parts) + 1):
                prefix = "/".join(parts[:depth])
                if prefix in wanted:
                    into = totals.setdefault(prefix, [0] * len(counts))
                    for i, n in enumerate(counts):
                        into[i] += n
        return {place: tuple(n) for place, n in totals.items()}


def _risk_point(row: map_store.LocatedRow) -> MapPoint:
    return MapPoint(
        row.id,
        row.lon if row.lon is not None else math.nan,
        row.lat if row.lat is not None else math.nan,
        _colour_rank(row.state),
        row.place or "",
    )


def place_depth(feature: dict[str, Any]) -> int:
    return int(feature["properties"]["level"])


def _shifted(geometry: dict[str, Any] | None, datum: Datum) -> dict[str, Any] | None:
    if geometry is None or datum is Datum.WGS84:
        return geometry
    polygons = []
    for polygon in geometry["coordinates"]:
        rings = []
        for ring in polygon:
            array = np.asarray(ring)
            lon, lat = from_wgs84(datum, array[:, 0], array[:, 1])
            rings.append(np.round(np.column_stack([lon, lat]), 5).tolist())
        polygons.append(rings)
    return {"type": "MultiPolygon", "coordinates": polygons}
