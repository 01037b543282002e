"""What the tests need from the machine (mosquitto, openssl, chromium...), found in one place.

A test whose tool is missing must never look like a pass. On a developer's machine it skips
and the skip says how to install the tool; in CI (``CI=true``, which ``.ci/run`` exports and
which installs every tool first) it fails. ``tests/conftest.py`` also fails a CI run that
skipped anything at all, so a skip added later cannot hide either.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

from edgewatch.broker import mosquitto_binary

DEBIAN_INSTALL = "apt-get install -y"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(message: str) -> NoReturn:
    """Fail under CI, else skip, with ``message`` (which says how to install what is missing)."""
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def missing(what: str, install: str) -> NoReturn:
    unavailable(f"{what} is not installed: `{install}` (.ci/run installs it)")


def debian_tool(command: str, package: str | None = None) -> str:
    """The path of ``command`` (PATH or /usr/sbin), or skip / fail naming its package."""
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if found is None:
        missing(f"the `{command}` command", f"{DEBIAN_INSTALL} {package or command}")
    return found


def mosquitto() -> str:
    found = mosquitto_binary()
    if found is None:
        missing("mosquitto", f"{DEBIAN_INSTALL} mosquitto")
    return found
