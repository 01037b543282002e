"""Points on the map, clustered on the server by viewport and zoom.

The seed's city has 230,000 risk points; a browser can draw a few thousand. A viewport query
(a box and a zoom) answers with at most ``MAX_FEATURES`` features: the points in the box
grouped into square cells of ``CELL_PX`` screen pixels at that zoom, each cluster with its
count per colour and the colour of its worst point; a cell holding one point answers the
point itself, and from ``DETAIL_ZOOM`` on (a street) every point comes one by one.

How it stays fast (p99 well under the 150 ms target at every zoom; bench.map): the points
live in numpy arrays sorted by their Morton (Z-order) code at ``LEVELS`` bits per axis of
Web Mercator. A cell at any zoom is then one contiguous run of that order, so grouping is a
shift and a compare over the points in the box (no sort, no hash per query), and counts,
worst colours and centroids are ``reduceat`` over the runs. A colour change is written in
place; adding or removing points rebuilds the arrays on the next query (~0.1 s for the
seed's city), so bulk imports replace everything at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

LEVELS = 24  # bits per axis of the Morton code: cells down to ~2 m
MAX_ZOOM = 20  # the deepest zoom a query may ask for (LEVELS - CELL_SHIFT leaves room)
CELL_SHIFT = 2  # 256-px tiles in cells of 64 px: four cells per tile side
CELL_PX = 256 >> CELL_SHIFT
DETAIL_ZOOM = 16  # a street: every point on its own
MAX_FEATURES = 5000  # never more in one answer
MAX_VIEWPORT_PX = 4096  # a box wider or taller than this many pixels at its zoom is refused
MAX_LAT = 85.05112878  # Web Mercator's edge


class ViewportError(ValueError):
    """A viewport query that cannot be answered as asked; the message names the field."""


@dataclass(frozen=True, slots=True)
class Viewport:
    """A box (WGS84 degrees) and a web map zoom, checked on construction."""

    west: float
    south: float
    east: float
    north: float
    zoom: int

    def __post_init__(self) -> None:
        if not 0 <= self.zoom <= MAX_ZOOM:
            raise ViewportError(f"zoom: {self.zoom} is outside 0..{MAX_ZOOM}")
        for name in ("west", "east"):
            value = getattr(self, name)
            if not (math.isfinite(value) and -180.0 <= value <= 180.0):
                raise ViewportError(f"bbox: {name} {value} is not a longitude in -180..180")
        for name in ("south", "north"):
            value = getattr(self, name)
            if not (math.isfinite(value) and -90.0 <= value <= 90.0):
                raise ViewportError(f"bbox: {name} {value} is not a latitude in -90..90")
        if not (self.west < self.east and self.south < self.north):
            raise ViewportError("bbox: give west,south,east,north with west < east, south < north")
        x0, y0 = mercator(self.west, self.north)
        x1, y1 = mercator(self.east, self.south)
        world_px = 256 * 2**self.zoom
        if max(x1 - x0, y1 - y0) * world_px > MAX_VIEWPORT_PX:
            raise ViewportError(
                f"bbox: wider or taller than {MAX_VIEWPORT_PX} px at zoom {self.zoom};"
                " zoom in or ask for a smaller box"
            )

    @classmethod
    def parse(cls, bbox: str, zoom: int) -> Viewport:
        """``bbox=west,south,east,north`` as a query string gives it."""
        parts = bbox.split(",")
        if len(parts) != 4 or len(bbox) > 200:
            raise ViewportError("bbox: give four numbers west,south,east,north")
        try:
            west, south, east, north = (float(p) for p in parts)
        except ValueError:
            raise ViewportError("bbox: give four numbers west,south,east,north") from None
        return cls(west, south, east, north, zoom)


def mercator(lon: float, lat: float) -> tuple[float, float]:
    """Web Mercator in [0, 1] (x east, y south), latitude clamped to the projection's edge."""
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    sin = math.sin(math.radians(lat))
    return (lon + 180.0) / 360.0, 0.5 - math.log((1 + sin) / (1 - sin)) / (4 * math.pi)


def _mercator_arrays(
    lon: NDArray[np.float64], lat: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    sin = np.sin(np.radians(np.clip(lat, -MAX_LAT, MAX_LAT)))
    return (lon + 180.0) / 360.0, 0.5 - np.log((1 + sin) / (1 - sin)) / (4 * np.pi)


def _unmercator(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    lon = x * 360.0 - 180.0
    lat = np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * y))))
    return lon, lat


