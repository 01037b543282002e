"""The contract every driver meets: passive, one device, ``read()`` on demand.

A driver never schedules, retries, buffers or knows MQTT: the agent owns time. The agent's
port owner thread opens the serial port and hands it to the driver; every transaction on
that port happens on that thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from drivers.counters import CounterValue
from wire import Quality


class ErrorKind(StrEnum):
    """Why a read failed: the label of the per-device health counter it moves."""

    TIMEOUT = "timeout"  # no answer (or not all of it) in time
    CRC = "crc"  # an answer whose checksum is wrong
    WRONG_ID = "wrong_id"  # an answer from another slave id than asked
    EXCEPTION = "exception"  # a Modbus exception response
    GARBAGE = "garbage"  # bytes that are no valid frame
    INVALID_VALUE = "invalid_value"  # a sentinel ("no sensor") or out-of-range value
    IO = "io"  # the port itself failed


class InterFrameSilence(StrEnum):
    """The silence a Modbus RTU master keeps before each request (a [[ports]] setting).

    ``modbus-standard``: 3.5 character times, but at least 1.75 ms (the Modbus spec fixes
    1.75 ms above 19200 baud, for devices whose UARTs cannot time shorter gaps); this is
    what minimalmodbus does. ``char-times``: 3.5 character times at any baud (0.33 ms at
    115200): faster buses, for devices that cope.
    """

    MODBUS_STANDARD = "modbus-standard"
    CHAR_TIMES = "char-times"


@dataclass(frozen=True, slots=True)
class LineOptions:
    """Settings of the line (its [[ports]] entry) that a driver needs beyond the open port."""

    inter_frame_silence: InterFrameSilence = InterFrameSilence.MODBUS_STANDARD


class DriverError(Exception):
    """A failed read, naming the device (and register) and saying why."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Measurement:
    """One metric of one read. ``value`` is None when quality is not good.

    A counter (a rain gauge's tip count) also carries its raw count in ``counter``, so the
    agent can compute increments that survive rollover and reboot
    (``drivers.counters.counter_increment``); ``value`` is then ``raw * scale``.
    """

    metric: str
    value: float | None
    unit: str = ""
    quality: Quality = Quality.GOOD
    error: str | None = None
    counter: CounterValue | None = None
    error_kind: ErrorKind | None = None  # why it is bad (invalid_value, exception), if known


class Driver(Protocol):
    """What the agent calls. ``read`` raises DriverError when the whole read failed."""

    @property
    def device_name(self) -> str: ...

    def read(self) -> list[Measurement]: ...

    def close(self) -> None: ...


@runtime_checkable
class HealthReporter(Protocol):
    """A driver that also reads the device's own health (reboot count, supply voltage...).

    ``health_registers`` gives those values (by name, scaled) as the last ``read()`` found
    them: the agent puts them in the device's heartbeat entry, not among its readings.
    """

    def health_registers(self) -> dict[str, float]: ...


class DeviceConfig(BaseModel):
    """Fields every device has, whatever its driver; each driver's config model extends it.

    ``interval_s`` and ``stuck_after_reads`` are read by the agent (which owns time),
    never by the driver.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    driver: str
    port: str = Field(min_length=1, description="name of a [[ports]] entry")
    interval_s: float = Field(default=1.0, gt=0, le=86_400)
    stuck_after_reads: int | None = Field(
        default=None,
        ge=2,
        le=10_000,
        description="a value unchanged for this many good reads in a row is reported"
        " stale (a frozen sensor); read by the agent. Default: never",
    )
