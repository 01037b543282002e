"""Short signed acknowledgement links: ``<base>/m/a/<token>``.

The token is 32 URL-safe characters: the recipient's id (one person told of one step of
one alert), the link's expiry (the deadline of that step, in seconds) and 12 bytes of
HMAC-SHA256 over both under the link secret. A link is therefore good for that person,
that alert and until that deadline only; changing any bit makes it forged, and the
secret never leaves the controller. What a link may still do (not used up, not replayed)
is the store's business (``controller/store/notify.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import StrEnum

ACK_PATH = "/m/a"
TOKEN_CHARS = 32
_LAYOUT = struct.Struct(">QI")  # recipient id, expiry (unix seconds)
_MAC_BYTES = 12


class LinkProblem(StrEnum):
    """Why a link is refused; the page says which, and the counter is named after it."""

    FORGED = "forged"  # not a token we signed (damaged, guessed, or made with another key)
    EXPIRED = "expired"
    USED = "used"
    REPLAYED = "replayed"


@dataclass(frozen=True, slots=True)
class Link:
    recipient_id: int
    expires_s: int

    @property
    def expires_ms(self) -> int:
        return self.expires_s * 1000


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the link secret must be at least 32 bytes")
        self._secret = secret

    def token(self, link: Link) -> str:
        payload = _LAYOUT.pack(link.recipient_id, link.expires_s)
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    def verify(self, token: str, *, now_ms: int) -> Link | LinkProblem:
        """The link a token stands for, or why it is refused (forged or expired)."""
        if len(token) != TOKEN_CHARS or not token.isascii():
            return LinkProblem.FORGED
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return LinkProblem.FORGED
        payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        expected = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if len(payload) != _LAYOUT.size or not hmac.compare_digest(mac, expected):
            return LinkProblem.FORGED
        recipient_id, expires_s = _LAYOUT.unpack(payload)
        if now_ms >= expires_s * 1000:
            return LinkProblem.EXPIRED
        return Link(recipient_id, expires_s)


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{ACK_PATH}/{token}"
