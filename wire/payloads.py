"""Payload models of the edgewatch MQTT contract (JSON, schema version ``v``).

Timestamps are UTC epoch milliseconds (``*_ms``) taken at the source; nothing downstream
rewrites them. ``decode`` is the one entry point for bytes off the wire: it refuses
oversized, non-JSON, wrong-version and wrong-shape payloads with a PayloadError whose
``reason`` is a short, countable label.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from wire.risk import Colour
from wire.topics import GatewayIdError, validate_gateway_id

SCHEMA_VERSION: Literal[1] = 1
# A batch of 500 readings is about 60 KiB; anything far beyond is a fault or an attack.
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH_READINGS = 2000

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _gateway_id(value: str) -> str:
    try:
        return validate_gateway_id(value)
    except GatewayIdError as exc:
        raise ValueError(str(exc)) from None


# A gateway id in a model (config, API input): a DNS label, not reserved; its error is the
# one validate_gateway_id gives.
ValidGatewayId = Annotated[str, AfterValidator(_gateway_id)]


class Quality(StrEnum):
    GOOD = "good"
    BAD = "bad"  # the read failed, or the value is out of range / a sentinel
    STALE = "stale"  # no fresh value: the last good one is being repeated
    # Read while the device was in maintenance (a technician at work): the value is kept,
    # but it is no measurement of the world and never raises an alert.
    MAINTENANCE = "maintenance"
    # The station itself says the value is not a plain measurement (HJ212 flags M
    # maintenance, C calibration, S manual input, or an unknown flag): kept, never an alert.
    UNCERTAIN = "uncertain"

    @property
    def carries_value(self) -> bool:
        return self in (Quality.GOOD, Quality.MAINTENANCE, Quality.UNCERTAIN)


class GatewayState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reading(_Model):
    seq: int = Field(ge=1, description="per-gateway sequence number: monotonic, never reused")
    ts_ms: int = Field(ge=0, description="source timestamp, UTC epoch milliseconds")
    device: Name
    metric: Name
    value: float | None = Field(description="None when the read failed")
    unit: str = Field(default="", max_length=16)
    quality: Quality = Quality.GOOD


class ReadingBatch(_Model):
    v: Literal[1] = SCHEMA_VERSION
    session: int = Field(ge=0)
    readings: list[Reading] = Field(min_length=1, max_length=MAX_BATCH_READINGS)


class Status(_Model):
    """Birth (online) and will / graceful stop (offline) on the retained status topic."""

    v: Literal[1] = SCHEMA_VERSION
    state: GatewayState
    session: int = Field(ge=0)
    ts_ms: int = Field(default=0, ge=0)
    agent_version: str = Field(default="", max_length=32)
    heartbeat_interval_s: float = Field(default=0.0, ge=0)


class ControllerStatus(_Model):
    v: Literal[1] = SCHEMA_VERSION
    state: GatewayState
    ts_ms: int = Field(default=0, ge=0)


class DeviceHealth(_Model):
    state: str = Field(max_length=32)
    reads_ok: int = Field(default=0, ge=0)
    reads_failed: int = Field(default=0, ge=0)
    consecutive_failures: int = Field(default=0, ge=0)
    errors: dict[str, int] = Field(default_factory=dict)
    last_good_ms: int | None = None
    last_error: str | None = Field(default=None, max_length=512)
    # Health the device reports about itself (reboot count, supply voltage...), by name,
    # as last read; absent from older agents' heartbeats.
    registers: dict[str, float] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _registers_only_when_read(self, handler: SerializerFunctionWrapHandler) -> Any:
        """No ``registers`` key for a device without health registers: a controller from
        before the field (which refuses unknown fields) still takes the heartbeat."""
        data = handler(self)
        if isinstance(data, dict) and not self.registers:
            data.pop("registers", None)
        return data


class Health(_Model):
    """Heartbeat: what an operator needs to judge a gateway without a site visit."""

    model_config = ConfigDict(extra="allow", frozen=True)  # newer agents may say more
    v: Literal[1] = SCHEMA_VERSION
    session: int = Field(ge=0)
    ts_ms: int = Field(ge=0)
    uptime_s: float = Field(ge=0)
    heartbeat_interval_s: float = Field(gt=0)
    buffer_rows: int = Field(ge=0)
    buffer_bytes: int = Field(ge=0)
    oldest_unsent_age_s: float = Field(ge=0)
    last_seq: int = Field(ge=0)
    dropped: dict[str, int] = Field(default_factory=dict)
    devices: dict[str, DeviceHealth] = Field(default_factory=dict)
    # Pushing stations' clocks minus the gateway's, by device (their send time against the
    # arrival). Older agents send none; older controllers take it as an extra field.
    station_clock_offsets_ms: dict[str, int] = Field(default_factory=dict)
    config_hash: str = Field(default="", max_length=64)
    versions: dict[str, str] = Field(default_factory=dict)


class CommandRequest(_Model):
    v: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    type: str = Field(max_length=32)
    args: dict[str, Any] = Field(default_factory=dict)
    deadline_ms: int = Field(ge=0)


class CommandResult(_Model):
    v: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    outcome: Literal["accepted", "succeeded", "failed"]
    detail: str = Field(default="", max_length=2048)
    ts_ms: int = Field(default=0, ge=0)


class EdgeAlert(_Model):
    """A threshold crossing evaluated on the gateway with the shared rules (wire.risk).

    Published on the ``alerts`` lane ahead of the readings that caused it; the controller
    de-duplicates it against its own evaluation of the same readings (one alert per
    episode of a risk point).
    """

    v: Literal[1] = SCHEMA_VERSION
    session: int = Field(ge=0)
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="unique per gateway")
    point: Name
    kind: Literal["risk", "blind_spot"] = "risk"
    colour: Colour
    previous: Colour = Colour.GREEN
    ts_ms: int = Field(ge=0, description="source timestamp of the reading that crossed")
    device: Name
    metric: Name
    value: float | None = None
    seq: int | None = Field(default=None, ge=1, description="the reading's seq, if any")


class PayloadError(ValueError):
    """A payload refused at the door; ``reason`` is a short label for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


M = TypeVar("M", bound=BaseModel)


def decode(model: type[M], payload: bytes) -> M:
    """Validate ``payload`` as ``model`` or raise PayloadError(reason, detail)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        if first["type"] == "json_invalid":
            raise PayloadError("not_json", first["msg"]) from None
        if where == "v":
            raise PayloadError("schema_version", f"v must be {SCHEMA_VERSION}") from None
        raise PayloadError(
            "invalid", f"{where}: {first['msg']} ({exc.error_count()} errors)"
        ) from None


def encode(message: BaseModel) -> bytes:
    """Serialise a contract message to compact JSON bytes."""
    return message.model_dump_json(exclude_none=False).encode()
