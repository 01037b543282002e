"""Webhook signatures: HMAC-SHA256 over a timestamp and the body, shared by both ends.

Header: ``X-Edgewatch-Signature: t=<unix seconds>,v1=<hex>`` where the hex digest is
``HMAC-SHA256(secret, f"{t}.".encode() + body)``. The receiver recomputes it with its own
copy of the secret, compares in constant time, and refuses a timestamp outside its replay
window; together with the ``Idempotency-Key`` this makes a captured request useless to
replay later, and a retried one recognisable. Each attempt is signed afresh.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Edgewatch-Signature"
REPLAY_WINDOW_S = 300.0


class SignatureError(ValueError):
    """A missing, malformed, wrong or stale signature; the message says which."""


def _digest(secret: str, timestamp_s: int, body: bytes) -> str:
    message = f"{timestamp_s}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp_s: int) -> str:
    """The header value for ``body`` sent at ``timestamp_s``."""
    return f"t={timestamp_s},v1={_digest(secret, timestamp_s, body)}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now_s: float,
    window_s: float = REPLAY_WINDOW_S,
) -> int:
    """Return the signed timestamp, or raise SignatureError."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp_s = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        raise SignatureError(f"malformed {SIGNATURE_HEADER}: want t=<unix>,v1=<hex>") from None
    if abs(now_s - timestamp_s) > window_s:
        raise SignatureError(
            f"timestamp {timestamp_s} is {abs(now_s - timestamp_s):.0f} s from now"
            f" (replay window {window_s:g} s)"
        )
    if not hmac.compare_digest(given, _digest(secret, timestamp_s, body)):
        raise SignatureError("signature does not match the body")
    return timestamp_s
