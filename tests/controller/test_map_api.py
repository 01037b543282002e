"""The map's API on a running controller: imports, outlines, viewport queries, live colours."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import wire
from controller.api import map as map_api
from controller.cli import main as controller_cli
from controller.map.datum import wgs84_to_gcj02
from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.chongqing import district_boundaries_bytes
from edgewatch.waiting import wait_until
from tests.controller.support import (
    Publisher,
    api,
    as_,
    birth,
    config_for,
    health,
    make_token,
    now_ms,
)

JFB = "cq/yuzhong/jiefangbei"
CTM = "cq/yuzhong/chaotianmen"
CITY_BOX = {"bbox": "105.2,28.1,110.3,32.3", "zoom": 8}
JFB_BOX = {"bbox": "106.570,29.556,106.590,29.572", "zoom": 16}
WATCHED = {
    "id": "jfb-slope",
    "name": "Slope behind Jiefangbei",
    "category": "other",
    "place": f"{JFB}/grid-1",
    "lon": 106.5795,
    "lat": 29.5601,
    "metrics": [{"device": "gw-a.tilt-1", "metric": "tilt_deg", "thresholds": {"red": 5.0}}],
}


def points_csv(rows: list[tuple[str, str, float, float]]) -> bytes:
    lines = ["id,name,place,category,lon,lat"]
    lines += [f"{pid},{pid},{place},slope,{lon},{lat}" for pid, place, lon, lat in rows]
    return ("\n".join(lines) + "\n").encode()


STREET_POINTS = [(f"jfb-{i}", f"{JFB}/grid-2", 106.575 + i * 0.0004, 29.562) for i in range(20)] + [
    (f"ctm-{i}", f"{CTM}/grid-1", 106.585 + i * 0.0004, 29.566) for i in range(10)
]


@pytest.fixture
def running(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Controller]:
    extra = {"risk_points": [WATCHED]}
    with Controller(
        config_for(tmp_path, mosquitto, gateways={"gw-a": JFB}, extra=extra)
    ) as controller:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5)
        yield controller


def load(client: httpx.Client) -> None:
    imported = client.post(
        "/api/v1/risk-points/import", params={"format": "csv"}, content=points_csv(STREET_POINTS)
    )
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"created": 30, "updated": 0}
    boundaries = client.post(
        "/api/v1/map/boundaries", params={"datum": "gcj02"}, content=district_boundaries_bytes()
    )
    assert boundaries.status_code == 200, boundaries.text
    assert boundaries.json() == {"created": 38, "updated": 0}


def features(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/map/features", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def colour_of(client: httpx.Client, place: str) -> str:
    collection = client.get("/api/v1/map/boundaries", params={"zoom": 8}).json()
    [found] = [f for f in collection["features"] if f["properties"]["place"] == place]
    return str(found["properties"]["colour"])


def test_the_city_clusters_a_street_shows_points_and_a_red_reading_turns_both_red(
    running: Controller, mosquitto: Mosquitto
) -> None:
    client = api(running.api_url)
    load(client)
    city = features(client, **CITY_BOX)
    assert city["points"] == 31  # the imported 30 and the configured one
    assert all(f["kind"] == "cluster" for f in city["features"] if f["count"] > 1)
    street = features(client, **JFB_BOX)
    assert {f["kind"] for f in street["features"]} == {"point"}
    assert "jfb-slope" in {f["id"] for f in street["features"]}
    assert colour_of(client, "cq/yuzhong") == "green"

    with Publisher(mosquitto) as gateway:
        reading = wire.Reading(seq=1, ts_ms=now_ms(), device="tilt-1", metric="tilt_deg",
                               value=9.0, unit="deg")  # fmt: skip
        gateway.publish(wire.topic_for("gw-a", wire.TopicKind.READINGS),
                        wire.ReadingBatch(session=1, readings=[reading]))  # fmt: skip
        wait_until(
            lambda: any(
                f["id"] == "jfb-slope" and f["level"] == "red"
                for f in features(client, **JFB_BOX)["features"]
            ),
            timeout_s=10,
            message="the slope red on the street's map",
        )
    [cluster] = [f for f in features(client, **CITY_BOX)["features"] if f["count"] > 1]
    assert cluster["level"] == "red"
    assert cluster["counts"] == {"green": 30, "red": 1}
    assert colour_of(client, "cq/yuzhong") == "red"
    assert colour_of(client, "cq/jiangbei") == "green"
    detail = client.get("/api/v1/risk-points/jfb-slope").json()
    assert (detail["lon"], detail["lat"], detail["colour"]) == (106.5795, 29.5601, "red")


def test_the_answer_is_in_the_tiles_datum_when_asked(running: Controller) -> None:
    client = api(running.api_url)
    load(client)
    box = {"bbox": "106.570,29.556,106.600,29.575", "zoom": 16}
    wgs = {f["id"]: (f["lon"], f["lat"]) for f in features(client, **box)["features"]}
    gcj = {
        f["id"]: (f["lon"], f["lat"]) for f in features(client, **box, datum="gcj02")["features"]
    }
    assert gcj["jfb-slope"] == pytest.approx(wgs84_to_gcj02(*wgs["jfb-slope"]), abs=1e-6)
    assert running.api_url  # the config's own view: outlines come back shifted too
    shifted = client.get("/api/v1/map/boundaries", params={"zoom": 8, "datum": "gcj02"}).json()
    plain = client.get("/api/v1/map/boundaries", params={"zoom": 8}).json()
    first = shifted["features"][0]["geometry"]["coordinates"][0][0][0]
    original = plain["features"][0]["geometry"]["coordinates"][0][0][0]
    assert first == pytest.approx(list(wgs84_to_gcj02(*original)), abs=2e-5)


def test_a_street_token_sees_its_streets_points_and_no_other_outline(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "controller.db"
    admin = make_token(db, capsys, "admin")
    street = make_token(db, capsys, "operator", JFB)
    config = config_for(tmp_path, mosquitto, gateways={"gw-a": JFB}, auth="tokens")
    with Controller(config) as running:
        load(as_(running.api_url, admin))
        client = as_(running.api_url, street)
        found = features(client, bbox="106.560,29.550,106.600,29.580", zoom=16)
        assert {f["id"].split("-")[0] for f in found["features"]} == {"jfb"}
        assert client.get("/api/v1/map/boundaries", params={"zoom": 8}).json()["features"] == []
        # Importing into another street, or outlines of a district, is refused whole.
        refused = client.post(
            "/api/v1/risk-points/import",
            params={"format": "csv"},
            content=points_csv(
                [
                    ("mine", f"{JFB}/grid-3", 106.58, 29.56),
                    ("theirs", f"{CTM}/grid-1", 106.58, 29.56),
                ]
            ),
        )
        assert refused.status_code == 422
        assert "row 3 (theirs): place 'cq/yuzhong/chaotianmen/grid-1' is outside" in refused.text
        assert as_(running.api_url, admin).get("/api/v1/risk-points/mine").status_code == 404
        outlines = client.post("/api/v1/map/boundaries", params={"datum": "gcj02"},
                               content=district_boundaries_bytes())  # fmt: skip
        assert outlines.status_code == 403


def test_a_bad_file_is_named_row_by_row_and_imports_nothing(running: Controller) -> None:
    client = api(running.api_url)
    data = points_csv([("good", JFB, 106.58, 29.56)]) + b"bad,bad,cq/x,slope,500,29\n"
    response = client.post("/api/v1/risk-points/import", params={"format": "csv"}, content=data)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "nothing imported (1 problems): row 3 (bad): lon 500 is outside -180..180"
    )
    assert client.get("/api/v1/risk-points/good").status_code == 404
    configured = client.post(
        "/api/v1/risk-points/import",
        params={"format": "csv"},
        content=points_csv([("jfb-slope", JFB, 106.58, 29.56)]),
    )
    assert configured.status_code == 422
    assert "row 2 (jfb-slope): declared in the controller's config" in configured.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bbox": "105,28,111,33", "zoom": 14}, "wider or taller than 4096 px at zoom 14"),
        ({"bbox": "a,b,c,d", "zoom": 8}, "four numbers"),
        ({"bbox": "105,28,111,33", "zoom": 25}, "zoom"),
    ],
)
def test_a_viewport_out_of_bounds_is_refused_with_422(
    running: Controller, params: dict[str, Any], message: str
) -> None:
    response = api(running.api_url).get("/api/v1/map/features", params=params)
    assert response.status_code == 422
    assert message in response.text


def test_uploads_past_their_size_are_refused_before_being_read(
    running: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(map_api, "MAX_BOUNDARY_BYTES", 1000)
    client = api(running.api_url)
    declared = client.post("/api/v1/map/boundaries", params={"datum": "wgs84"}, content=b" " * 1001)
    assert declared.status_code == 413
    assert declared.json()["detail"] == "body: at most 1000 bytes"
    chunked = client.post(
        "/api/v1/map/boundaries", params={"datum": "wgs84"}, content=iter([b" " * 600] * 2)
    )
    assert chunked.status_code == 413
    bad = client.post("/api/v1/map/boundaries", params={"datum": "wgs84"}, content=b"{")
    assert bad.status_code == 422
    assert "not JSON" in bad.json()["detail"]


def test_the_map_config_says_offline_and_where_the_outlines_are(running: Controller) -> None:
    client = api(running.api_url)
    assert client.get("/api/v1/map/config").json()["extent"] is None
    load(client)
    config = client.get("/api/v1/map/config").json()
    assert config["tile_url"] is None
    assert config["tile_datum"] == "wgs84"
    west, south, east, north = config["extent"]
    assert 105 < west < 106
    assert 28 < south < 29
    assert 110 < east < 111
    assert 31.5 < north < 32.5
    assert json.dumps(config["colours"]) == '["green", "blue", "yellow", "orange", "red"]'


def test_the_command_line_imports_points_and_outlines_and_names_bad_rows(
    running: Controller, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "points.csv"
    good.write_bytes(points_csv(STREET_POINTS[:3]))
    assert controller_cli(["import-points", str(good), "--url", running.api_url]) == 0
    assert json.loads(capsys.readouterr().out) == {"created": 3, "updated": 0}
    outlines = tmp_path / "districts.geojson"
    outlines.write_bytes(district_boundaries_bytes())
    argv = ["import-boundaries", str(outlines), "--datum", "gcj02", "--url", running.api_url]
    assert controller_cli(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"created": 38, "updated": 0}

    bad = tmp_path / "bad.csv"
    bad.write_bytes(points_csv([("fine", JFB, 106.5, 29.5), ("broken", "CQ", 106.5, 29.5)]))
    assert controller_cli(["import-points", str(bad), "--url", running.api_url]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"edgewatch controller: {bad}: nothing imported (1 problems): row 3 (broken): place"
        " must be a path like 'cq/yuzhong/jiefangbei', not 'CQ'"
    ]
    assert api(running.api_url).get("/api/v1/risk-points/fine").status_code == 404


def test_a_point_registered_or_moved_through_the_api_is_on_the_map_at_once(
    running: Controller,
) -> None:
    client = api(running.api_url)
    box = {"bbox": "106.570,29.556,106.590,29.572", "zoom": 16}
    body = {"id": "new-1", "name": "New", "place": f"{JFB}/grid-4", "category": "gas",
            "lon": 106.58, "lat": 29.565}  # fmt: skip
    assert client.post("/api/v1/risk-points", json=body).status_code == 201
    assert "new-1" in {f["id"] for f in features(client, **box)["features"]}
    moved = client.patch("/api/v1/risk-points/new-1", json={"lon": 108.4, "lat": 30.8})
    assert (moved.json()["lon"], moved.json()["lat"]) == (108.4, 30.8)
    assert "new-1" not in {f["id"] for f in features(client, **box)["features"]}
    half = client.patch("/api/v1/risk-points/new-1", json={"lon": 106.0})
    assert half.status_code == 422
    assert "give both lon and lat" in half.text


def test_configured_gateways_are_on_the_map_with_their_state(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    gateways = [
        {"id": "gw-a", "place": JFB, "lon": 106.578, "lat": 29.561},
        {"id": "gw-b", "place": CTM, "lon": 106.586, "lat": 29.566},
    ]
    config = config_for(tmp_path, mosquitto, extra={"gateways": gateways})
    with Controller(config) as running, Publisher(mosquitto) as gateway:
        wait_until(lambda: running.mqtt_connected, timeout_s=5)
        gateway.publish("edgewatch/v1/gw-a/status", birth(1), retain=True)
        gateway.publish("edgewatch/v1/gw-a/health", health(1, 5.0))
        client = api(running.api_url)

        def states() -> dict[str, str]:
            found = features(client, layer="gateways", **JFB_BOX)["features"]
            return {f["id"]: f["level"] for f in found}

        wait_until(lambda: states().get("gw-a") == "online", timeout_s=10, message="gw-a online")
        assert states()["gw-b"] == "unknown"  # configured, never seen
        city = features(client, layer="gateways", **CITY_BOX)["features"]
        assert [(f["count"], f["level"], f["counts"]) for f in city] == [
            (2, "unknown", {"online": 1, "unknown": 1})
        ]
