"""Server-side clustering by viewport and zoom: what the map draws, and how much."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.map.cluster import (
    CELL_SHIFT,
    DETAIL_ZOOM,
    MAX_FEATURES,
    MapPoint,
    PointIndex,
    Viewport,
    ViewportError,
    mercator,
)

RED, GREEN = 4, 0
CITY = Viewport(105.2, 28.1, 110.3, 32.3, 8)


def scattered(count: int, seed: int = 7) -> list[MapPoint]:
    rng = random.Random(seed)
    return [
        MapPoint(
            f"p{i}",
            rng.uniform(105.3, 110.2),
            rng.uniform(28.2, 32.2),
            rng.choice([0, 0, 0, 1, 2, 3]),
            f"cq/d{i % 5}/s{i % 7}",
        )
        for i in range(count)
    ]


def index_of(points: list[MapPoint]) -> PointIndex:
    index = PointIndex(5)
    index.replace_all(points)
    return index


def naive_cells(points: list[MapPoint], viewport: Viewport) -> dict[tuple[int, int], list[int]]:
    """The clusters by the definition: points in the box, by 64-px cell at the zoom."""
    x0, y0 = mercator(viewport.west, viewport.north)
    x1, y1 = mercator(viewport.east, viewport.south)
    scale = 2 ** (viewport.zoom + CELL_SHIFT)
    cells: dict[tuple[int, int], list[int]] = defaultdict(list)
    for p in points:
        x, y = mercator(p.lon, p.lat)
        if x0 <= x <= x1 and y0 <= y <= y1:
            cells[(math.floor(x * scale), math.floor(y * scale))].append(p.rank)
    return cells


def test_a_cluster_takes_the_colour_of_its_worst_point_and_counts_each_colour() -> None:
    points = [MapPoint(f"g{i}", 106.5 + i * 1e-5, 29.5, GREEN, "cq/a") for i in range(50)]
    points.append(MapPoint("the-red-one", 106.5002, 29.5, RED, "cq/a"))
    [cluster] = index_of(points).query(Viewport(106.0, 29.0, 107.0, 30.0, 9))
    assert (cluster.rank, cluster.count, cluster.id) == (RED, 51, None)
    assert cluster.ranks == (50, 0, 0, 0, 1)


def test_the_city_view_of_the_seeds_scale_ships_a_few_hundred_clusters_not_points() -> None:
    points = scattered(20_000)
    features = index_of(points).query(CITY)
    assert 10 < len(features) <= MAX_FEATURES
    assert sum(f.count for f in features) == 20_000


def test_a_streets_zoom_shows_its_points_one_by_one_with_their_ids() -> None:
    street = [MapPoint(f"s{i}", 106.577 + i * 2e-5, 29.564, i % 5, "cq/yz/jfb") for i in range(40)]
    features = index_of(street).query(Viewport(106.57, 29.56, 106.59, 29.57, DETAIL_ZOOM))
    assert len(features) == 40
    assert {f.id for f in features} == {p.id for p in street}
    assert all(f.count == 1 and f.ranks == () for f in features)
    assert [f.rank for f in features] == sorted(f.rank for f in features)  # worst drawn last


def test_a_lone_point_in_its_cell_comes_as_the_point_at_any_zoom() -> None:
    points = [MapPoint("alone", 108.0, 30.0, RED, "cq/b"), *scattered(100)]
    features = index_of(points).query(Viewport(107.99, 29.99, 108.01, 30.01, 12))
    assert [(f.id, f.count, f.rank) for f in features] == [("alone", 1, RED)]
    assert (features[0].lon, features[0].lat) == pytest.approx((108.0, 30.0), abs=1e-9)


def test_never_more_than_the_bound_even_where_points_are_dense() -> None:
    points = scattered(3000)
    features = index_of(points).query(CITY, max_features=50)
    assert len(features) <= 50
    assert sum(f.count for f in features) == 3000  # coarser cells, nothing dropped


def test_a_colour_change_shows_in_the_next_query_without_a_rebuild() -> None:
    points = [MapPoint(f"g{i}", 106.5 + i * 1e-4, 29.5, GREEN, "cq/a") for i in range(10)]
    index = index_of(points)
    viewport = Viewport(106.0, 29.0, 107.0, 30.0, 8)
    assert index.query(viewport)[0].rank == GREEN
    assert index.set_rank("g3", RED)
    assert index.query(viewport)[0].rank == RED
    assert not index.set_rank("unknown", RED)


def test_a_scoped_token_sees_only_the_points_of_its_places() -> None:
    points = scattered(2000)
    index = index_of(points)
    features = index.query(CITY, sees=lambda place: place.startswith("cq/d1/"), scope_key="cq/d1")
    assert sum(f.count for f in features) == sum(p.place.startswith("cq/d1/") for p in points)
    streets = index.query(
        Viewport(105.2, 28.1, 110.3, 32.3, 8), sees=lambda place: False, scope_key="none"
    )
    assert streets == []


def test_moving_adding_and_removing_points_is_seen_by_the_next_query() -> None:
    index = index_of([MapPoint("a", 106.5, 29.5, GREEN, "cq/a")])
    viewport = Viewport(106.0, 29.0, 107.0, 30.0, 10)
    index.upsert(MapPoint("b", 106.6, 29.6, RED, "cq/a"))
    assert {f.id for f in index.query(viewport)} == {"a", "b"}
    index.upsert(MapPoint("b", 108.6, 29.6, RED, "cq/a"))
    index.remove("a")
    assert index.query(viewport) == []


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    zoom=st.integers(6, 14),
    centre=st.tuples(st.floats(105.5, 110.0), st.floats(28.5, 32.0)),
)
def test_clusters_are_exactly_the_points_of_each_cell_in_the_box(
    seed: int, zoom: int, centre: tuple[float, float]
) -> None:
    points = scattered(1500, seed)
    half = 600 / (256 * 2**zoom) * 360 / 2  # a ~1200 px wide box
    viewport = Viewport(centre[0] - half, centre[1] - half * 0.8, centre[0] + half,
                        centre[1] + half * 0.8, zoom)  # fmt: skip
    expected = naive_cells(points, viewport)
    features = index_of(points).query(viewport, max_features=10**6)
    got = Counter((f.count, f.rank) for f in features)
    assert got == Counter((len(ranks), max(ranks)) for ranks in expected.values())


@pytest.mark.parametrize(
    ("bbox", "zoom", "message"),
    [
        ("105,28,111,33", 21, "zoom: 21 is outside"),
        ("105,28,111", 8, "four numbers"),
        ("105,28,x,33", 8, "four numbers"),
        ("nan,28,111,33", 8, "west nan"),
        ("111,28,105,33", 8, "west < east"),
        ("105,-95,111,33", 8, "south -95.0 is not a latitude"),
        ("105,28,111,33", 12, "wider or taller than 4096 px at zoom 12"),
    ],
)
def test_a_viewport_out_of_bounds_is_refused_naming_the_field(
    bbox: str, zoom: int, message: str
) -> None:
    with pytest.raises(ViewportError, match=message):
        Viewport.parse(bbox, zoom)


def test_a_rank_outside_the_index_is_refused() -> None:
    with pytest.raises(ValueError, match=r"rank 7 is outside 0\.\.4"):
        PointIndex(5).replace_all([MapPoint("x", 106.0, 29.0, 7, "cq")])


def test_a_point_without_coordinates_is_never_drawn_but_counts_for_its_place() -> None:
    nan = float("nan")
    index = index_of(
        [
            MapPoint("placed", 106.5, 29.5, GREEN, "cq/a/s1"),
            MapPoint("unplaced", nan, nan, RED, "cq/a/s1"),
            MapPoint("other", 106.6, 29.6, 2, "cq/a/s2"),
        ]
    )
    features = index.query(Viewport(-180, -85, 180, 85, 0))
    assert sum(f.count for f in features) == 2
    assert index.counts_by_place() == {"cq/a/s1": (1, 0, 0, 0, 1), "cq/a/s2": (0, 0, 1, 0, 0)}
