"""Screenshots of the web console's main pages, for docs/screenshots/ and the README.

    python -m tools.console_screenshots [--out docs/screenshots]

Runs the whole system as the demo does (a private mosquitto, reference centers, the
controller in demo mode, two simulated gateways) with a few river sections as risk points
and duty rosters from the grid to the city (their channels a JSON webhook sink on loopback),
waits for real data, then drives headless chromium through the pages and saves one PNG
each (acknowledging the red alert on the way).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edgewatch.broker import Mosquitto
from edgewatch.json_sink import JsonReceiver
from edgewatch.processes import ProcessGroup
from edgewatch.system import GATEWAYS, GatewayTiming, LocalSystem, get_json
from edgewatch.waiting import wait_until
from tools.browser import chromium

ROOT = Path(__file__).resolve().parents[1]
TIMING = GatewayTiming(poll_interval_s=0.5, heartbeat_interval_s=1.0, keepalive_s=5)
JIEFANGBEI = "cq/yuzhong/jiefangbei"
PLACES = {
    "cq": "Chongqing",
    "cq/yuzhong": "Yuzhong",
    JIEFANGBEI: "Jiefangbei",
    "cq/yuzhong/chaotianmen": "Chaotianmen",
    "cq/jiangbei": "Jiangbei",
    "cq/jiangbei/guanyinqiao": "Guanyinqiao",
    "cq/shapingba": "Shapingba",
    "cq/shapingba/ciqikou": "Ciqikou",
}


def water_point(point_id: str, name: str, place: str, device: str, warning: float) -> str:
    """A river section watched by one simulated gauge (the gauges read about 250 cm)."""
    return f"""
[[risk_points]]
id = "{point_id}"
name = "{name}"
category = "water_level"
place = "{place}"
[[risk_points.metrics]]
device = "{device}"
metric = "level_cm"
preset = "water_level"
warning_level = {warning}
guarantee_level = {warning + 40.0}
"""


# Red at Jiefangbei (gauge 1), yellow downstream (gauge 2), green where nothing reports.
RISK_POINTS = "".join(
    [
        water_point("jialing-jfb", "Jialing at Jiefangbei", f"{JIEFANGBEI}/grid-1",
                    "gw-demo-1.river-gauge-1", 200.0),
        water_point("yangtze-jfb", "Yangtze at Jiefangbei pier", f"{JIEFANGBEI}/grid-2",
                    "gw-demo-2.river-gauge-1", 245.0),
        water_point("yangtze-ctm", "Yangtze at Chaotianmen", "cq/yuzhong/chaotianmen/grid-1",
                    "gw-ctm-1.river-gauge-1", 1800.0),
        water_point("jialing-gyq", "Jialing at Guanyinqiao", "cq/jiangbei/guanyinqiao/grid-3",
                    "gw-gyq-1.river-gauge-1", 1800.0),
        water_point("jialing-cqk", "Jialing at Ciqikou", "cq/shapingba/ciqikou/grid-1",
                    "gw-cqk-1.river-gauge-1", 1800.0),
    ]
)  # fmt: skip


def duty_config(sink: JsonReceiver) -> str:
    """Two channels on the loopback sink, and grid 1's roster from the config (read-only)."""
    base = f"json://127.0.0.1:{sink.port}"
    return f"""
[notify]
allowed_hosts = ["127.0.0.1"]
[[notify.channels]]
name = "sms"
kind = "sms"
url = "{base}/sms?:to={{to}}"
[[notify.channels]]
name = "duty-app"
kind = "webhook"
url = "{base}/app?:to={{to}}"
[[notify.rosters]]
place = "{JIEFANGBEI}/grid-1"
name = "Jiefangbei grid 1"
[[notify.rosters.people]]
id = "li-wei"
name = "Li Wei"
contacts = [{{channel = "sms", to = "+8613800000001"}}, {{channel = "duty-app", to = "li-wei"}}]
[[notify.rosters.shifts]]
person = "li-wei"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "00:00"
end = "00:00"
"""


WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
EVERY_DAY = [*WEEKDAYS, "sat", "sun"]


def duty_person(pid: str, name: str, phone: str) -> dict[str, Any]:
    contacts = [{"channel": "sms", "to": phone}, {"channel": "duty-app", "to": pid}]
    return {"id": pid, "name": name, "contacts": contacts}


def shift(pid: str, days: list[str], start: str, end: str) -> dict[str, Any]:
    return {"person": pid, "days": days, "start": start, "end": end}


def roster(name: str, people: list[tuple[str, str, str, list[str], str, str]]) -> dict[str, Any]:
    """A roster of people, each (id, name, phone, days, start, end) with one weekly shift."""
    return {
        "name": name,
        "people": [duty_person(pid, who, phone) for pid, who, phone, *_ in people],
        "shifts": [shift(pid, days, start, end) for pid, _, _, days, start, end in people],
    }


