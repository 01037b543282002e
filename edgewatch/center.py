"""A reference tier center: the smallest HTTP receiver of what the controller forwards.

``edgewatch center run --name NAME --tier city|district|street --port N [--host 127.0.0.1]
[--secret S]``

- ``POST /ingest`` takes a batch ``{"kind": "readings" | "alerts" | "health", "center",
  "batch_id", KIND: [...]}``; a batch whose ``batch_id`` was seen before is acknowledged and
  not recorded twice (``wire.webhook.dedup_key``: the signed ``batch_id``, which an
  ``Idempotency-Key`` header, if sent, must equal; 400 otherwise).
- With ``--secret``, every POST must carry a valid ``X-Edgewatch-Signature`` (wire.webhook)
  whose timestamp is within the replay window; anything else gets 401 and is not recorded.
- ``GET /received`` returns ``{"name", "tier", "batches", "readings", "alerts", "health",
  "duplicates", "rejected_signatures", "last": [the last 20 readings], "last_alerts": [...]}``.

``ReferenceCenter`` is the same server as a context manager, for tests (port 0 allowed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from wire.lifecycle import Lifecycle
from wire.webhook import (
    IDEMPOTENCY_HEADER,
    REPLAY_WINDOW_S,
    SIGNATURE_HEADER,
    SignatureError,
    dedup_key,
    verify,
)

TIERS = ("city", "district", "street")
MAX_BODY_BYTES = 16 * 1024 * 1024
LAST_READINGS = 20
KINDS = ("readings", "alerts", "health")


class ReferenceCenter(Lifecycle):
    """Records the batches POSTed to ``/ingest``; ``with ReferenceCenter(...) as center:``."""

    def __init__(
        self,
        name: str,
        tier: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        secret: str | None = None,
        replay_window_s: float = REPLAY_WINDOW_S,
    ) -> None:
        if tier not in TIERS:
            raise ValueError(f"tier {tier!r}: must be one of {', '.join(TIERS)}")
        self.name = name
        self.secret = secret
        self.replay_window_s = replay_window_s
        # Every alert message received, with ``received_ms`` (wall clock) added.
        self.alerts: list[dict[str, Any]] = []
        self.health: list[dict[str, Any]] = []
        self.rejected_signatures = 0
        self.tier = tier
        self.host = host
        self.requested_port = port
        self.readings: list[dict[str, Any]] = []
        self.batches = 0
        self.duplicates = 0
        self.post_keys: list[str | None] = []  # the Idempotency-Key of every POST, in order
        self._fail_posts = 0
        self._keys: set[str] = set()
        self._last: deque[dict[str, Any]] = deque(maxlen=LAST_READINGS)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"center {self.name} is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where the controller posts: ``http://HOST:PORT/ingest``."""
        return f"http://{self.host}:{self.port}/ingest"

    def start(self) -> None:
        center = self

        class Handler(_Handler):
            pass

        Handler.center = center
        self._server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"center-{self.name}",
            daemon=False,
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        # Also end kept-alive connections: a stopped center must not go on answering.
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(5)

    def fail_next_posts(self, count: int) -> None:
        """Answer the next ``count`` POSTs with 503 without recording them (fault injection)."""
        with self._lock:
            self._fail_posts = count

    def take_post(self, key: str | None) -> bool:
        with self._lock:
            self.post_keys.append(key)
            if self._fail_posts > 0:
                self._fail_posts -= 1
                return True
            return False

    def check_signature(self, body: bytes, header: str | None) -> str | None:
        """None if the body may be accepted, else why not (and count the refusal)."""
        if self.secret is None:
            return None
        try:
            verify(self.secret, body, header, now_s=time.time(), window_s=self.replay_window_s)
        except SignatureError as exc:
            with self._lock:
                self.rejected_signatures += 1
            return str(exc)
        return None

    def record(self, key: str, batch: dict[str, Any]) -> bool:
        """Record a batch; False if its key (``dedup_key``) was seen before."""
        kind = batch.get("kind", "readings")
        items = batch[kind]
        received_ms = time.time_ns() // 1_000_000
        with self._lock:
            if key in self._keys:
                self.duplicates += 1
                return False
            self._keys.add(key)
            self.batches += 1
            if kind == "readings":
                self.readings.extend(items)
                self._last.extend(items)
            elif kind == "alerts":
                self.alerts.extend({**a, "received_ms": received_ms} for a in items)
            else:
                self.health.extend(items)
            return True

    def alert_actions(self) -> list[tuple[int, str]]:
        """(alert id, action) of every alert message received, in order."""
        with self._lock:
            return [(a["alert_id"], a["action"]) for a in self.alerts]

    def received(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": self.name,
                "tier": self.tier,
                "batches": self.batches,
                "readings": len(self.readings),
                "alerts": len(self.alerts),
                "health": len(self.health),
                "duplicates": self.duplicates,
                "rejected_signatures": self.rejected_signatures,
                "last": list(self._last),
                "last_alerts": self.alerts[-LAST_READINGS:],
            }

    def seqs(self) -> set[tuple[str, int]]:
        """The (gateway, seq) of every reading received."""
        with self._lock:
            return {(r["gateway"], r["seq"]) for r in self.readings}


class _Handler(BaseHTTPRequestHandler):
    center: ReferenceCenter
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, each answer on a kept-alive
    # connection would wait ~40 ms for the controller's delayed ACK, pacing deliveries.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        with self.center._lock:
            self.center._connections.add(self.connection)

    def finish(self) -> None:
        with self.center._lock:
            self.center._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the controller's API shows delivery

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/received":
            self._reply(HTTPStatus.OK, self.center.received())
        elif self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path!r}"})

    def do_POST(self) -> None:
        if self.path != "/ingest":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path!r}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return
        body = self.rfile.read(length)
        refused = self.center.check_signature(body, self.headers.get(SIGNATURE_HEADER))
        if refused is not None:
            self._reply(HTTPStatus.UNAUTHORIZED, {"error": refused})
            return
        try:
            batch = json.loads(body)
            kind = batch.get("kind", "readings") if isinstance(batch, dict) else None
            if kind not in KINDS or not isinstance(batch.get(kind), list):
                raise ValueError(f"expected an object with a kind of {KINDS} and its list")
            header = self.headers.get(IDEMPOTENCY_HEADER)
            key = dedup_key(batch, header)
        except ValueError as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        if self.center.take_post(header):
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "injected failure"})
            return
        new = self.center.record(key, batch)
        self._reply(HTTPStatus.OK, {"accepted": len(batch[kind]), "duplicate": not new})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edgewatch center", description="A reference tier center."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve until SIGTERM / Ctrl-C")
    run.add_argument("--name", required=True)
    run.add_argument("--tier", required=True, choices=TIERS)
    run.add_argument("--port", type=int, required=True, help="0 picks a free port")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--secret", help="verify X-Edgewatch-Signature with this shared secret")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        center = ReferenceCenter(
            args.name, args.tier, host=args.host, port=args.port, secret=args.secret
        )
        center.start()
    except OSError as exc:
        print(f"edgewatch center: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(
            f"edgewatch center {args.name} ({args.tier}): POST {center.url}, "
            f"GET http://{args.host}:{center.port}/received",
            flush=True,
        )
        stop.wait()
    finally:
        center.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
