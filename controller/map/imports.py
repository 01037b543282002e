"""Risk points in bulk, with coordinates: a CSV or GeoJSON file, checked whole.

``edgewatch controller import-points FILE`` (and ``POST /api/v1/risk-points/import``) takes

- CSV, UTF-8 with a header row: ``id,name,place,category,lon,lat`` and optionally
  ``devices`` (device names ``<gateway>.<device>`` separated by spaces); or
- a GeoJSON FeatureCollection of ``Point`` features whose properties hold the same fields
  (``devices`` a list or a space-separated string).

Every row is checked before anything is written, and every bad row is named (its number,
and its id when it has one) with what is wrong; a file with any bad row imports nothing.
Coordinates are in the file's declared datum (``--datum``, WGS84/CGCS2000 by default) and
are stored in WGS84.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from controller.config import PLACE_PATTERN
from controller.map.datum import Datum, to_wgs84
from controller.map.problems import FileProblemsError, feature_list
from wire.risk import Category

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ROWS = 500_000
MAX_DEVICES = 100
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")  # as POST /risk-points takes
DEVICE_PATTERN = re.compile(r"^[a-z0-9-]{1,63}\.[A-Za-z0-9_.:-]{1,64}$")
_PLACE = re.compile(PLACE_PATTERN)
REQUIRED = ("id", "name", "place", "category", "lon", "lat")
OPTIONAL = ("devices",)


class FileFormat(StrEnum):
    CSV = "csv"
    GEOJSON = "geojson"


class PointsFileError(FileProblemsError):
    """A file that cannot be imported; ``problems`` names every bad row."""

    outcome = "nothing imported"


@dataclass(frozen=True, slots=True)
class PointRow:
    """One risk point of the file, coordinates in WGS84."""

    row: int  # as the operator counts it: the CSV's line, or the feature's number
    id: str
    name: str
    place: str
    category: Category
    lon: float
    lat: float
    devices: tuple[str, ...] | None  # None: the file has no devices column


def format_of(filename: str) -> FileFormat:
    lower = filename.lower()
    if lower.endswith((".geojson", ".json")):
        return FileFormat.GEOJSON
    if lower.endswith(".csv"):
        return FileFormat.CSV
    raise PointsFileError([f"{filename}: name it .csv or .geojson (or give the format)"])


def parse_points(data: bytes, *, file_format: FileFormat, datum: Datum) -> list[PointRow]:
    """Every row as a PointRow, or PointsFileError naming each bad one (nothing half-read)."""
    if len(data) > MAX_FILE_BYTES:
        raise PointsFileError([f"the file is {len(data)} bytes; at most {MAX_FILE_BYTES}"])
    records = _csv_records(data) if file_format is FileFormat.CSV else _geojson_records(data)
    problems: list[str] = []
    rows: list[PointRow] = []
    seen: dict[str, int] = {}
    for number, record in records:
        if len(rows) + len(problems) >= MAX_ROWS:
            raise PointsFileError([f"more than {MAX_ROWS} rows; split the file"])
        try:
            row = _row(number, record)
        except _RowError as exc:
            problems.append(str(exc))
            continue
        if row.id in seen:
            problems.append(f"row {number} ({row.id}): the id is also on row {seen[row.id]}")
            continue
        seen[row.id] = number
        rows.append(row)
    if problems:
        raise PointsFileError(problems)
    if not rows:
        raise PointsFileError(["the file has no rows"])
    return _shifted(rows, datum)


def _shifted(rows: list[PointRow], datum: Datum) -> list[PointRow]:
    if datum is Datum.WGS84:
        return rows
    import numpy as np  # noqa: PLC0415 (only for a file in another datum)

    lon, lat = to_wgs84(datum, np.array([r.lon for r in rows]), np.array([r.lat for r in rows]))
    return [
        PointRow(r.row, r.id, r.name, r.place, r.category, float(x), float(y), r.devices)
        for r, x, y in zip(rows, lon.tolist(), lat.tolist(), strict=True)
    ]


class _RowError(ValueError):
    pass


def _csv_records(data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PointsFileError([f"not UTF-8 text (byte {exc.start})"]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise PointsFileError(["the file is empty"]) from None
    except csv.Error as exc:
        raise PointsFileError([f"line 1: {exc}"]) from None
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing or unknown or len(set(header)) != len(header):
        say = []
        if missing:
            say.append(f"missing {', '.join(missing)}")
        if unknown:
            say.append(f"unknown {', '.join(repr(c) for c in unknown)}")
        if len(set(header)) != len(header):
            say.append("a column is named twice")
        raise PointsFileError(
            [f"line 1 (the header): {'; '.join(say)}; the columns are {', '.join(REQUIRED)}"
             " and optionally devices"]
        )  # fmt: skip
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise PointsFileError([f"line {reader.line_num}: {exc}"]) from None
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield reader.line_num, {"_width": (len(values), len(header))}
            continue
        yield reader.line_num, dict(zip(header, values, strict=True))


def _geojson_records(data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    features = feature_list(data, PointsFileError)
    for number, feature in enumerate(features, start=1):
        record: dict[str, Any] = {}
        if isinstance(feature, dict) and isinstance(feature.get("properties"), dict):
            record = dict(feature["properties"])
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if (
            isinstance(geometry, dict)
            and geometry.get("type") == "Point"
            and isinstance(coordinates, list)
            and len(coordinates) in (2, 3)
        ):
            record["lon"], record["lat"] = coordinates[0], coordinates[1]
        else:
            record["_geometry"] = True
        yield number, record


def _row(number: int, record: dict[str, Any]) -> PointRow:
    ident = record.get("id")
    where = f"row {number}" + (f" ({ident})" if isinstance(ident, str) and ident else "")
    if "_width" in record:
        got, want = record["_width"]
        raise _RowError(f"{where}: {got} fields; the header has {want}")
    if record.get("_geometry"):
        raise _RowError(f"{where}: the geometry must be a GeoJSON Point [lon, lat]")
    if not isinstance(ident, str) or not ID_PATTERN.match(ident):
        raise _RowError(
            f"{where}: id must be 1 to 64 of a-z 0-9 _ . - (starting with a letter or digit),"
            f" not {ident!r}"
        )
    name = record.get("name")
    name = ident if name in (None, "") else name
    if not isinstance(name, str) or len(name) > 128:
        raise _RowError(f"{where}: name must be text of at most 128 characters")
    place = record.get("place")
    if not isinstance(place, str) or not _PLACE.match(place) or len(place) > 255:
        raise _RowError(
            f"{where}: place must be a path like 'cq/yuzhong/jiefangbei', not {place!r}"
        )
    try:
        category = Category(str(record.get("category")))
    except ValueError:
        choices = ", ".join(c.value for c in Category)
        raise _RowError(
            f"{where}: category {record.get('category')!r} is not one of {choices}"
        ) from None
    lon = _number(record.get("lon"), "lon", -180.0, 180.0, where)
    lat = _number(record.get("lat"), "lat", -90.0, 90.0, where)
    return PointRow(number, ident, name, place, category, lon, lat, _devices(record, where))


def _number(value: object, field: str, low: float, high: float, where: str) -> float:
    try:
        number = float(value) if isinstance(value, (int, float, str)) and value != "" else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise _RowError(f"{where}: {field} must be a number in degrees, not {value!r}")
    if not low <= number <= high:
        raise _RowError(f"{where}: {field} {number:g} is outside {low:g}..{high:g}")
    return number


def _devices(record: dict[str, Any], where: str) -> tuple[str, ...] | None:
    if "devices" not in record:
        return None
    raw = record["devices"]
    if raw is None:
        return ()
    if isinstance(raw, str):
        names = raw.split()
    elif isinstance(raw, list) and all(isinstance(d, str) for d in raw):
        names = raw
    else:
        raise _RowError(f"{where}: devices must be device names separated by spaces")
    if len(names) > MAX_DEVICES:
        raise _RowError(f"{where}: {len(names)} devices; at most {MAX_DEVICES}")
    for device in names:
        if not DEVICE_PATTERN.match(device):
            raise _RowError(f"{where}: device {device!r} is not '<gateway>.<device>'")
    return tuple(dict.fromkeys(names))
