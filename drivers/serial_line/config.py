"""Config of a serial-line device: how it talks (poll or push, format) and which field of
its sentences is which metric, as data."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.base import DeviceConfig


class FieldConfig(BaseModel):
    """One metric taken from one field of a sentence (``index``) or one key (``key``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    index: int | None = Field(
        default=None, ge=0, le=100, description="nmea: 0-based position after the TYPE"
    )
    key: str | None = Field(default=None, min_length=1, description="keyvalue: the KEY")
    scale: float = Field(default=1.0, description="value = number * scale + offset")
    offset: float = 0.0
    unit: str = Field(default="", max_length=16)
    valid_min: float | None = None
    valid_max: float | None = None

    def describe(self) -> str:
        where = f"index {self.index}" if self.index is not None else f"key {self.key!r}"
        return f"field {self.metric!r} ({where})"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.index is None) == (self.key is None):
            raise ValueError(
                f"field {self.metric!r}: give exactly one of index (nmea) or key (keyvalue)"
            )
        if self.scale == 0:
            raise ValueError(f"{self.describe()}: scale 0 would read every value as the offset")
        return self


class SerialLineDeviceConfig(DeviceConfig):
    """A device on a serial line speaking ASCII sentences. Errors name the device."""

    driver: Literal["serial_line"]
    style: Literal["poll", "push"]
    format: Literal["nmea", "keyvalue"] = "nmea"
    sentence: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9]+$", description="nmea: TYPE of the readings"
    )
    address: str | None = Field(default=None, max_length=16, pattern=r"^[A-Za-z0-9]+$")
    address_field: int | None = Field(
        default=None, ge=0, description="nmea: index of the field that must equal address"
    )
    command: str | None = Field(
        default=None,
        max_length=200,
        description="poll: what to send ('{address}' is replaced); nmea: the sentence body,"
        " framed with $ and checksum; keyvalue: a raw line. Default 'POLL,{address}'",
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=10, description="answer / sentence timeout; default: the port's"
    )
    max_line_bytes: int = Field(default=256, ge=16, le=4096)
    fields: list[FieldConfig] = Field(min_length=1)

    def describe(self) -> str:
        """How errors name this device: ``device 'gas-1' (serial_line, address 1)``."""
        where = f", address {self.address}" if self.address is not None else ""
        return f"device {self.name!r} (serial_line{where})"

    def poll_command(self) -> str:
        command = self.command if self.command is not None else "POLL,{address}"
        return command.replace("{address}", self.address or "")

    @model_validator(mode="after")
    def _check(self) -> Self:
        metrics = [f.metric for f in self.fields]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"{self.describe()}: metrics repeat: {metrics}")
        if self.format == "nmea":
            if self.sentence is None:
                raise ValueError(f"{self.describe()}: nmea needs sentence (the TYPE to read)")
            if any(f.index is None for f in self.fields):
                raise ValueError(f"{self.describe()}: nmea fields are chosen by index")
        elif any(f.key is None for f in self.fields):
            raise ValueError(f"{self.describe()}: keyvalue fields are chosen by key")
        if self.address_field is not None and self.address is None:
            raise ValueError(f"{self.describe()}: address_field needs address")
        if (
            self.style == "poll"
            and self.format == "nmea"
            and self.command is None
            and self.address is None
        ):
            raise ValueError(f"{self.describe()}: the default poll command needs address")
        if self.style == "poll" and self.format == "keyvalue" and self.command is None:
            raise ValueError(f"{self.describe()}: polling keyvalue lines needs a command")
        return self