def api_rosters(now: datetime) -> dict[str, dict[str, Any]]:
    """Rosters an operator keeps through the API, one at each layer; grid 2 has an override
    running now (Ma Lin stands in), Chaotianmen's grid has nobody on duty on a weekday."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    end = start + timedelta(hours=9)
    grid_2 = roster("Jiefangbei grid 2", [
        ("he-jun", "He Jun", "+8613800000050", WEEKDAYS, "08:00", "20:00"),
        ("ma-lin", "Ma Lin", "+8613800000051", WEEKDAYS, "20:00", "08:00"),
    ])  # fmt: skip
    grid_2["overrides"] = [{"person": "ma-lin", "start": start.strftime("%Y-%m-%dT%H:%M:%S"),
                            "end": end.strftime("%Y-%m-%dT%H:%M:%S")}]  # fmt: skip
    return {
        "cq": roster("Chongqing duty desk", [
            ("zhao-lei", "Zhao Lei", "+8613800000010", EVERY_DAY, "00:00", "00:00"),
        ]),
        "cq/yuzhong": roster("Yuzhong district", [
            ("chen-jie", "Chen Jie", "+8613800000020", EVERY_DAY, "08:00", "20:00"),
            ("liu-yang", "Liu Yang", "+8613800000021", EVERY_DAY, "20:00", "08:00"),
        ]),
        JIEFANGBEI: roster("Jiefangbei street", [
            ("zhang-min", "Zhang Min", "+8613800000030", EVERY_DAY, "00:00", "00:00"),
        ]),
        f"{JIEFANGBEI}/minsheng": {"layer": "community", **roster("Minsheng community", [
            ("gao-hui", "Gao Hui", "+8613800000040", EVERY_DAY, "00:00", "00:00"),
        ])},
        f"{JIEFANGBEI}/grid-2": grid_2,
        "cq/yuzhong/chaotianmen/grid-1": roster("Chaotianmen grid 1", [
            ("wu-lan", "Wu Lan", "+8613800000060", ["sat", "sun"], "08:00", "20:00"),
        ]),
    }  # fmt: skip


def put_rosters(system: LocalSystem) -> None:
    """``PUT /rosters/{place}`` as an operator would (demo mode: no token)."""
    for place, body in api_rosters(datetime.now(ZoneInfo("Asia/Shanghai"))).items():
        request = urllib.request.Request(
            f"{system.api}/rosters/{place}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="PUT",
        )
        with urllib.request.urlopen(request, timeout=5):
            pass


def readings_of(system: LocalSystem, device: str) -> int:
    try:
        return len(get_json(f"{system.api}/devices/{device}/readings?limit=100")["readings"])
    except (OSError, ValueError, KeyError):  # not known yet (404) or not answering
        return 0


def shoot(system: LocalSystem, out: Path, profile: Path) -> list[Path]:
    saved: list[Path] = []
    with chromium(profile, width=1280, height=900) as browser:
        page = browser.pages[0] if browser.pages else browser.new_page()

        def save(name: str) -> None:
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=True)
            saved.append(path)

        page.goto(f"{system.base_url}/console/")
        page.locator('#overview tr[data-gateway="gw-demo-2"]').wait_for()
        save("overview")
        page.goto(f"{system.base_url}/console/#/gateway/gw-demo-1")
        page.locator("#devices tr[data-device]").first.wait_for()
        page.click("button[data-command='ping']")
        page.locator("#commands tr", has_text="ping").wait_for()
        save("gateway")
        page.goto(f"{system.base_url}/console/#/device/gw-demo-1.river-gauge-1?window=5m")
        page.locator("figure[data-metric='level_cm'] rect[data-band='red']").wait_for()
        save("device")
        page.goto(f"{system.base_url}/console/#/risk?place=cq")
        page.locator('.place-tile[data-place="cq/yuzhong"][data-colour="red"]').wait_for()
        save("risk-map")
        page.goto(f"{system.base_url}/console/#/risk?place={JIEFANGBEI}")
        page.locator('.point-tile[data-point="jialing-jfb"]').wait_for()
        save("risk-map-street")
        page.goto(f"{system.base_url}/console/#/alerts")
        red = page.locator('article.alert[data-colour="red"]')
        red.wait_for()
        red.locator("input").fill("crew from Jiefangbei station on the way")
        red.locator('button[data-to="acknowledged"]').click()
        page.locator('article.alert[data-colour="red"][data-state="acknowledged"]').wait_for()
        red.locator("button", has_text="Trail").click()
        page.locator("table.trail tr[data-action='acknowledged']").wait_for()
        save("alerts")
        page.goto(f"{system.base_url}/console/#/rosters")
        grid_2 = f'details.roster[data-place="{JIEFANGBEI}/grid-2"]'
        page.locator(f"{grid_2} table.overrides").wait_for()
        page.evaluate(  # fold all but grid 2: its people, shifts, override and the edits
            """(place) => document.querySelectorAll("details.roster")
                 .forEach((d) => { d.open = d.dataset.place === place; })""",
            f"{JIEFANGBEI}/grid-2",
        )
        page.locator(
            f'{grid_2} table.people tr[data-person="ma-lin"][data-on-duty="yes"]'
        ).wait_for()
        save("rosters")
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.console_screenshots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgewatch-shots-") as tmp:
        workdir = Path(tmp)
        with (
            Mosquitto(workdir / "broker") as broker,
            ProcessGroup(workdir / "logs") as procs,
            JsonReceiver() as duty_sink,
        ):
            system = LocalSystem(workdir, broker.port, procs)
            system.start_centers()
            system.start_controller(extra_config=RISK_POINTS + duty_config(duty_sink))
            system.name_places(PLACES)
            put_rosters(system)
            for gateway_id in GATEWAYS:
                system.start_gateway(gateway_id, TIMING)
            wait_until(
                lambda: readings_of(system, "gw-demo-1.river-gauge-1") >= 100,
                timeout_s=60,
                message="100 readings of gw-demo-1.river-gauge-1",
            )
            for path in shoot(system, args.out, workdir / "chromium-profile"):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
