"""The web console: its static files at ``/console/``, who the caller is, stream tickets.

The console is plain HTML, CSS and JavaScript modules in ``controller/console/`` (package
data; no build step, no CDN). It calls the same ``/api/v1`` as any client, with the token
the operator typed (kept in the tab's ``sessionStorage``), so it shows exactly what that
token may see. ``GET /api/v1/whoami`` tells it the token's role and place (in demo mode:
the demo principal, no login).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Scope

from controller.api.deps import ApiBackend, BackendDep, Viewer
from controller.api.stream_tickets import StreamTickets

CONSOLE_DIR = Path(__file__).parent.parent / "console"
CONSOLE_PATH = "/console"

# Scripts and styles only from the console itself: no inline script, no third party.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
    " form-action 'self'"
)


def content_security_policy(tile_origin: str | None) -> str:
    """The policy, with the map's tile server (``[map] tile_url``) allowed for images."""
    if tile_origin is None:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(
        "img-src 'self' data:;", f"img-src 'self' data: {tile_origin};"
    )


console = APIRouter(tags=["console"])
stream_tickets = APIRouter(prefix="/alerts", tags=["alerts"])


class WhoAmI(BaseModel):
    name: str
    role: str
    place: str | None  # None: sees everything
    auth: str  # "tokens" or "demo"


class TicketOut(BaseModel):
    ticket: str
    expires_ms: int
    stream: str  # the URL to open with the ticket


@console.get("/whoami", response_model=WhoAmI)
async def whoami(backend: BackendDep, principal: Viewer) -> WhoAmI:
    """The calling token's name, role and place: what the console may show."""
    return WhoAmI(
        name=principal.name,
        role=principal.role.value,
        place=principal.place,
        auth=backend.config.api.auth.value,
    )


def tickets_of(request: Request) -> StreamTickets:
    return cast(StreamTickets, request.app.state.stream_tickets)


@stream_tickets.post("/stream-ticket", response_model=TicketOut, status_code=201)
async def stream_ticket(request: Request, backend: BackendDep, principal: Viewer) -> TicketOut:
    """A single-use ticket, valid for seconds, to open ``GET /api/v1/alerts/stream?ticket=``
    from a browser's EventSource (which cannot send the Authorization header)."""
    ticket = tickets_of(request).issue(principal, now_ms=backend.clock.wall_ms())
    return TicketOut(
        ticket=ticket.value,
        expires_ms=ticket.expires_ms,
        stream=f"/api/v1/alerts/stream?ticket={ticket.value}",
    )


class ConsoleFiles(StaticFiles):
    """The console's files with a strict content security policy; always revalidated."""

    def __init__(self, *, directory: Path, policy: str) -> None:
        super().__init__(directory=directory, html=True)
        self.policy = policy

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = self.policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_console(app: FastAPI) -> None:
    app.state.stream_tickets = StreamTickets()
    app.state.stopping = threading.Event()  # set by the API server as it stops
    tile_origin = cast(ApiBackend, app.state.backend).config.map.tile_origin()
    policy = content_security_policy(tile_origin)
    app.mount(CONSOLE_PATH, ConsoleFiles(directory=CONSOLE_DIR, policy=policy), name="console")

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        return RedirectResponse(url=f"{CONSOLE_PATH}/")


__all__ = ["console", "mount_console", "stream_tickets"]
