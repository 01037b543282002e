"""Screenshots of the web console's main pages, for docs/screenshots/ and the README.

    python -m tools.console_screenshots [--out docs/screenshots]

Runs the whole system as the demo does (a private mosquitto, reference centers, the
controller in demo mode, two simulated gateways) with a few river sections as risk points,
waits for real data, then drives headless chromium through the pages and saves one PNG
each (acknowledging the red alert on the way).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from edgewatch.broker import Mosquitto
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
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.console_screenshots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgewatch-shots-") as tmp:
        workdir = Path(tmp)
        with Mosquitto(workdir / "broker") as broker, ProcessGroup(workdir / "logs") as procs:
            system = LocalSystem(workdir, broker.port, procs)
            system.start_centers()
            system.start_controller(extra_config=RISK_POINTS)
            system.name_places(PLACES)
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
