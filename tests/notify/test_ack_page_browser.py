"""The acknowledgement page in headless chromium at a phone's viewport (390 x 844 CSS px):
open the link from the message, acknowledge, start handling; a replayed form and an expired
link show their refusal pages. Screenshots go to the test's folder, or to
``$EDGEWATCH_SCREENSHOTS`` (``docs/screenshots`` to remake the docs' pictures)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edgewatch.broker import Mosquitto
from tests.notify.conftest import link_of, start_duty_rig
from tools.browser import BrowserMissingError, chromium

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

PHONE = {"width": 390, "height": 844}
pytestmark = pytest.mark.browser


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[BrowserContext]:
    try:
        with chromium(tmp_path / "profile", **PHONE, blocked=[]) as context:
            yield context
    except BrowserMissingError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests need chromium in CI: {exc}")
        pytest.skip(str(exc))


def shoot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_a_duty_person_acknowledges_and_handles_from_a_phone(
    tmp_path: Path, mosquitto: Mosquitto, phone: BrowserContext
) -> None:
    shots = Path(os.environ.get("EDGEWATCH_SCREENSHOTS", str(tmp_path)))
    with start_duty_rig(tmp_path, mosquitto) as duty:
        duty.reading(450)  # red
        url = link_of(duty.wait_messages("li-wei", 1)[0])
        page = phone.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        assert page.locator("h1").inner_text() == "RED alert: Jialing river at Jiefangbei"
        button = page.get_by_role("button", name="Acknowledge", exact=True)
        box = button.bounding_box()
        assert box is not None
        assert box["width"] >= 300  # a thumb-sized button across the phone's width
        assert box["height"] >= 44
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "nothing overflows sideways"
        shoot(page, shots, "ack-open")
        stale = phone.new_page()  # the same link open in another tab, before the click
        stale.goto(url)

        button.click()
        page.wait_for_selector("text=Acknowledged: thank you, Li Wei.")
        assert duty.alert(1)["state"] == "acknowledged"
        shoot(page, shots, "ack-done")

        stale.get_by_role("button", name="Acknowledge", exact=True).click()  # sent again
        stale.wait_for_selector("text=This form was already sent")
        shoot(stale, shots, "ack-replayed")

        page.goto(url)
        page.get_by_role("button", name="Start handling").click()
        page.wait_for_selector("text=Handling: thank you, Li Wei.")
        assert duty.alert(1)["state"] == "handling"
        assert not errors, errors  # the strict policy blocked nothing the page needs

        duty.clock.advance(3600)
        page.goto(url)
        assert page.locator("h1").inner_text() == "This link has expired"
        shoot(page, shots, "ack-expired")