def _spread_bits(v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """0b1011 -> 0b01000101: interleave zeros, the half of a Morton code."""
    for shift, mask in (
        (16, 0x0000FFFF0000FFFF),
        (8, 0x00FF00FF00FF00FF),
        (4, 0x0F0F0F0F0F0F0F0F),
        (2, 0x3333333333333333),
        (1, 0x5555555555555555),
    ):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def morton(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.uint64]:
    top = (1 << LEVELS) - 1
    ix = np.clip((x * (1 << LEVELS)).astype(np.int64), 0, top).astype(np.uint64)
    iy = np.clip((y * (1 << LEVELS)).astype(np.int64), 0, top).astype(np.uint64)
    return _spread_bits(ix) | (_spread_bits(iy) << np.uint64(1))


@dataclass(frozen=True, slots=True)
class MapPoint:
    """A thing with a place on the map: a risk point (rank: its colour) or a gateway."""

    id: str
    lon: float  # WGS84; NaN: not on the map (it still counts for its place)
    lat: float
    rank: int  # 0 (best) .. RANKS-1 (worst): what a cluster shows the worst of
    place: str


@dataclass(frozen=True, slots=True)
class Feature:
    """One thing to draw: a point, or a cluster of ``count`` points (ranks: count per rank)."""

    lon: float
    lat: float
    rank: int  # the point's, or the worst in the cluster
    count: int
    id: str | None = None  # a single point's id
    ranks: tuple[int, ...] = ()  # a cluster's count per rank


@dataclass(slots=True)
class _Arrays:
    ids: list[str]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    codes: NDArray[np.uint64]
    rank: NDArray[np.int8]
    place: NDArray[np.int32]
    places: list[str]
    position: dict[str, int] = field(default_factory=dict)


class PointIndex:
    """Every mapped point of one kind in memory, answering viewport queries.

    ``ranks``: how many ranks there are (five colours; gateway states). Thread-safe: the
    writer (colour changes, reloads) and the API's readers share a lock for the swaps only.
    """

    def __init__(self, ranks: int) -> None:
        self.ranks = ranks
        self._lock = threading.Lock()
        self._points: dict[str, MapPoint] = {}
        self._arrays: _Arrays | None = None
        self._scope_cache: dict[tuple[int, str], NDArray[np.bool_]] = {}

    def __len__(self) -> int:
        return len(self._points)

    # -- changes ---------------------------------------------------------------------------

    def replace_all(self, points: Iterable[MapPoint]) -> None:
        fresh = {p.id: self._checked(p) for p in points}
        with self._lock:
            self._points = fresh
            self._arrays = None

    def upsert(self, point: MapPoint) -> None:
        point = self._checked(point)
        with self._lock:
            old = self._points.get(point.id)
            self._points[point.id] = point
            arrays = self._arrays
            moved = old is None or (old.lon, old.lat, old.place) != (
                point.lon,
                point.lat,
                point.place,
            )
            if moved:
                self._arrays = None
            elif arrays is not None:
                arrays.rank[arrays.position[point.id]] = point.rank

    def remove(self, point_id: str) -> None:
        with self._lock:
            if self._points.pop(point_id, None) is not None:
                self._arrays = None

    def set_rank(self, point_id: str, rank: int) -> bool:
        """A point's new colour (or state), in place; False if the point is not mapped."""
        with self._lock:
            old = self._points.get(point_id)
            if old is None:
                return False
            self._points[point_id] = MapPoint(old.id, old.lon, old.lat, rank, old.place)
            if self._arrays is not None:
                self._arrays.rank[self._arrays.position[point_id]] = rank
            return True

    def get(self, point_id: str) -> MapPoint | None:
        return self._points.get(point_id)

    def counts_by_place(self) -> dict[str, tuple[int, ...]]:
        """Every place with points, and how many of them have each rank (placed or not)."""
        arrays = self._current()
        if not arrays.ids:
            return {}
        flat = np.bincount(
            arrays.place.astype(np.int64) * self.ranks + arrays.rank,
            minlength=len(arrays.places) * self.ranks,
        ).reshape(len(arrays.places), self.ranks)
        return {place: tuple(row) for place, row in zip(arrays.places, flat.tolist(), strict=True)}

    def _checked(self, point: MapPoint) -> MapPoint:
        if not 0 <= point.rank < self.ranks:
            raise ValueError(f"{point.id}: rank {point.rank} is outside 0..{self.ranks - 1}")
        return point

    def _current(self) -> _Arrays:
        with self._lock:
            if self._arrays is None:
                self._arrays = self._build(list(self._points.values()))
                self._scope_cache.clear()
            return self._arrays

    @staticmethod
    def _build(points: Sequence[MapPoint]) -> _Arrays:
        lon = np.array([p.lon for p in points], np.float64)
        lat = np.array([p.lat for p in points], np.float64)
        with np.errstate(invalid="ignore"):
            x, y = _mercator_arrays(lon, lat)
        placed = np.isfinite(x) & np.isfinite(y)
        codes = morton(np.where(placed, x, 1.0), np.where(placed, y, 1.0))  # unplaced: last
        order = np.argsort(codes, kind="stable")
        places = sorted({p.place for p in points})
        place_number = {place: i for i, place in enumerate(places)}
        rank = np.array([p.rank for p in points], np.int8)[order]
        place = np.array([place_number[p.place] for p in points], np.int32)[order]
        ids = [points[i].id for i in order.tolist()]
        return _Arrays(
            ids=ids,
            x=x[order],
            y=y[order],
            codes=codes[order],
            rank=rank,
            place=place,
            places=places,
            position={pid: i for i, pid in enumerate(ids)},
        )

    # -- queries ---------------------------------------------------------------------------

    def query(
        self,
        viewport: Viewport,
        *,
        sees: Callable[[str], bool] | None = None,
        scope_key: str = "",
        max_features: int = MAX_FEATURES,
    ) -> list[Feature]:
        """The features in ``viewport``: clusters, or points at a street's zoom.

        ``sees(place)`` limits the answer to the places a token sees (``scope_key`` names
        that scope, to cache its place mask). Worst last, so a map draws it on top.
        """
        arrays = self._current()
        x0, y0 = mercator(viewport.west, viewport.north)
        x1, y1 = mercator(viewport.east, viewport.south)
        # NaN (a point not on the map) compares false: never inside.
        inside = (arrays.x >= x0) & (arrays.x <= x1) & (arrays.y >= y0) & (arrays.y <= y1)
        if sees is not None:
            inside &= self._scope_mask(arrays, sees, scope_key)[arrays.place]
        chosen = np.flatnonzero(inside)
        if chosen.size == 0:
            return []
        if viewport.zoom >= DETAIL_ZOOM and chosen.size <= max_features:
            return self._points_of(arrays, chosen)
        zoom = viewport.zoom
        while True:
            features = self._clusters(arrays, chosen, zoom)
            if len(features) <= max_features or zoom == 0:
                return features[-max_features:]
            zoom -= 1

    def _scope_mask(
        self, arrays: _Arrays, sees: Callable[[str], bool], scope_key: str
    ) -> NDArray[np.bool_]:
        key = (id(arrays), scope_key)
        mask = self._scope_cache.get(key)
        if mask is None or not scope_key:
            mask = np.fromiter((sees(p) for p in arrays.places), np.bool_, len(arrays.places))
            if scope_key:
                self._scope_cache[key] = mask
        return mask

    def _points_of(self, arrays: _Arrays, chosen: NDArray[np.intp]) -> list[Feature]:
        chosen = chosen[np.argsort(arrays.rank[chosen], kind="stable")]
        lon, lat = _unmercator(arrays.x[chosen], arrays.y[chosen])
        return [
            Feature(lon=lo, lat=la, rank=r, count=1, id=arrays.ids[i])
            for i, lo, la, r in zip(
                chosen.tolist(), lon.tolist(), lat.tolist(), arrays.rank[chosen].tolist(),
                strict=True,
            )
        ]  # fmt: skip

    def _clusters(self, arrays: _Arrays, chosen: NDArray[np.intp], zoom: int) -> list[Feature]:
        shift = np.uint64(2 * (LEVELS - (zoom + CELL_SHIFT)))
        cells = arrays.codes[chosen] >> shift
        starts = np.flatnonzero(np.concatenate(([True], cells[1:] != cells[:-1])))
        counts = np.diff(np.append(starts, cells.size))
        rank = arrays.rank[chosen]
        worst = np.maximum.reduceat(rank, starts)
        per_rank = np.stack(
            [np.add.reduceat((rank == r).astype(np.int32), starts) for r in range(self.ranks)],
            axis=1,
        )
        mean_x = np.add.reduceat(arrays.x[chosen], starts) / counts
        mean_y = np.add.reduceat(arrays.y[chosen], starts) / counts
        lon, lat = _unmercator(mean_x, mean_y)
        # A lone point keeps its own position and id.
        first = chosen[starts]
        single_lon, single_lat = _unmercator(arrays.x[first], arrays.y[first])
        lone = counts == 1
        lon = np.where(lone, single_lon, lon)
        lat = np.where(lone, single_lat, lat)
        order = np.argsort(worst, kind="stable")
        features = []
        for k in order.tolist():
            count = int(counts[k])
            features.append(
                Feature(
                    lon=float(lon[k]),
                    lat=float(lat[k]),
                    rank=int(worst[k]),
                    count=count,
                    id=arrays.ids[int(first[k])] if count == 1 else None,
                    ranks=() if count == 1 else tuple(per_rank[k].tolist()),
                )
            )
        return features
