"""Short-lived, single-use tickets for the alert stream.

A browser's ``EventSource`` cannot send an ``Authorization`` header, and an API token must
never travel in a URL (it would land in logs and history). So the console first asks, with
its token, ``POST /api/v1/alerts/stream-ticket``; the answer is a ticket signed with a key
that lives only in this controller process, valid for ``TICKET_TTL_S`` and for one use.
The ticket names the token (never holds it); redeeming it checks again that the token is
still active with the same role and place, so a revoked token's ticket opens nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass

from controller.access import Principal, Role

TICKET_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class Ticket:
    value: str
    expires_ms: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_still_grants(conn: sqlite3.Connection, principal: Principal) -> bool:
    """The named token is active and still has the role and place it had."""
    row = conn.execute(
        "SELECT role, place FROM api_tokens WHERE name = ? AND revoked_ms IS NULL",
        (principal.name,),
    ).fetchone()
    return row is not None and (row[0], row[1]) == (principal.role.value, principal.place)


class StreamTickets:
    """Issue and redeem tickets; the signing key is made fresh for each process."""

    def __init__(self, *, ttl_s: float = TICKET_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._key = secrets.token_bytes(32)
        self._used: dict[str, int] = {}  # nonce -> expiry, forgotten once expired
        self._lock = threading.Lock()

    def _sign(self, body: bytes) -> str:
        return _b64(hmac.new(self._key, body, hashlib.sha256).digest())

    def issue(self, principal: Principal, *, now_ms: int) -> Ticket:
        expires_ms = now_ms + int(self.ttl_s * 1000)
        body = json.dumps(
            {
                "name": principal.name,
                "role": principal.role.value,
                "place": principal.place,
                "exp": expires_ms,
                "nonce": secrets.token_urlsafe(12),
            },
            separators=(",", ":"),
        ).encode()
        return Ticket(value=f"{_b64(body)}.{self._sign(body)}", expires_ms=expires_ms)

    def redeem(self, value: str, *, now_ms: int) -> Principal | None:
        """The principal the ticket was issued to; None if forged, expired or used."""
        encoded, dot, signature = value.partition(".")
        if not dot or len(value) > 2048:
            return None
        try:
            body = _unb64(encoded)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            fields = json.loads(body)
            principal = Principal(
                name=str(fields["name"]),
                role=Role(fields["role"]),
                place=None if fields["place"] is None else str(fields["place"]),
            )
            expires_ms, nonce = int(fields["exp"]), str(fields["nonce"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires_ms < now_ms:
            return None
        with self._lock:
            self._used = {n: e for n, e in self._used.items() if e >= now_ms}
            if nonce in self._used:
                return None
            self._used[nonce] = expires_ms
        return principal
