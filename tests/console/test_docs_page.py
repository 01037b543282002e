"""``/docs`` in a browser cut off from the internet: Swagger UI comes from the controller."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.service import Controller
from tools.browser import BrowserMissingError, chromium


def test_the_api_docs_render_with_the_network_unreachable(
    controller: Controller, tmp_path: Path
) -> None:
    blocked: list[str] = []
    try:
        with chromium(tmp_path / "profile", blocked=blocked) as context:
            page = context.new_page()
            page.goto(f"{controller.api_url.removesuffix('/api/v1')}/docs")
            # Swagger UI drew the document: its title and an operation of ours.
            page.locator(".swagger-ui .info .title").filter(
                has_text="edgewatch controller"
            ).wait_for()
            page.locator(".opblock-summary-path").filter(
                has_text="/api/v1/gateways"
            ).first.wait_for()
            page.get_by_text("/api/v1/summary", exact=True).first.wait_for()
    except BrowserMissingError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests need chromium in CI: {exc}")
        pytest.skip(str(exc))
    assert blocked == []  # nothing on the page asked for another host
