"""Registry: places, gateways, devices, risk points; filters, pages, validation."""

from __future__ import annotations

import httpx
import pytest

from controller.service import Controller
from tests.controller.support import get_json


def test_places_gateways_devices_and_risk_points(
    controller: Controller, client: httpx.Client
) -> None:
    for path, name in [("cq", "Chongqing"), ("cq/yuzhong", "Yuzhong"), ("cq/jiangbei", "Jiangbei")]:
        assert client.post("/api/v1/places", json={"path": path, "name": name}).status_code == 201
    assert client.post("/api/v1/places", json={"path": "cq", "name": "x"}).status_code == 409
    under = get_json(client, "/api/v1/places", params={"under": "cq/yuzhong"})
    assert [(p["path"], p["level"]) for p in under] == [("cq/yuzhong", "district")]

    for index in range(5):
        created = client.post(
            "/api/v1/gateways",
            json={
                "id": f"gw-j{index}",
                "place": "cq/jiangbei/guanyinqiao",
                "label": f"pole {index}",
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["mqtt"] is None  # this controller does not manage the broker
    assert client.post("/api/v1/gateways", json={"id": "gw-j0", "place": "cq"}).status_code == 409
    jiangbei = get_json(client, "/api/v1/gateways", params={"place": "cq/jiangbei", "limit": 2})
    assert [g["id"] for g in jiangbei] == ["gw-j0", "gw-j1"]
    second = get_json(
        client, "/api/v1/gateways", params={"place": "cq/jiangbei", "limit": 2, "offset": 2}
    )
    assert [g["id"] for g in second] == ["gw-j2", "gw-j3"]
    assert get_json(client, "/api/v1/gateways", params={"state": "online"}) == []
    # The config-declared gateway keeps working beside the registered ones.
    yuzhong = get_json(client, "/api/v1/gateways", params={"place": "cq/yuzhong"})
    assert [(g["id"], g["source"]) for g in yuzhong] == [("gw-a", "config")]

    moved = client.patch("/api/v1/gateways/gw-j4", json={"place": "cq/yuzhong/jiefangbei"})
    assert moved.json()["place"] == "cq/yuzhong/jiefangbei"
    assert controller.router.place_of("gw-j4") == "cq/yuzhong/jiefangbei"

    device = client.post(
        "/api/v1/devices", json={"gateway": "gw-j0", "name": "gauge-1", "family": "water_level"}
    )
    assert device.status_code == 201, device.text
    client.post("/api/v1/devices", json={"gateway": "gw-j0", "name": "rain-1", "family": "rain"})
    levels = get_json(client, "/api/v1/devices", params={"family": "water_level"})
    assert [d["id"] for d in levels] == ["gw-j0.gauge-1"]
    assert (
        client.patch("/api/v1/devices/gw-j0.rain-1", json={"family": "rain_gauge"}).json()["family"]
        == "rain_gauge"
    )

    point = {
        "id": "slope-7",
        "name": "Slope above Jiefangbei",
        "place": "cq/yuzhong/jiefangbei",
        "category": "slope",
        "devices": ["gw-j4.incl-1"],
    }
    assert client.post("/api/v1/risk-points", json=point).status_code == 201
    patched = client.patch("/api/v1/risk-points/slope-7", json={"category": "bridge"})
    assert patched.json()["category"] == "bridge"
    assert [r["id"] for r in get_json(client, "/api/v1/risk-points", params={"place": "cq"})] == [
        "slope-7"
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "field"),
    [
        ("get", "/api/v1/gateways", None, {"limit": 0}, "limit"),
        ("get", "/api/v1/gateways", None, {"offset": -1}, "offset"),
        ("get", "/api/v1/gateways", None, {"place": "CQ//x"}, "place"),
        ("get", "/api/v1/gateways", None, {"state": "sleepy"}, "state"),
        ("get", "/api/v1/gateways/GW_1", None, None, "gateway_id"),
        ("post", "/api/v1/gateways", {"id": "GW_1", "place": "cq"}, None, "id"),
        ("post", "/api/v1/gateways", {"id": "gw-x"}, None, "place"),
        ("post", "/api/v1/places", {"path": "cq/a/b/c/d/e", "name": "x"}, None, "path"),
        ("post", "/api/v1/gateways", {"id": "gw-x", "place": "cq", "colour": 1}, None, "colour"),
    ],
)
def test_bad_input_is_4xx_naming_the_field(
    client: httpx.Client,
    method: str,
    path: str,
    body: dict[str, object] | None,
    params: dict[str, str | int] | None,
    field: str,
) -> None:
    response = client.request(method, path, json=body, params=params)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"][0]["field"], response.text


def test_a_typo_in_a_body_gets_did_you_mean_as_a_config_typo_does(client: httpx.Client) -> None:
    response = client.post("/api/v1/gateways", json={"id": "gw-x", "plcae": "cq/yuzhong"})
    assert response.status_code == 422, response.text
    # One mistake, one error: the "missing place" it causes is the same typo.
    assert [e["msg"] for e in response.json()["detail"]] == [
        "body.plcae: unknown key (did you mean 'place'?)"
    ]
    bad_place = client.post("/api/v1/gateways", json={"id": "gw-x", "place": "CQ//x"})
    assert bad_place.json()["detail"][0]["msg"] == (
        "body.place: expected a place path like 'cq/yuzhong/jiefangbei' "
        "(lower-case, 1 to 5 levels), got 'CQ//x'"
    )
