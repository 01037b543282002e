"""Datum shifts for display, checked on conversion pairs published by widely used converters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.map.datum import (
    Datum,
    bd09_to_gcj02,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_gcj02,
)

# (input lon, lat) -> expected (lon, lat), from the test suite of the coordtransform
# library (JavaScript; ported to Rust, Go and Java with the same figures).
COORDTRANSFORM = [
    (wgs84_to_gcj02, (116.404, 39.915), (116.41024449916938, 39.91640428150164)),
    (gcj02_to_bd09, (116.404, 39.915), (116.41036949371029, 39.92133699351021)),
]
# Pairs whose publishers use another rounding of the constants (agree to ~1 cm), and the
# published one-step inverses (good to ~2 m; ours iterate to far better).
OTHER_PUBLISHED = [
    (wgs84_to_gcj02, (121.0917077, 30.6107779), (121.09626935575027, 30.608604331756705), 1e-6),
    (
        lambda lon, lat: from_wgs84(Datum.BD09, lon, lat),
        (121.0917077, 30.6107779),
        (121.10271732371203, 30.61484572185035),
        1e-6,
    ),
    (wgs84_to_gcj02, (116.0, 40.0), (116.006141221789, 40.001213650174), 1e-6),
    (gcj02_to_wgs84, (116.404, 39.915), (116.39775550083061, 39.91359571849836), 2e-5),
    (bd09_to_gcj02, (116.404, 39.915), (116.39762729119315, 39.90865673957631), 2e-5),
]

CHINA_LON = st.floats(min_value=73.0, max_value=135.0)
CHINA_LAT = st.floats(min_value=18.0, max_value=53.0)


@pytest.mark.parametrize(("convert", "given_point", "expected"), COORDTRANSFORM)
def test_forward_shifts_match_the_published_pairs(  # type: ignore[no-untyped-def]
    convert, given_point, expected
) -> None:
    assert convert(*given_point) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("convert", "given_point", "expected", "tolerance"), OTHER_PUBLISHED)
def test_other_published_pairs_agree_within_their_stated_precision(  # type: ignore[no-untyped-def]
    convert, given_point, expected, tolerance
) -> None:
    assert convert(*given_point) == pytest.approx(expected, abs=tolerance)


def test_chongqing_shifts_by_hundreds_of_metres_so_a_wrong_datum_misplaces_a_point() -> None:
    lon, lat = 106.5770, 29.5647  # Jiefangbei, WGS84
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    metres = np.hypot((gcj_lon - lon) * 96_900, (gcj_lat - lat) * 111_000)
    assert 300 < metres < 700


def test_tianditu_and_cgcs2000_tiles_take_the_stored_coordinates_unchanged() -> None:
    assert from_wgs84(Datum.WGS84, 106.5, 29.5) == (106.5, 29.5)
    assert to_wgs84(Datum.WGS84, 106.5, 29.5) == (106.5, 29.5)


def test_points_outside_china_are_not_shifted() -> None:
    assert wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert gcj02_to_wgs84(2.35, 48.85) == (2.35, 48.85)


@given(CHINA_LON, CHINA_LAT, st.sampled_from(list(Datum)))
def test_to_and_from_every_datum_round_trip_below_a_millimetre(
    lon: float, lat: float, datum: Datum
) -> None:
    shown = from_wgs84(datum, lon, lat)
    back = to_wgs84(datum, *shown)
    assert back == pytest.approx((lon, lat), abs=1e-8)  # 1e-8 degrees: ~1 mm


def test_arrays_are_converted_element_wise_like_single_points() -> None:
    lons = np.array([106.5770, 108.4, 2.35])
    lats = np.array([29.5647, 30.8, 48.85])
    for datum in Datum:
        array_lon, array_lat = from_wgs84(datum, lons, lats)
        singles = [from_wgs84(datum, float(a), float(b)) for a, b in zip(lons, lats, strict=True)]
        np.testing.assert_allclose(np.column_stack([array_lon, array_lat]), singles, atol=1e-12)
