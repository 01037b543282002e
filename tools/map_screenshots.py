"""Screenshots of the console's map on the offline base layer, for docs/screenshots/.

    python -m tools.map_screenshots [--points 230000] [--out docs/screenshots]

Starts a private mosquitto and the controller, loads Chongqing's 38 real district outlines
and ``--points`` synthetic risk points inside them (``edgewatch.city_map``), then drives
headless chromium: the city, one district, one street, and a red point's popup (the slope
behind Jiefangbei, turned red by a reading through the risk engine). The page helpers here
are the ones the browser tests and ``bench.map`` use.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgewatch.broker import Mosquitto
from edgewatch.chongqing import synthetic_points
from edgewatch.city_map import (
    CITY,
    DISTRICT,
    STREET,
    WATCHED,
    View,
    load_city,
    publisher,
    tilt_reading,
)
from edgewatch.processes import ProcessGroup
from edgewatch.system import LocalSystem
from tools.browser import chromium

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

ROOT = Path(__file__).resolve().parents[1]
WATCHED_POINT = f'#map path.feature.point[data-point="{WATCHED}"]'


def open_view(page: Page, base_url: str, view: View) -> float:
    """Open the map at ``view``; seconds until its features and outlines are drawn."""
    page.goto("about:blank")
    started = time.perf_counter()
    page.goto(f"{base_url}/console/{view.hash()}")
    zoom = f'[data-zoom="{view.zoom}"]' if view.zoom is not None else ""
    page.locator(f'#map[data-state="ready"]{zoom}').wait_for()
    page.locator("#map path.outline").first.wait_for(state="attached")
    return time.perf_counter() - started


def watched_point(page: Page, level: str | None = None) -> Locator:
    suffix = f".level-{level}" if level else ""
    return page.locator(f"{WATCHED_POINT}{suffix}")


def open_red_popup(page: Page) -> Locator:
    """Click the red watched point; its popup, once it shows the point and its alert."""
    watched_point(page, "red").click()
    popup = page.locator(f'.map-popup[data-point="{WATCHED}"][data-colour="red"]')
    popup.wait_for()
    popup.locator("li[data-alert]").first.wait_for()
    return popup


def shoot(
    base_url: str, publish: Callable[[str, bytes], None], out: Path, profile: Path
) -> list[Path]:
    saved: list[Path] = []
    with chromium(profile, width=1280, height=860) as browser:
        page = browser.pages[0] if browser.pages else browser.new_page()

        def save(name: str) -> None:
            path = out / f"map-{name}.png"
            page.screenshot(path=str(path))
            saved.append(path)

        for view in (CITY, DISTRICT):
            open_view(page, base_url, view)
            save(view.name)
        open_view(page, base_url, STREET)
        watched_point(page).wait_for()
        save("street")
        publish(*tilt_reading(1, 7.5))
        watched_point(page, "red").wait_for()
        open_red_popup(page)
        save("red-point")
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.map_screenshots")
    parser.add_argument("--points", type=int, default=230_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    points = synthetic_points(args.points)
    with tempfile.TemporaryDirectory(prefix="edgewatch-map-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "broker") as broker, ProcessGroup(workdir / "logs") as procs:
            system = LocalSystem(workdir, broker.port, procs)
            load_city(system, points)
            with publisher(broker.port) as publish:
                saved = shoot(system.base_url, publish, args.out, workdir / "profile")
            for path in saved:
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
