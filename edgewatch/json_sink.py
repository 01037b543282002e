"""A JSON webhook sink on a free loopback port: where Apprise's ``json://`` notifications land
in the tests, the notify benchmark and anyone trying the duty notifications on one machine.
It can answer 503 (``failing``) or close its port (``stop``) to play a channel that is down."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class JsonReceiver:
    """Takes Apprise's ``json://`` posts at ``/hook``; ``failing`` answers 503 instead."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refused = 0
        self.failing = False
        self.on_message: Any = None  # called with each message taken, under the lock
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
                    if receiver.on_message is not None:
                        receiver.on_message(receiver.messages[-1])
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.request_queue_size = 256
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
    def running(self) -> bool:
        return self._server is not None

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
