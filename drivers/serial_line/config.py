"""Config of a serial-line device: how it talks (poll or push, format, addressing) and which
field of its sentences is which metric, as data."""

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
    key: str | None = Field(
        default=None, min_length=1, description="keyvalue: the KEY; framed: X or Y"
    )
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


# framed: which angle of ``STX X SP Y ETB CS $`` a field's key names (its position).
FRAMED_KEYS = {"X": 0, "Y": 1}
FRAMED_POLL_COMMAND = "#DATA"  # measure once: one frame answered
FRAMED_START_COMMAND = "#READ"  # stream frames until #STOP
FRAMED_STOP_COMMAND = "#STOP"
MAX_ENQ_ID = 79  # 0xB0 + id must stay one byte


class SerialLineDeviceConfig(DeviceConfig):
    """A device on a serial line speaking ASCII sentences. Errors name the device."""

    driver: Literal["serial_line"]
    style: Literal["poll", "push"]
    format: Literal["nmea", "keyvalue", "framed"] = "nmea"
    sentence: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9]+$", description="nmea: TYPE of the readings"
    )
    address: str | None = Field(default=None, max_length=16, pattern=r"^[A-Za-z0-9]+$")
    address_field: int | None = Field(
        default=None, ge=0, description="nmea: index of the field that must equal address"
    )
    addressing: Literal["enq"] | None = Field(
        default=None,
        description="framed, poll: 'enq' asks by the byte 0xB0 + address, then ENQ (0x05),"
        " on a shared line, instead of a command",
    )
    command: str | None = Field(
        default=None,
        max_length=200,
        description="poll: what to send ('{address}' is replaced); nmea: the sentence body,"
        " framed with $ and checksum; keyvalue, framed: a raw line (CRLF added). Default"
        " 'POLL,{address}' (nmea), '#DATA' (framed). framed push: sent once to start the"
        " stream, default '#READ'",
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
        """What a poll (or, framed push, the start of the stream) sends, before framing."""
        if self.command is not None:
            command = self.command
        elif self.format != "framed":
            command = "POLL,{address}"
        else:
            command = FRAMED_POLL_COMMAND if self.style == "poll" else FRAMED_START_COMMAND
        return command.replace("{address}", self.address or "")

    def enq_id(self) -> int | None:
        """The device's id on a line addressed by ENQ (``addressing = "enq"``), else None."""
        return int(self.address or "0") if self.addressing == "enq" else None

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
        elif self.format == "keyvalue" and any(f.key is None for f in self.fields):
            raise ValueError(f"{self.describe()}: keyvalue fields are chosen by key")
        if self.format == "framed":
            self._check_framed()
        elif self.addressing is not None:
            raise ValueError(
                f"{self.describe()}: addressing {self.addressing!r} is for format 'framed',"
                f" not {self.format!r}"
            )
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

    def _check_framed(self) -> None:
        name = self.describe()
        for field in self.fields:
            if field.key not in FRAMED_KEYS:
                raise ValueError(
                    f"{name}: {field.describe()}: framed fields are chosen by key 'X' or 'Y'"
                )
        if self.sentence is not None:
            raise ValueError(f"{name}: sentence: a framed frame has no sentence TYPE; drop it")
        if self.address_field is not None:
            raise ValueError(f"{name}: address_field: a framed frame carries no address; drop it")
        if self.addressing != "enq":
            return
        if self.style != "poll":
            raise ValueError(
                f"{name}: addressing 'enq' asks for one frame at a time: style must be"
                " 'poll' (a streaming device would talk over the others on the line)"
            )
        if self.command is not None:
            raise ValueError(
                f"{name}: command: addressing 'enq' replaces the #DATA command; drop command"
            )
        if self.address is None or not self.address.isdigit():
            raise ValueError(f"{name}: address: addressing 'enq' needs a numeric address")
        if int(self.address) > MAX_ENQ_ID:
            raise ValueError(
                f"{name}: address: {self.address} is not 0-{MAX_ENQ_ID}"
                " (the address byte 0xB0 + id must stay one byte)"
            )
