"""Payload models of the edgewatch MQTT contract (JSON, schema version ``v``).

Timestamps are UTC epoch milliseconds (``*_ms``) taken at the source; nothing downstream
rewrites them. ``decode`` is the one entry point for bytes off the wire: it refuses
oversized, non-JSON, wrong-version and wrong-shape payloads with a PayloadError whose
``reason`` is a short, countable label.

Every number is bounded, because every one of them ends up in a database column, a
comparison or a loop (docs/wire-limits.md has the table):

- integers (``seq``, ``session``, counters, byte counts) at most ``MAX_INT`` = 2**53 - 1:
  exact in a JSON double, in JavaScript (the console) and in a float64, and far inside a
  signed 64-bit BIGINT (SQLite's INTEGER, PostgreSQL's BIGINT), so sums and ``seq + 1``
  never overflow. A gateway storing a million readings a second needs 285 years to reach it;
- timestamps (``*_ms``) at most ``MAX_TS_MS``, the last millisecond of the year 9999 (the
  largest a ``datetime`` holds);
- intervals at most a day, durations and ages at most a century;
- floats finite: NaN and +/-Infinity are refused everywhere (a NaN compares false with
  every threshold and SQLite stores it as NULL), heartbeat extras included;
- keys of every map bounded in length and count; device names in a heartbeat follow the
  same rule as in a reading.
"""

from __future__ import annotations

import math
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
    model_validator,
)
from pydantic_core import PydanticCustomError

from wire.risk import Colour
from wire.topics import GatewayIdError, validate_gateway_id

SCHEMA_VERSION: Literal[1] = 1
# A batch of 500 readings is about 60 KiB; anything far beyond is a fault or an attack.
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH_READINGS = 2000

# Bounds of the contract's numbers (see the module docstring for why these).
MAX_INT = 2**53 - 1
MAX_SEQ = MAX_INT
MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_INTERVAL_S = 86_400.0  # a heartbeat interval: at most a day
MAX_DURATION_S = 100 * 366 * 86_400.0  # uptime, the age of a reading: at most a century
# Maps in a heartbeat: devices of one gateway (247 slaves per RS-485 bus, a few buses),
# and the small maps (drop reasons, error kinds, health registers, versions).
MAX_DEVICES = 1024
# Stations that push to one gateway's listeners (bench.stations holds 2,000 on one agent).
MAX_STATIONS = 8192
MAX_MAP_ENTRIES = 64
# Numbers in a heartbeat's extras (fields newer agents add): finite, and integers that fit
# a signed 64-bit column.
MAX_EXTRA_INT = 2**63 - 1

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]  # counters, sessions, byte and row counts
TimestampMs = Annotated[int, Field(ge=0, le=MAX_TS_MS)]
DurationS = Annotated[float, Field(ge=0, le=MAX_DURATION_S)]
Label = Annotated[str, Field(min_length=1, max_length=64)]  # a key of a small map


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
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Reading(_Model):
    seq: Seq = Field(description="per-gateway sequence number: monotonic, never reused")
    ts_ms: TimestampMs = Field(description="source timestamp, UTC epoch milliseconds")
    device: Name
    metric: Name
    value: float | None = Field(description="None when the read failed")
    unit: str = Field(default="", max_length=16)
    quality: Quality = Quality.GOOD


class ReadingBatch(_Model):
    v: Literal[1] = SCHEMA_VERSION
    session: Count
    readings: list[Reading] = Field(min_length=1, max_length=MAX_BATCH_READINGS)


class Status(_Model):
    """Birth (online) and will / graceful stop (offline) on the retained status topic."""

    v: Literal[1] = SCHEMA_VERSION
    state: GatewayState
    session: Count
    ts_ms: TimestampMs = 0
    agent_version: str = Field(default="", max_length=32)
    # 0: not said (the controller keeps its default).
    heartbeat_interval_s: float = Field(default=0.0, ge=0, le=MAX_INTERVAL_S)


class ControllerStatus(_Model):
    v: Literal[1] = SCHEMA_VERSION
    state: GatewayState
    ts_ms: TimestampMs = 0


