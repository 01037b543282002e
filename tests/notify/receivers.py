"""Where the tests' notifications arrive: a JSON webhook receiver (``edgewatch.json_sink``) and
an SMTP server (aiosmtpd), each on a free loopback port, each a context manager."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass
from types import TracebackType

from aiosmtpd.controller import Controller as SmtpController
from aiosmtpd.smtp import SMTP, Envelope, Session

from edgewatch.broker import free_port
from edgewatch.json_sink import JsonReceiver

__all__ = ["JsonReceiver", "Mail", "SmtpReceiver"]


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
