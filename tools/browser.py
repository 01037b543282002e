"""Headless Debian chromium driven by playwright, for the console's tests and screenshots.

Never ``playwright install``: the browser is the system's ``chromium`` (``.ci/run`` installs
it), launched with a fresh profile in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


class BrowserMissingError(RuntimeError):
    """Chromium or playwright is not installed; the message says how to get them."""


def chromium_path() -> str:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    raise BrowserMissingError(
        "chromium is not installed: `apt-get install -y chromium` (Debian; .ci/run does it)"
    )


@contextmanager
def chromium(
    profile_dir: Path, *, width: int = 1280, height: int = 860
) -> Iterator[BrowserContext]:
    """A browser context in headless chromium with a fresh profile; closed on exit."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 (optional, dev only)
    except ImportError as exc:
        raise BrowserMissingError(
            f"playwright is not installed ({exc}): pip install -e '.[dev]'"
        ) from None
    profile_dir.mkdir(parents=True, exist_ok=True)
    # The driver would otherwise look for (and offer to download) its own browser builds.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()
