"""Notification channels through Apprise: which URLs a channel may have, which addresses
its people may have, and the sender that turns (channel, address, message) into one call.

A channel URL is an Apprise URL from the config, never from the API. Two sorts are taken:

- the group bots of WeCom, DingTalk, Feishu and Lark (``wecombot://``, ``dingtalk://``,
  ``feishu://``, ``lark://``): Apprise posts to the service's own fixed endpoint, the URL
  only carries the bot's key;
- e-mail (``mailto://``, ``mailtos://``) and generic webhooks (``json://``, ``jsons://``,
  ``form://``, ``forms://``, ``xml://``, ``xmls://``, which is how an SMS gateway is
  reached): these name a host, and the host (and an ``smtp=`` host) must be listed in
  ``[notify] allowed_hosts``, so that no URL makes the controller talk to a host nobody
  chose (no server-side request forgery). Redirects are never followed.

``{to}`` in a URL is the person's address (an e-mail address, a phone number), URL-encoded.
Apprise reports a failure through its logger: the sender keeps the last message of each
thread to say why, and the channel's URL (its credentials) is never logged by us.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from controller.config_types import Section

log = logging.getLogger(__name__)

FIXED_HOST_SCHEMES = frozenset({"wecombot", "dingtalk", "feishu", "lark"})
HOST_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls", "mailto", "mailtos"})
EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
ADDRESS_PLACEHOLDER = "{to}"

_EMAIL = re.compile(r"^[^@\s<>,;:\"'()\[\]\\]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")
_PHONE = re.compile(r"^\+?[0-9]{5,15}$")
_WEBHOOK_ADDRESS = re.compile(r"^[A-Za-z0-9_.:+@-]{1,128}$")


class ChannelKind(StrEnum):
    EMAIL = "email"  # each person an e-mail address ({to})
    SMS = "sms"  # each person a phone number ({to}), through a gateway
    GROUP = "group"  # a group bot: everyone of the roster on it reads the same message
    WEBHOOK = "webhook"  # a JSON/form/XML endpoint; {to} optional


def check_address(kind: ChannelKind, to: str | None) -> str | None:
    """Why ``to`` is not an address for a channel of ``kind`` (None: it is)."""
    if kind is ChannelKind.GROUP:
        return None if to is None else "a group channel takes no 'to' (everyone reads the group)"
    if to is None:
        return None if kind is ChannelKind.WEBHOOK else f"an {kind.value} channel needs 'to'"
    if kind is ChannelKind.EMAIL and not _EMAIL.match(to):
        return f"'to' = {to[:64]!r} is not an e-mail address"
    if kind is ChannelKind.SMS and not _PHONE.match(to):
        return f"'to' = {to[:64]!r} is not a phone number (digits, 5 to 15, an optional +)"
    if kind is ChannelKind.WEBHOOK and not _WEBHOOK_ADDRESS.match(to):
        return f"'to' = {to[:64]!r}: letters, digits and _.:+@- only, up to 128"
    return None


def check_channel_url(url: str, kind: ChannelKind, allowed_hosts: list[str]) -> str | None:
    """Why this Apprise URL may not be a channel of ``kind`` (None: it may). The message
    names the scheme and host, never the URL (it may hold credentials)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in FIXED_HOST_SCHEMES | HOST_SCHEMES:
        allowed = ", ".join(sorted(FIXED_HOST_SCHEMES | HOST_SCHEMES))
        return f"url scheme {scheme or '(none)'!r} is not one edgewatch sends with ({allowed})"
    wants_address = kind in (ChannelKind.EMAIL, ChannelKind.SMS)
    has_placeholder = ADDRESS_PLACEHOLDER in url
    if wants_address and not has_placeholder:
        return f"an {kind.value} channel's url must hold {ADDRESS_PLACEHOLDER} (the address)"
    if kind is ChannelKind.GROUP and has_placeholder:
        return f"a group channel's url has no {ADDRESS_PLACEHOLDER}"
    if kind is ChannelKind.EMAIL and scheme not in EMAIL_SCHEMES:
        return f"an email channel's url is mailto:// or mailtos://, not {scheme}://"
    if scheme in HOST_SCHEMES:
        for host in _hosts(url.replace(ADDRESS_PLACEHOLDER, "x")):
            if host.lower() not in {h.lower() for h in allowed_hosts}:
                return (
                    f"host {host!r} is not in notify.allowed_hosts: list it there if the"
                    " controller may send to it"
                )
    if _instantiate(url.replace(ADDRESS_PLACEHOLDER, _sample_address(kind))) is None:
        return f"Apprise cannot use this {scheme}:// url (see the Apprise docs for its form)"
    return None