class DeviceHealth(_Model):
    state: str = Field(max_length=32)
    reads_ok: Count = 0
    reads_failed: Count = 0
    consecutive_failures: Count = 0
    errors: dict[Label, Count] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)
    last_good_ms: TimestampMs | None = None
    last_error: str | None = Field(default=None, max_length=512)
    # Health the device reports about itself (reboot count, supply voltage...), by name,
    # as last read; absent from older agents' heartbeats.
    registers: dict[Name, float] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)

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

    # Newer agents may say more (extras): kept as they are, but their numbers must be
    # finite and fit a signed 64-bit column like every other number here.
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    v: Literal[1] = SCHEMA_VERSION
    session: Count
    ts_ms: TimestampMs
    uptime_s: DurationS
    heartbeat_interval_s: float = Field(gt=0, le=MAX_INTERVAL_S)
    buffer_rows: Count
    buffer_bytes: Count
    oldest_unsent_age_s: DurationS
    last_seq: Annotated[int, Field(ge=0, le=MAX_SEQ)]
    dropped: dict[Label, Count] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)
    devices: dict[Name, DeviceHealth] = Field(default_factory=dict, max_length=MAX_DEVICES)
    # Pushing stations' clocks minus the gateway's, by device (their send time against the
    # arrival). Older agents send none; older controllers take it as an extra field.
    station_clock_offsets_ms: dict[Name, Annotated[int, Field(ge=-MAX_TS_MS, le=MAX_TS_MS)]] = (
        Field(default_factory=dict, max_length=MAX_STATIONS)
    )
    config_hash: str = Field(default="", max_length=64)
    versions: dict[Label, Annotated[str, Field(max_length=64)]] = Field(
        default_factory=dict, max_length=MAX_MAP_ENTRIES
    )

    @model_validator(mode="after")
    def _extras_are_bounded(self) -> Health:
        for key, value in (self.model_extra or {}).items():
            problem = _unbounded_number(value)
            if problem is not None:
                kind, what = problem
                raise PydanticCustomError(kind, "{key}: {what}", {"key": key, "what": what})
        return self


def _unbounded_number(value: Any) -> tuple[str, str] | None:
    """(error type, what) for the first unbounded number in ``value`` (a decoded JSON
    value), or None. Nesting is bounded by the JSON parser's recursion limit."""
    if isinstance(value, float) and not math.isfinite(value):
        return "finite_number", f"{value} is not a finite number"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_EXTRA_INT:
        return "less_than_equal", f"{value} does not fit a signed 64-bit integer"
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return next((p for p in map(_unbounded_number, value) if p is not None), None)
    return None


class CommandRequest(_Model):
    v: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    type: str = Field(max_length=32)
    args: dict[str, Any] = Field(default_factory=dict)
    deadline_ms: TimestampMs


class CommandResult(_Model):
    v: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    outcome: Literal["accepted", "succeeded", "failed"]
    detail: str = Field(default="", max_length=2048)
    ts_ms: TimestampMs = 0


class EdgeAlert(_Model):
    """A threshold crossing evaluated on the gateway with the shared rules (wire.risk).

    Published on the ``alerts`` lane ahead of the readings that caused it; the controller
    de-duplicates it against its own evaluation of the same readings (one alert per
    episode of a risk point).
    """

    v: Literal[1] = SCHEMA_VERSION
    session: Count
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="unique per gateway")
    point: Name
    kind: Literal["risk", "blind_spot"] = "risk"
    colour: Colour
    previous: Colour = Colour.GREEN
    ts_ms: TimestampMs = Field(description="source timestamp of the reading that crossed")
    device: Name
    metric: Name
    value: float | None = None
    seq: Seq | None = Field(default=None, description="the reading's seq, if any")


class PayloadError(ValueError):
    """A payload refused at the door; ``reason`` is a short label for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


M = TypeVar("M", bound=BaseModel)


MAX_WHERE_CHARS = 120
# pydantic error types -> the reason a refused payload is counted under.
_REASONS = {
    "json_invalid": "not_json",
    "finite_number": "not_finite",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "int_parsing_size": "out_of_range",
}


def decode(model: type[M], payload: bytes) -> M:
    """Validate ``payload`` as ``model`` or raise PayloadError(reason, detail).

    Reasons: ``oversized``, ``not_json``, ``schema_version``, ``not_finite`` (NaN or
    Infinity), ``out_of_range`` (a number beyond its bound) and ``invalid`` (any other
    break of the contract: a missing or unknown field, a wrong type, a bad name)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        # The location may hold a key the sender chose: never more than a line of it.
        where = (".".join(str(p) for p in first["loc"]) or "payload")[:MAX_WHERE_CHARS]
        if where == "v" and first["type"] != "json_invalid":
            raise PayloadError("schema_version", f"v must be {SCHEMA_VERSION}") from None
        reason = _REASONS.get(first["type"], "invalid")
        if reason == "not_json":
            raise PayloadError(reason, first["msg"]) from None
        raise PayloadError(
            reason, f"{where}: {first['msg']} ({exc.error_count()} errors)"
        ) from None


def encode(message: BaseModel) -> bytes:
    """Serialise a contract message to compact JSON bytes."""
    return message.model_dump_json(exclude_none=False).encode()
