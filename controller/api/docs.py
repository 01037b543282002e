"""``/docs``: Swagger UI for the OpenAPI document, served from the package, never a CDN.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN: a controller in a control room
without internet showed a blank page. Its files are vendored from the npm registry
(``swagger-ui-dist``, see ``swagger_ui/README.md``) and served at ``/docs/assets/``.
Swagger UI's validator badge, which asks a public validator about the document, is off.
ReDoc (FastAPI's ``/redoc``) is not served: one documentation page, one vendored bundle.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_DIR = Path(__file__).parent / "swagger_ui"
SWAGGER_UI_VERSION = "5.35.0"
DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets; build the app with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS_PATH, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def _docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
