"""The map's static side: Leaflet as the npm registry shipped it, served under the console's
policy; a configured tile server is the only other origin images may come from."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from controller.service import Controller
from edgewatch.broker import Mosquitto
from tests.controller.support import api, config_for

LEAFLET = Path(__file__).resolve().parents[2] / "controller" / "console" / "vendor" / "leaflet"


def test_the_vendored_leaflet_files_are_those_the_manifest_records() -> None:
    manifest = json.loads((LEAFLET / "MANIFEST.json").read_text())
    assert (manifest["package"], manifest["version"]) == ("leaflet", "1.9.4")
    assert manifest["registry_integrity"].startswith("sha512-")
    on_disk = {
        path.relative_to(LEAFLET).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in LEAFLET.rglob("*")
        if path.is_file() and path.name != "MANIFEST.json"
    }
    assert on_disk == manifest["files_sha256"]
    assert (LEAFLET / "LICENSE").read_text().startswith("BSD 2-Clause License")


def test_the_console_loads_leaflet_from_itself_and_nothing_from_elsewhere(
    controller: Controller,
) -> None:
    with api(controller.api_url) as client:
        page = client.get("/console/").text
        sources = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert "vendor/leaflet/leaflet.js" in sources
        assert not [s for s in sources if re.match(r"^(https?:)?//", s)]
        script = client.get("/console/vendor/leaflet/leaflet.js")
        assert script.status_code == 200
        assert "img-src 'self' data:;" in script.headers["content-security-policy"]
        assert client.get("/console/vendor/leaflet/images/layers.png").status_code == 200


def test_a_configured_tile_server_is_allowed_for_images_only(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    tiles = {"tile_url": "https://tiles.intranet.example:8443/{z}/{x}/{y}.png",
             "tile_datum": "gcj02"}  # fmt: skip
    config = config_for(tmp_path, mosquitto, extra={"map": tiles})
    with Controller(config) as running, api(running.api_url) as client:
        policy = client.get("/console/").headers["content-security-policy"]
        answered = client.get("/api/v1/map/config").json()
    assert "img-src 'self' data: https://tiles.intranet.example:8443;" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy
    assert (answered["tile_url"], answered["tile_datum"]) == (tiles["tile_url"], "gcj02")
