"""The one version string: the installed package's (pyproject.toml ``version``).

The agent reports it in its heartbeat and ``ping``; the controller's API shows it in its
OpenAPI document.
"""

from __future__ import annotations

import importlib.metadata


def package_version() -> str:
    try:
        return importlib.metadata.version("edgewatch")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