def _hosts(url: str) -> list[str]:
    parts = urlsplit(url)
    hosts = [parts.hostname or ""]
    for value in parse_qs(parts.query).get("smtp", []):
        hosts.append(value.split(":")[0])
    return hosts


def _sample_address(kind: ChannelKind) -> str:
    return {ChannelKind.EMAIL: "someone@example.org", ChannelKind.SMS: "13800000000"}.get(
        kind, "someone"
    )


def address_url(url: str, to: str | None) -> str:
    return url if to is None else url.replace(ADDRESS_PLACEHOLDER, quote(to, safe="@"))


def _instantiate(url: str, timeout_s: float | None = None) -> Any:
    import apprise  # noqa: PLC0415 (the controller's extra; loaded where a channel is used)

    _capture_apprise_logs()
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return None
    if hasattr(plugin, "redirects"):
        plugin.redirects = False  # a configured host may not send us elsewhere
    if timeout_s is not None:
        plugin.socket_connect_timeout = timeout_s
        plugin.socket_read_timeout = timeout_s
    return plugin


class Message(Section):
    title: str
    body: str


class _LastError(logging.Handler):
    """Keeps the last warning Apprise logged on each thread: why a send failed."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        self.local.message = record.getMessage()[:300]

    def take(self) -> str | None:
        message: str | None = getattr(self.local, "message", None)
        self.local.message = None
        return message


_LAST_ERROR = _LastError()
_CAPTURE_LOCK = threading.Lock()


def _capture_apprise_logs() -> None:
    """Apprise's own log lines stay with the sender (they may name a host and an address);
    edgewatch logs a channel's trouble once, by the channel's name."""
    with _CAPTURE_LOCK:
        logger = logging.getLogger("apprise")
        if _LAST_ERROR not in logger.handlers:
            logger.addHandler(_LAST_ERROR)
            logger.propagate = False
            logger.setLevel(logging.WARNING)


class Sender:
    """Sends one message to one (channel, address), reusing Apprise's plugin objects (an LRU
    of ``cache_size``); thread-safe."""

    def __init__(self, urls: dict[str, str], *, timeout_s: float, cache_size: int = 4096) -> None:
        self._urls = dict(urls)
        self._timeout_s = timeout_s
        self._cache: OrderedDict[tuple[str, str | None], Any] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _plugin(self, channel: str, to: str | None) -> Any:
        key = (channel, to)
        with self._lock:
            plugin = self._cache.get(key)
            if plugin is not None:
                self._cache.move_to_end(key)
                return plugin
        url = self._urls.get(channel)
        if url is None:
            return None
        plugin = _instantiate(address_url(url, to), self._timeout_s)
        if plugin is None:
            return None
        with self._lock:
            self._cache[key] = plugin
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return plugin

    def send(self, channel: str, to: str | None, message: Message) -> str | None:
        """None when the channel took the message; otherwise why not (one line)."""
        plugin = self._plugin(channel, to)
        if plugin is None:
            return f"channel {channel!r} is not configured (or Apprise cannot use its url)"
        _LAST_ERROR.take()
        try:
            ok = plugin.notify(title=message.title, body=message.body)
        except Exception as exc:  # a plugin bug must not kill a sender thread
            return f"{type(exc).__name__} in Apprise's {plugin.service_name}"
        if ok:
            return None
        return _LAST_ERROR.take() or f"{plugin.service_name} did not take the message"
