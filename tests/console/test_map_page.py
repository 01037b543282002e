"""The console's map in a real browser, on the offline base layer of Chongqing's districts.

The controller runs as a process, loaded the operator's way (outlines and points imported
through ``edgewatch controller import-*``); one point's colour is raised through the risk
engine by a reading published on MQTT, and the open page follows it without a reload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edgewatch.broker import Mosquitto
from edgewatch.chongqing import synthetic_points
from edgewatch.city_map import CITY, DISTRICT, STREET, WATCHED, load_city, publisher, tilt_reading
from edgewatch.processes import ProcessGroup
from edgewatch.system import LocalSystem
from tools.map_screenshots import open_red_popup, open_view, watched_point

if TYPE_CHECKING:
    from playwright.sync_api import Page

POINTS = 3000


@dataclass
class City:
    system: LocalSystem
    publish: Callable[[str, bytes], None]


@pytest.fixture
def city(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[City]:
    with ProcessGroup(tmp_path / "logs") as procs, publisher(mosquitto.port) as publish:
        system = LocalSystem(tmp_path, mosquitto.port, procs)
        load_city(system, synthetic_points(POINTS))
        yield City(system, publish)


def test_the_city_district_and_street_views_draw_clusters_points_and_outlines(
    city: City, page: Page
) -> None:
    base = city.system.base_url
    open_view(page, base, CITY)
    assert page.locator("#map path.outline").count() == 38
    map_element = page.locator("#map")
    assert map_element.get_attribute("data-points") == str(POINTS + 1)
    clusters = page.locator("#map .feature.cluster")
    assert 10 < clusters.count() <= 5000
    assert "offline base layer" in page.locator("#map-status").inner_text()

    open_view(page, base, DISTRICT)
    assert int(map_element.get_attribute("data-points") or 0) < POINTS

    open_view(page, base, STREET)
    point = watched_point(page, "green")
    point.wait_for()
    assert page.locator("#map .feature.cluster").count() == 0  # a street: one by one


def test_a_red_reading_turns_the_point_and_its_district_red_on_the_open_page(
    city: City, page: Page
) -> None:
    open_view(page, city.system.base_url, STREET)
    watched_point(page, "green").wait_for()
    yuzhong = page.locator("#map path.outline.colour-red")
    reds_before = yuzhong.count()
    city.publish(*tilt_reading(1, 7.5))
    watched_point(page, "red").wait_for()  # live: no reload
    popup = open_red_popup(page)
    text = popup.inner_text()
    assert "Slope behind Jiefangbei" in text
    assert "gw-demo-1.tilt-1" in text
    assert "red, raised" in text
    page.locator("#map path.outline.colour-red").nth(reds_before).wait_for(state="attached")
    page.click(f'.map-popup[data-point="{WATCHED}"] li[data-alert] a')
    page.locator('article.alert[data-colour="red"]').first.wait_for()
