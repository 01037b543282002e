"""Geodetic datums of web map tiles, and the shift of a point between them.

Coordinates are stored in WGS84 (CGCS2000, China's national datum, differs from WGS84 by
centimetres: the same numbers serve both). Chinese web map tiles are drawn in other datums,
and a point drawn in the wrong one lands hundreds of metres off (about 300-600 m around
Chongqing), across a river from its slope:

- GCJ-02 ("Mars coordinates"): the obfuscated datum of most commercial tiles (AutoNavi/Amap,
  Tencent), and of boundary data exported from them;
- BD-09: GCJ-02 shifted once more, Baidu's tiles;
- Tianditu (the national platform) and government GIS draw in CGCS2000: no shift.

The forward formulas are the published ones; each inverse is solved by fixed-point
iteration to well under a millimetre (the usual one-step inverse is off by up to 2 m).
Every function takes floats or numpy arrays (element-wise). Points outside mainland China's
rough box are never shifted, as the tile vendors do.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

Coord = TypeVar("Coord", float, NDArray[np.float64])

# Krasovsky 1940, as GCJ-02 uses it.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
_INVERSE_ITERATIONS = 8  # each step gains ~3 digits; 1e-12 degrees after 4


class Datum(StrEnum):
    WGS84 = "wgs84"  # also CGCS2000 (Tianditu, government GIS)
    GCJ02 = "gcj02"
    BD09 = "bd09"


def outside_china(lon: Coord, lat: Coord) -> NDArray[np.bool_]:
    """Where the shift does not apply (the vendors' box around mainland China)."""
    return np.asarray((lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271))


def _delta(lon: Coord, lat: Coord) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.asarray(lon, dtype=np.float64) - 105.0
    y = np.asarray(lat, dtype=np.float64) - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    periodic_x = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    d_lat += periodic_x
    d_lat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    d_lat += (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    d_lon += periodic_x
    d_lon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    d_lon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad_lat = np.asarray(lat, dtype=np.float64) / 180.0 * np.pi
    magic = 1 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * np.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return d_lon, d_lat


def _out(value: NDArray[np.float64], like: Coord) -> Coord:
    if isinstance(like, np.ndarray):
        return value
    return float(value)


def wgs84_to_gcj02(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    d_lon, d_lat = _delta(lon, lat)
    keep = outside_china(lon, lat)
    out_lon = np.where(keep, lon, np.asarray(lon) + d_lon)
    out_lat = np.where(keep, lat, np.asarray(lat) + d_lat)
    return _out(out_lon, lon), _out(out_lat, lat)


def gcj02_to_wgs84(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """The WGS84 point whose GCJ-02 image is (lon, lat): fixed-point iteration."""
    target_lon = np.asarray(lon, dtype=np.float64)
    target_lat = np.asarray(lat, dtype=np.float64)
    guess_lon, guess_lat = target_lon, target_lat
    for _ in range(_INVERSE_ITERATIONS):
        image_lon, image_lat = wgs84_to_gcj02(guess_lon, guess_lat)
        guess_lon = guess_lon + (target_lon - image_lon)
        guess_lat = guess_lat + (target_lat - image_lat)
    return _out(guess_lon, lon), _out(guess_lat, lat)


def gcj02_to_bd09(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return _out(z * np.cos(theta) + 0.0065, lon), _out(z * np.sin(theta) + 0.006, lat)


def bd09_to_gcj02(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """The GCJ-02 point whose BD-09 image is (lon, lat): fixed-point iteration."""
    target_lon = np.asarray(lon, dtype=np.float64)
    target_lat = np.asarray(lat, dtype=np.float64)
    guess_lon, guess_lat = target_lon - 0.0065, target_lat - 0.006
    for _ in range(_INVERSE_ITERATIONS):
        image_lon, image_lat = gcj02_to_bd09(guess_lon, guess_lat)
        guess_lon = guess_lon + (target_lon - image_lon)
        guess_lat = guess_lat + (target_lat - image_lat)
    return _out(guess_lon, lon), _out(guess_lat, lat)


def from_wgs84(datum: Datum, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """A stored (WGS84) point as drawn on tiles of ``datum``."""
    if datum is Datum.WGS84:
        return lon, lat
    gcj = wgs84_to_gcj02(lon, lat)
    return gcj if datum is Datum.GCJ02 else gcj02_to_bd09(*gcj)


def to_wgs84(datum: Datum, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """A point given in ``datum`` (a tile's pixel, an imported file) in WGS84."""
    if datum is Datum.WGS84:
        return lon, lat
    gcj = (lon, lat) if datum is Datum.GCJ02 else bd09_to_gcj02(lon, lat)
    return gcj02_to_wgs84(*gcj)
