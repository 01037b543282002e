"""Place boundaries: the operator's GeoJSON, checked whole, in WGS84, simplified for display."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from controller.map import boundaries
from controller.map.boundaries import (
    BoundaryError,
    display_band,
    parse_boundaries,
    simplified_geometry,
    tolerance_deg,
)
from controller.map.datum import Datum, gcj02_to_wgs84
from edgewatch.chongqing import DISTRICTS, district_boundaries, district_boundaries_bytes

SQUARE = [[106.50, 29.50], [106.52, 29.50], [106.52, 29.52], [106.50, 29.52], [106.50, 29.50]]


def collection(*features: dict[str, Any]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()


def feature(place: object, geometry: object = None, **properties: object) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"place": place, **properties},
        "geometry": geometry
        if geometry is not None
        else {"type": "Polygon", "coordinates": [SQUARE]},
    }


def test_chongqings_38_districts_load_from_the_installed_package_shifted_to_wgs84() -> None:
    loaded = parse_boundaries(district_boundaries_bytes(), datum=Datum.GCJ02)
    assert len(loaded) == len(DISTRICTS) == 38
    assert {b.place for b in loaded} == {f"cq/{slug}" for slug, _ in DISTRICTS.values()}
    yuzhong = next(b for b in loaded if b.place == "cq/yuzhong")
    raw = next(
        f["geometry"]["coordinates"]
        for f in district_boundaries()["features"]
        if f["properties"]["place"] == "cq/yuzhong"
    )
    first_gcj = raw[0][0][0]
    assert yuzhong.polygons[0][0][0].tolist() == pytest.approx(gcj02_to_wgs84(*first_gcj))
    west, south, east, north = yuzhong.bbox
    assert 106.4 < west < east < 106.6
    assert 29.5 < south < north < 29.6


def test_a_file_already_in_wgs84_or_cgcs2000_is_taken_as_it_is() -> None:
    [square] = parse_boundaries(collection(feature("cq/yuzhong/jiefangbei", name="Jiefangbei")),
                                datum=Datum.WGS84)  # fmt: skip
    assert square.polygons[0][0].tolist() == SQUARE
    assert (square.name, square.vertices) == ("Jiefangbei", 5)


def test_every_problem_is_named_by_its_feature_and_nothing_is_loaded() -> None:
    open_ring = {"type": "Polygon", "coordinates": [SQUARE[:-1]]}
    projected = {"type": "Polygon", "coordinates": [[[12_000_000.0, 3_400_000.0]] * 5]}
    data = collection(
        feature("cq/ok"),
        feature("CQ/Upper Case"),
        feature("cq/open", open_ring),
        feature("cq/projected", projected),
        feature("cq/line", {"type": "LineString", "coordinates": SQUARE}),
        feature("cq/ok"),
        feature("cq/nan", {"type": "Polygon", "coordinates": [[[float("nan"), 1.0]] * 5]}),
    )
    with pytest.raises(BoundaryError) as caught:
        parse_boundaries(data.replace(b"NaN", b"1e999"), datum=Datum.WGS84)
    problems = caught.value.problems
    assert problems == [
        "feature 2: property 'place' must be a place path like 'cq/yuzhong' (lower-case"
        " segments, 1 to 4 of them), not 'CQ/Upper Case'",
        "feature 3 (cq/open): a ring must have 4 or more positions and end where it starts",
        "feature 4 (cq/projected): a coordinate lies outside lon -180..180 / lat -90..90"
        " (projected coordinates? give degrees)",
        "feature 5 (cq/line): geometry must be a Polygon or MultiPolygon, not 'LineString'",
        "feature 6 (cq/ok): the place is given twice",
        "feature 7 (cq/nan): a coordinate is not a finite number",
    ]
    assert str(caught.value).startswith("boundaries not loaded (6 problems): feature 2:")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not JSON"),
        (b'{"type": "Feature"}', "not a GeoJSON FeatureCollection"),
        (b'{"type": "FeatureCollection", "features": []}', "has no features"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
def test_a_file_that_is_not_a_feature_collection_is_refused_in_one_line(
    data: bytes, message: str
) -> None:
    with pytest.raises(BoundaryError, match=message):
        parse_boundaries(data, datum=Datum.WGS84)


def test_sizes_are_bounded_file_features_and_vertices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boundaries, "MAX_FILE_BYTES", 1000)
    with pytest.raises(BoundaryError, match="bytes; at most 1000"):
        parse_boundaries(b" " * 1001, datum=Datum.WGS84)
    monkeypatch.setattr(boundaries, "MAX_FILE_BYTES", 10**9)
    monkeypatch.setattr(boundaries, "MAX_FEATURES", 2)
    with pytest.raises(BoundaryError, match="3 features; at most 2"):
        parse_boundaries(collection(feature("a"), feature("b"), feature("c")), datum=Datum.WGS84)
    monkeypatch.setattr(boundaries, "MAX_VERTICES_PER_PLACE", 4)
    with pytest.raises(
        BoundaryError, match=r"feature 1 \(a\): a ring of 5 vertices; at most 4 per place"
    ):
        parse_boundaries(collection(feature("a")), datum=Datum.WGS84)


def test_outlines_are_simplified_for_the_zoom_they_are_drawn_at() -> None:
    loaded = parse_boundaries(district_boundaries_bytes(), datum=Datum.GCJ02)
    wanzhou = next(b for b in loaded if b.place == "cq/wanzhou")

    def vertices(band: int) -> int:
        geometry = simplified_geometry(wanzhou, band)
        assert geometry is not None
        return sum(len(ring) for polygon in geometry["coordinates"] for ring in polygon)

    counts = [vertices(band) for band in boundaries.DISPLAY_ZOOMS]
    assert counts == sorted(counts)
    assert counts[0] * 10 < wanzhou.vertices
    # The city's zoom keeps the outline's extent to within the tolerance.
    city = simplified_geometry(wanzhou, 8)
    assert city is not None
    kept = np.array([p for polygon in city["coordinates"] for p in polygon[0]])
    assert kept.min(axis=0) == pytest.approx(wanzhou.bbox[:2], abs=2 * tolerance_deg(8))
    assert kept.max(axis=0) == pytest.approx(wanzhou.bbox[2:], abs=2 * tolerance_deg(8))


def test_a_map_zoom_takes_the_finest_band_not_deeper_than_it() -> None:
    assert [display_band(z) for z in (0, 4, 5, 8, 9, 13, 18)] == [4, 4, 4, 8, 8, 12, 14]


def test_a_street_smaller_than_a_pixel_at_the_city_zoom_is_not_drawn_there() -> None:
    tiny = [[106.5, 29.5], [106.5001, 29.5], [106.5001, 29.5001], [106.5, 29.5001], [106.5, 29.5]]
    [street] = parse_boundaries(
        collection(feature("cq/yuzhong/tiny", {"type": "Polygon", "coordinates": [tiny]})),
        datum=Datum.WGS84,
    )
    assert simplified_geometry(street, 4) is None
    assert simplified_geometry(street, 14) is not None
