"""Topic names of the edgewatch MQTT contract, as validated value objects.

Every topic is ``edgewatch/v1/<gateway>/<kind>[/<command id>]`` except the controller's
own retained status, ``edgewatch/v1/controller/status``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "edgewatch/v1"
CONTROLLER_STATUS_TOPIC = f"{PREFIX}/controller/status"

# A DNS label: lower-case letters, digits and inner hyphens, 1 to 63 characters.
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Command ids travel in a topic level, so they obey the same character rules.
_COMMAND_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# "controller" is the controller's own level; a gateway may not take that name.
RESERVED_GATEWAY_IDS = frozenset({"controller"})


class TopicError(ValueError):
    """A topic that is not part of the contract."""


class GatewayIdError(ValueError):
    """A gateway id that is not a DNS label (or is reserved)."""


class TopicKind(StrEnum):
    STATUS = "status"
    HEALTH = "health"
    READINGS = "readings"
    BACKLOG = "backlog"
    ALERTS = "alerts"
    CMD = "cmd"
    CMD_RESULT = "cmd-result"


_WITH_COMMAND_ID = frozenset({TopicKind.CMD, TopicKind.CMD_RESULT})


def validate_gateway_id(gateway_id: str) -> str:
    """Return ``gateway_id`` if it is a usable gateway id, else raise GatewayIdError."""
    if not _DNS_LABEL.match(gateway_id):
        raise GatewayIdError(
            f"gateway id {gateway_id!r} is not a DNS label: use 1-63 lower-case letters, "
            "digits and inner hyphens (e.g. 'gw-yuzhong-07')"
        )
    if gateway_id in RESERVED_GATEWAY_IDS:
        raise GatewayIdError(f"gateway id {gateway_id!r} is reserved")
    return gateway_id


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic of the contract."""

    gateway_id: str
    kind: TopicKind
    command_id: str | None = None

    def __post_init__(self) -> None:
        validate_gateway_id(self.gateway_id)
        if self.kind in _WITH_COMMAND_ID:
            if self.command_id is None or not _COMMAND_ID.match(self.command_id):
                raise TopicError(f"{self.kind} topic needs a command id of [A-Za-z0-9_-]{{1,64}}")
        elif self.command_id is not None:
            raise TopicError(f"{self.kind} topic takes no command id")

    def __str__(self) -> str:
        base = f"{PREFIX}/{self.gateway_id}/{self.kind.value}"
        return f"{base}/{self.command_id}" if self.command_id else base


def topic_for(gateway_id: str, kind: TopicKind, command_id: str | None = None) -> str:
    """The topic string for one gateway's ``kind`` (validated)."""
    return str(Topic(gateway_id, kind, command_id))


def gateway_subscription(gateway_id: str = "+", kind: str = "#") -> str:
    """A subscription filter below the prefix, e.g. every gateway's readings."""
    if gateway_id != "+":
        validate_gateway_id(gateway_id)
    return f"{PREFIX}/{gateway_id}/{kind}"


def parse_topic(topic: str) -> Topic:
    """Parse a topic of the contract or raise TopicError saying what is wrong with it."""
    prefix = PREFIX + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic {topic!r} is not under {PREFIX}/")
    parts = topic[len(prefix) :].split("/")
    if len(parts) not in (2, 3):
        raise TopicError(f"topic {topic!r} has {len(parts)} levels below the prefix")
    try:
        kind = TopicKind(parts[1])
    except ValueError:
        raise TopicError(f"topic {topic!r}: unknown kind {parts[1]!r}") from None
    try:
        return Topic(parts[0], kind, parts[2] if len(parts) == 3 else None)
    except GatewayIdError as exc:
        raise TopicError(f"topic {topic!r}: {exc}") from None
