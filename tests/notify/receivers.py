"""Where the tests' notifications arrive: a JSON webhook receiver and an SMTP server
(aiosmtpd), each on a free loopback port, each a context manager."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller as SmtpController
from aiosmtpd.smtp import SMTP, Envelope, Session

from edgewatch.broker import free_port


class JsonReceiver:
    """Takes Apprise's ``json://`` posts at ``/hook``; ``failing`` answers 503 instead."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refused = 0
        self.failing = False
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length", "0")), 1_000_000)
                body = self.rfile.read(length)
                with receiver._lock:
                    if receiver.failing:
                        receiver.refused += 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    receiver.messages.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the port: a channel that is down (connection refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def taken(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.taken() if m.get("to") == address]

    def __enter__(self) -> JsonReceiver:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: list[str]
    subject: str
    text: str


class SmtpReceiver:
    """An SMTP server (aiosmtpd) keeping every message it is given."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = SmtpController(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else ""
        with self._lock:
            self.mails.append(
                Mail(
                    str(envelope.mail_from), list(envelope.rcpt_tos), str(message["subject"]), text
                )
            )
        return "250 OK"

    def taken(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._controller.stop()
