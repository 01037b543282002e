"""Browser tests of the web console: headless chromium against a running controller.

They run in the default suite wherever chromium is installed. Without it they skip on a
developer's machine but FAIL in CI (``CI=true``), where ``.ci/run`` must have installed it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from controller.service import Controller
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.console.support import GATEWAYS
from tests.controller.support import config_for
from tests.required import unavailable
from tools.browser import BrowserMissingError, chromium

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def controller(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Controller]:
    """A controller in demo mode (no tokens) knowing gw-a and gw-b, subscribed to the broker."""
    with Controller(config_for(tmp_path, mosquitto, gateways=GATEWAYS)) as running:
        wait_until(lambda: running.mqtt_connected, timeout_s=5, message="controller subscribed")
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    try:
        with chromium(tmp_path / "chromium-profile") as context:
            yield context
    except BrowserMissingError as exc:
        unavailable(str(exc))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: BrowserContext, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    """The browser's page; on failure its screenshot and console log go to the tmp folder."""
    page = browser.pages[0] if browser.pages else browser.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
    yield page
    if request.node.stash.get(_FAILED, False):
        shot = tmp_path / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        (tmp_path / "console.log").write_text("\n".join(messages))
        print(f"browser: screenshot {shot}, page at {page.url}; console:\n" + "\n".join(messages))
