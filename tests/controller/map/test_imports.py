"""Risk points in bulk from CSV or GeoJSON: every bad row named, nothing half-read."""

from __future__ import annotations

import json

import pytest

from controller.map import imports
from controller.map.datum import Datum, gcj02_to_wgs84
from controller.map.imports import FileFormat, PointsFileError, format_of, parse_points
from wire.risk import Category

CSV = FileFormat.CSV
GEOJSON = FileFormat.GEOJSON
HEADER = "id,name,place,category,lon,lat,devices\n"


def test_a_csv_gives_one_point_per_row_with_its_line_number() -> None:
    data = (
        "\ufeff" + HEADER + "slope-7,Slope at Eling,cq/yuzhong/eling,slope,106.55,29.55,"
        "gw-a.tilt-1 gw-a.tilt-2\n"
        "\n"
        "bridge-1,,cq/yuzhong/chaotianmen,bridge,106.58,29.56,\n"
    ).encode()
    rows = parse_points(data, file_format=CSV, datum=Datum.WGS84)
    assert [(r.row, r.id, r.name, r.category, r.lon, r.lat, r.devices) for r in rows] == [
        (
            2,
            "slope-7",
            "Slope at Eling",
            Category.SLOPE,
            106.55,
            29.55,
            ("gw-a.tilt-1", "gw-a.tilt-2"),
        ),
        (4, "bridge-1", "bridge-1", Category.BRIDGE, 106.58, 29.56, ()),
    ]


def test_without_a_devices_column_the_points_devices_are_left_as_they_are() -> None:
    data = b"id,name,place,category,lon,lat\np1,P1,cq/a,gas,106.5,29.5\n"
    [row] = parse_points(data, file_format=CSV, datum=Datum.WGS84)
    assert row.devices is None


def test_a_geojson_feature_collection_of_points_gives_the_same_rows() -> None:
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [106.55, 29.55]},
                "properties": {
                    "id": "slope-7",
                    "name": "Eling",
                    "place": "cq/yuzhong/eling",
                    "category": "slope",
                    "devices": ["gw-a.tilt-1"],
                },
            }
        ],
    }
    [row] = parse_points(json.dumps(document).encode(), file_format=GEOJSON, datum=Datum.WGS84)
    assert (row.row, row.id, row.lon, row.lat, row.devices) == (
        1, "slope-7", 106.55, 29.55, ("gw-a.tilt-1",)
    )  # fmt: skip


def test_coordinates_in_gcj02_or_bd09_are_stored_in_wgs84() -> None:
    data = (HEADER + "p1,P1,cq/a,gas,106.58,29.56,\n").encode()
    [row] = parse_points(data, file_format=CSV, datum=Datum.GCJ02)
    assert (row.lon, row.lat) == pytest.approx(gcj02_to_wgs84(106.58, 29.56), abs=1e-12)
    [baidu] = parse_points(data, file_format=CSV, datum=Datum.BD09)
    assert abs(baidu.lon - 106.58) > 0.005


def test_every_bad_row_is_named_with_what_is_wrong_and_nothing_is_returned() -> None:
    data = (
        HEADER
        + "ok-1,Fine,cq/a,slope,106.5,29.5,\n"
        + "Bad Id,X,cq/a,slope,106.5,29.5,\n"
        + "p3,X,CQ/A,slope,106.5,29.5,\n"
        + "p4,X,cq/a,volcano,106.5,29.5,\n"
        + "p5,X,cq/a,slope,east,29.5,\n"
        + "p6,X,cq/a,slope,106.5,95,\n"
        + "p7,X,cq/a,slope,106.5,29.5,not-a-device\n"
        + "p8,X,cq/a,slope,106.5\n"
        + "ok-1,Again,cq/a,slope,106.5,29.5,\n"
        + "p10,X,cq/a,slope,nan,29.5,\n"
    ).encode()
    with pytest.raises(PointsFileError) as caught:
        parse_points(data, file_format=CSV, datum=Datum.WGS84)
    assert caught.value.problems == [
        "row 3 (Bad Id): id must be 1 to 64 of a-z 0-9 _ . - (starting with a letter or"
        " digit), not 'Bad Id'",
        "row 4 (p3): place must be a path like 'cq/yuzhong/jiefangbei', not 'CQ/A'",
        "row 5 (p4): category 'volcano' is not one of water_level, rainfall, slope, gas, fire,"
        " bridge, other",
        "row 6 (p5): lon must be a number in degrees, not 'east'",
        "row 7 (p6): lat 95 is outside -90..90",
        "row 8 (p7): device 'not-a-device' is not '<gateway>.<device>'",
        "row 9: 5 fields; the header has 7",
        "row 10 (ok-1): the id is also on row 2",
        "row 11 (p10): lon must be a number in degrees, not 'nan'",
    ]
    assert str(caught.value).startswith("nothing imported (9 problems): row 3 (Bad Id)")


def test_a_geojson_feature_that_is_not_a_point_is_named() -> None:
    document = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": []},
                      "properties": {"id": "p1"}}],
    }  # fmt: skip
    with pytest.raises(
        PointsFileError, match=r"row 1 \(p1\): the geometry must be a GeoJSON Point"
    ):
        parse_points(json.dumps(document).encode(), file_format=GEOJSON, datum=Datum.WGS84)


@pytest.mark.parametrize(
    ("data", "file_format", "message"),
    [
        (b"", CSV, "the file is empty"),
        (b"id,name,place\n", CSV, "line 1 \\(the header\\): missing category, lon, lat"),
        (HEADER.replace("devices", "colour").encode(), CSV, "unknown 'colour'"),
        (b"\xff\xfe", CSV, "not UTF-8 text"),
        (HEADER.encode(), CSV, "the file has no rows"),
        (b"{", GEOJSON, "not JSON"),
        (b'{"type": "Feature"}', GEOJSON, "not a GeoJSON FeatureCollection"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_in_one_line(
    data: bytes, file_format: FileFormat, message: str
) -> None:
    with pytest.raises(PointsFileError, match=message):
        parse_points(data, file_format=file_format, datum=Datum.WGS84)


def test_size_and_row_count_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_FILE_BYTES", 100)
    with pytest.raises(PointsFileError, match="bytes; at most 100"):
        parse_points(b" " * 101, file_format=CSV, datum=Datum.WGS84)
    monkeypatch.setattr(imports, "MAX_FILE_BYTES", 10**9)
    monkeypatch.setattr(imports, "MAX_ROWS", 2)
    data = (HEADER + "".join(f"p{i},P,cq/a,gas,106.5,29.5,\n" for i in range(3))).encode()
    with pytest.raises(PointsFileError, match="more than 2 rows; split the file"):
        parse_points(data, file_format=CSV, datum=Datum.WGS84)


def test_the_format_follows_the_files_name() -> None:
    assert format_of("points.CSV") is CSV
    assert format_of("points.geojson") is GEOJSON
    with pytest.raises(PointsFileError, match=r"name it \.csv or \.geojson"):
        format_of("points.xlsx")
