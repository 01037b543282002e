"""Webhook signatures: HMAC-SHA256 over a timestamp and the body, shared by both ends.

Header: ``X-Edgewatch-Signature: t=<unix seconds>,v1=<hex>`` where the hex digest is
``HMAC-SHA256(secret, f"{t}.".encode() + body)``. The receiver recomputes it with its own
copy of the secret, compares in constant time, and refuses a timestamp outside its replay
window. Each attempt is signed afresh.

De-duplication: the receiver de-duplicates on the body's ``batch_id`` (``dedup_key``),
which the signature covers, never on the ``Idempotency-Key`` header alone, which it does
not: a captured request re-sent within the window with a new header is still the same batch
and is recorded once. The controller sends the header equal to ``batch_id`` (the same on
every retry); a header that differs from the signed ``batch_id`` is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Edgewatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_WINDOW_S = 300.0
MAX_BATCH_ID_CHARS = 256


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


def dedup_key(batch: Mapping[str, Any], header: str | None) -> str:
    """What a receiver de-duplicates a verified body on: its ``batch_id``, which the
    signature covers. Raises ValueError if the body has none, or if the ``Idempotency-Key``
    header is given and differs from it."""
    batch_id = batch.get("batch_id")
    if not isinstance(batch_id, str) or not 0 < len(batch_id) <= MAX_BATCH_ID_CHARS:
        raise ValueError(
            f"batch_id: a string of 1 to {MAX_BATCH_ID_CHARS} characters is required"
            " (the batch is de-duplicated on it)"
        )
    if header is not None and header != batch_id:
        raise ValueError(
            f"{IDEMPOTENCY_HEADER} {header[:80]!r} is not the body's batch_id {batch_id!r}"
        )
    return batch_id
