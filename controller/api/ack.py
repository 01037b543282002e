"""The acknowledgement page a duty person opens from a message: ``/m/a/<token>``.

Outside ``/api/v1`` and without a token or a login: the signed link is the credential
(``controller/notify/links.py``), good for one person, one alert step and until its
deadline. The page is HTML made on the server, with no script, under a strict content
security policy; the request body is bounded.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from controller.api.deps import BackendDep
from controller.notify.ack_page import HEADERS, STYLESHEET, STYLESHEET_PATH, render_page
from controller.notify.acks import MAX_FORM_BYTES, AckPage
from controller.notify.links import ACK_PATH

ack = APIRouter(include_in_schema=False)

Token = Annotated[str, Path(max_length=64)]


def _html(page: AckPage, token: str) -> HTMLResponse:
    return HTMLResponse(render_page(page, token), status_code=page.status, headers=HEADERS)


@ack.get(f"{ACK_PATH}/{{token}}")
def show(token: Token, backend: BackendDep) -> HTMLResponse:
    return _html(backend.notify.acks.view(token), token)


@ack.post(f"{ACK_PATH}/{{token}}")
async def act(token: Token, request: Request, backend: BackendDep) -> HTMLResponse:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            page = AckPage(status=413, heading="This form is too large",
                           lines=("Open the link from the message again.",))  # fmt: skip
            return _html(page, token)
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    except ValueError:
        fields = {}
    form = {key: values[0] for key, values in fields.items() if values}
    page = await run_in_threadpool(backend.notify.acks.act, token, form)
    return _html(page, token)


@ack.get(STYLESHEET_PATH)
def stylesheet() -> Response:
    return Response(
        STYLESHEET,
        media_type="text/css",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
