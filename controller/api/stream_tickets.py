"""Short-lived, single-use tickets for the alert stream.

A browser's ``EventSource`` cannot send an ``Authorization`` header, and an API token must
never travel in a URL (it would land in logs and history). So the console first asks, with
its token, ``POST /api/v1/alerts/stream-ticket``; the answer is a ticket signed with a key
that lives only in this controller process, valid for ``TICKET_TTL_S`` and for one use.
The ticket names the token and binds it (an HMAC of the token's stored digest under the
process's key: never the token, never its digest); redeeming it checks again that this very
token is still active with the same role and place, so a revoked token's ticket opens
nothing, even once its name has been given to a new token.
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
_UNBOUND = "-"  # the binding of a principal without a token (demo): matches no token row


@dataclass(frozen=True, slots=True)
class Ticket:
    value: str
    expires_ms: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class TicketClaims:
    """What a genuine, fresh, unused ticket says: who it was issued to, and which token."""

    principal: Principal  # as issued: name, role, place (no digest)
    token_binding: str


class StreamTickets:
    """Issue and redeem tickets; the signing key is made fresh for each process."""

    def __init__(self, *, ttl_s: float = TICKET_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._key = secrets.token_bytes(32)
        self._used: dict[str, int] = {}  # nonce -> expiry, forgotten once expired
        self._lock = threading.Lock()

    def _sign(self, body: bytes) -> str:
        return _b64(hmac.new(self._key, body, hashlib.sha256).digest())

    def _binding(self, token_sha256: str | None) -> str:
        if token_sha256 is None:
            return _UNBOUND
        return self._sign(b"token:" + token_sha256.encode())

    def issue(self, principal: Principal, *, now_ms: int) -> Ticket:
        expires_ms = now_ms + int(self.ttl_s * 1000)
        body = json.dumps(
            {
                "name": principal.name,
                "role": principal.role.value,
                "place": principal.place,
                "token": self._binding(principal.token_sha256),
                "exp": expires_ms,
                "nonce": secrets.token_urlsafe(12),
            },
            separators=(",", ":"),
        ).encode()
        return Ticket(value=f"{_b64(body)}.{self._sign(body)}", expires_ms=expires_ms)

    def redeem(self, value: str, *, now_ms: int) -> TicketClaims | None:
        """Whom the ticket was issued to; None if forged, expired or used. The caller then
        asks ``holder`` whether that token still grants it."""
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
            binding = str(fields["token"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires_ms < now_ms:
            return None
        with self._lock:
            self._used = {n: e for n, e in self._used.items() if e >= now_ms}
            if nonce in self._used:
                return None
            self._used[nonce] = expires_ms
        return TicketClaims(principal, binding)

    def holder(self, conn: sqlite3.Connection, claims: TicketClaims) -> Principal | None:
        """The principal of the very token the ticket was issued for, if that token is still
        active with the role and place the ticket names; else None."""
        issued = claims.principal
        row = conn.execute(
            "SELECT token_sha256, role, place FROM api_tokens"
            " WHERE name = ? AND revoked_ms IS NULL",
            (issued.name,),
        ).fetchone()
        if row is None or not hmac.compare_digest(self._binding(row[0]), claims.token_binding):
            return None
        if (row[1], row[2]) != (issued.role.value, issued.place):
            return None
        return Principal(issued.name, issued.role, issued.place, token_sha256=row[0])
