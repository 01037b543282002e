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
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Route

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
# No name resolves but loopback's: a page that needs the internet fails as it would offline.
LOOPBACK_ONLY_ARGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


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
    profile_dir: Path,
    *,
    width: int = 1280,
    height: int = 860,
    blocked: list[str] | None = None,
) -> Iterator[BrowserContext]:
    """A browser context in headless chromium with a fresh profile; closed on exit.

    With ``blocked`` (a list), the network is unreachable but for loopback: no host name
    resolves but loopback's, every request to another host is aborted, and its URL is
    appended to ``blocked``.
    """
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
            args=CHROMIUM_ARGS + (LOOPBACK_ONLY_ARGS if blocked is not None else []),
            viewport={"width": width, "height": height},
        )
        context.set_default_timeout(TIMEOUT_MS)
        if blocked is not None:
            context.route(lambda url: not loopback(url), lambda route: block(route, blocked))
        try:
            yield context
        finally:
            context.close()


def loopback(url: str) -> bool:
    """Whether a request stays on this machine (data: and blob: URLs never leave it)."""
    parts = urlsplit(url)
    return parts.scheme not in ("http", "https", "ws", "wss") or parts.hostname in LOOPBACK_HOSTS


def block(route: Route, blocked: list[str]) -> None:
    blocked.append(route.request.url)
    route.abort("internetdisconnected")
