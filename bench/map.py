"""The city's one map at the seed's scale: viewport queries, a live colour change, first paint.

``python -m bench.map [--points 230000] [--queries 300] [--changes 8] [--paints 3]``

A real mosquitto and the controller as its own process, loaded the operator's way with
Chongqing's 38 real district outlines and ``--points`` synthetic risk points placed inside
them (``edgewatch.city_map``; a few colours written as a fixture). Then:

- viewport queries (``GET /api/v1/map/features``) of a 1280 x 800 px map at the city's zoom
  (the whole city), a district's (zoom 11, centred on a random district) and a street's
  (zoom 16, centred on a random point): ``--queries`` each, one after another over one
  keep-alive connection; p50/p99 per zoom and the most features one answer carried;
- a colour change: headless chromium holds the map open on the street of the slope behind
  Jiefangbei; a reading published on MQTT moves its colour (green, yellow, orange, red and
  back) through the risk engine; timed from the publish to the point's new colour drawn on
  the page, ``--changes`` times;
- first paint: the city's view opened ``--paints`` times in a fresh page, timed until its
  clusters and outlines are drawn.

The last line printed is one JSON object: ``viewport_p99_ms`` (the worst zoom),
``colour_change_s`` (the slowest change), ``first_paint_s`` (the median paint), the details
and the machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine, median
from edgewatch.broker import Mosquitto
from edgewatch.chongqing import synthetic_points
from edgewatch.city_map import CITY, STREET, load_city, publisher, tilt_reading
from edgewatch.processes import ProcessGroup
from edgewatch.system import LocalSystem
from tools.browser import chromium
from tools.map_screenshots import WATCHED_POINT, open_view, watched_point

WIDTH_PX, HEIGHT_PX = 1280, 800
ZOOMS = {"city": 8, "district": 11, "street": 16}
# tilt_deg -> the colour it gives the watched slope (thresholds in edgewatch.city_map)
CHANGES = ((2.5, "yellow"), (4.0, "orange"), (7.5, "red"), (0.5, "green"))


def box(lon: float, lat: float, zoom: int) -> str:
    """The bbox of a WIDTH x HEIGHT px map centred on (lon, lat) at ``zoom`` (approximate
    in latitude, as a map's own is at these sizes)."""
    import math  # noqa: PLC0415

    degrees_per_px = 360.0 / (256 * 2**zoom)
    half_w = WIDTH_PX / 2 * degrees_per_px
    half_h = HEIGHT_PX / 2 * degrees_per_px * math.cos(math.radians(lat))
    return f"{lon - half_w:.6f},{lat - half_h:.6f},{lon + half_w:.6f},{lat + half_h:.6f}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def viewport_queries(url: str, points: list[Any], queries: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    by_district: dict[str, list[Any]] = {}
    for p in points:
        by_district.setdefault(p.place.split("/")[1], []).append(p)
    centres = {
        "city": lambda: (107.75, 29.95),
        "district": lambda: _district_centre(rng, by_district),
        "street": lambda: _point_at(rng, points),
    }
    results: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
        for name, zoom in ZOOMS.items():
            times: list[float] = []
            most = 0
            for _ in range(queries):
                lon, lat = centres[name]()
                params: dict[str, str | int] = {
                    "bbox": box(lon, lat, zoom),
                    "zoom": zoom,
                    "layer": "risk",
                }
                started = time.perf_counter()
                response = client.get("/api/v1/map/features", params=params)
                times.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                most = max(most, len(response.json()["features"]))
            results[name] = {
                "zoom": zoom,
                "p50_ms": round(statistics.median(times), 1),
                "p99_ms": round(percentile(times, 0.99), 1),
                "features_max": most,
            }
    return results


def _point_at(rng: random.Random, points: list[Any]) -> tuple[float, float]:
    point = rng.choice(points)
    return point.lon, point.lat


def _district_centre(rng: random.Random, by_district: dict[str, list[Any]]) -> tuple[float, float]:
    members = by_district[rng.choice(sorted(by_district))]
    return (statistics.fmean(p.lon for p in members), statistics.fmean(p.lat for p in members))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.map")
    parser.add_argument("--points", type=int, default=230_000)
    parser.add_argument("--queries", type=int, default=300, help="per zoom")
    parser.add_argument("--changes", type=int, default=8)
    parser.add_argument("--paints", type=int, default=3)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    points = synthetic_points(args.points, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="edgewatch-bench-map-") as tmp:
        workdir = Path(tmp)
        with (
            Mosquitto(workdir / "broker") as broker,
            ProcessGroup(workdir / "logs") as procs,
            publisher(broker.port, "bench-map") as publish,
        ):
            system = LocalSystem(workdir, broker.port, procs)
            loading = time.perf_counter()
            load_city(system, points)
            load_s = time.perf_counter() - loading
            viewports = viewport_queries(system.base_url, points, args.queries, args.seed)
            with chromium(workdir / "profile", width=WIDTH_PX, height=HEIGHT_PX + 120) as browser:
                page = browser.pages[0] if browser.pages else browser.new_page()
                paints = [open_view(page, system.base_url, CITY) for _ in range(args.paints)]
                open_view(page, system.base_url, STREET)
                watched_point(page, "green").wait_for()
                changes: list[float] = []
                for seq in range(1, args.changes + 1):
                    value, colour = CHANGES[(seq - 1) % len(CHANGES)]
                    topic, payload = tilt_reading(seq, value)
                    started = time.perf_counter()
                    publish(topic, payload)
                    # Checked on every animation frame (a locator's wait backs off to
                    # 500 ms between checks, which would be measured too).
                    page.wait_for_function(
                        "selector => document.querySelector(selector) !== null",
                        arg=f"{WATCHED_POINT}.level-{colour}",
                        polling="raf",
                        timeout=10_000,
                    )
                    changes.append(time.perf_counter() - started)
    figures = {
        "bench": "map",
        "points": args.points,
        "viewport_p99_ms": max(v["p99_ms"] for v in viewports.values()),
        "colour_change_s": round(max(changes), 3),
        "first_paint_s": round(median(paints), 3),
        "viewport": viewports,
        "colour_change_median_s": round(median(changes), 3),
        "first_paints_s": [round(p, 3) for p in paints],
        "load_s": round(load_s, 1),
        "machine": machine(),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
