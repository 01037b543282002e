"""The MQTT contract between agents and the controller: topics, payloads, schema version.

No I/O lives here; both sides import it, so a change to the contract is one change.
"""

from wire.payloads import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    CommandRequest,
    CommandResult,
    ControllerStatus,
    DeviceHealth,
    EdgeAlert,
    GatewayState,
    Health,
    PayloadError,
    Quality,
    Reading,
    ReadingBatch,
    Status,
    decode,
    encode,
)
from wire.risk import Colour
from wire.topics import (
    CONTROLLER_STATUS_TOPIC,
    PREFIX,
    GatewayIdError,
    Topic,
    TopicError,
    TopicKind,
    gateway_subscription,
    parse_topic,
    topic_for,
    validate_gateway_id,
)

__all__ = [
    "CONTROLLER_STATUS_TOPIC",
    "MAX_PAYLOAD_BYTES",
    "PREFIX",
    "SCHEMA_VERSION",
    "Colour",
    "CommandRequest",
    "CommandResult",
    "ControllerStatus",
    "DeviceHealth",
    "EdgeAlert",
    "GatewayIdError",
    "GatewayState",
    "Health",
    "PayloadError",
    "Quality",
    "Reading",
    "ReadingBatch",
    "Status",
    "Topic",
    "TopicError",
    "TopicKind",
    "decode",
    "encode",
    "gateway_subscription",
    "parse_topic",
    "topic_for",
    "validate_gateway_id",
]
