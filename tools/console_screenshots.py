"""Screenshots of the web console's main pages, for docs/screenshots/ and the README.

    python -m tools.console_screenshots [--out docs/screenshots]

Runs the whole system as the demo does (a private mosquitto, reference centers, the
controller in demo mode, two simulated gateways), waits for real data, then drives headless
chromium through the pages and saves one PNG each.
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
        page.locator("figure[data-metric='level_cm'] path.line").wait_for()
        save("device")
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
            system.start_controller()
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
