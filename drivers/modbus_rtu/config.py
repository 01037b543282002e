"""Config of a Modbus RTU device: its slave address and its register map, as data.

A register's place is explicit: ``address`` is the 0-based protocol address (what goes on
the wire), ``register`` the 1-based number a manual prints (40001 = holding address 0,
30001 = input address 0). Everything FIELD-DEVICES.md lists is data here: fixed or
register-based scale, byte and word order, sentinels, valid ranges and counters; and the
device-level procedures some families need: a coil that enables writes (``write_enable``),
health registers reported apart from readings (``health``) and a measurement that must
be triggered before it is read (``trigger``).
"""

from __future__ import annotations

import itertools
from enum import IntEnum, StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.base import DeviceConfig

MAX_ADDRESS = 0xFFFF


class RegisterType(StrEnum):
    U16 = "u16"
    I16 = "i16"
    U32 = "u32"
    I32 = "i32"
    F32 = "f32"

    @property
    def words(self) -> int:
        """How many 16-bit registers a value of this type spans."""
        return 1 if self in (RegisterType.U16, RegisterType.I16) else 2


class WordOrder(StrEnum):
    """Where the bytes of a value sit on the wire, A being the most significant byte.

    For 32-bit types all four letters matter; for 16-bit types only whether the two bytes
    of the word are swapped (``BADC`` and ``DCBA`` swap them, ``ABCD`` and ``CDAB`` do not).
    """

    HIGH_FIRST = "ABCD"  # the Modbus convention: big-endian words, high word first
    LOW_FIRST = "CDAB"  # low word first ("word swapped"): inclinometers, meters
    BYTE_SWAPPED = "BADC"  # high word first, bytes of each word swapped
    LITTLE_ENDIAN = "DCBA"  # everything reversed

    @property
    def swaps_words(self) -> bool:
        return self in (WordOrder.LOW_FIRST, WordOrder.LITTLE_ENDIAN)

    @property
    def swaps_bytes(self) -> bool:
        return self in (WordOrder.BYTE_SWAPPED, WordOrder.LITTLE_ENDIAN)


class RegisterTable(IntEnum):
    """The function code that reads the register: holding (03) or input (04)."""

    HOLDING = 3
    INPUT = 4


class RegisterKind(StrEnum):
    VALUE = "value"  # a measurement: raw * scale + offset
    COUNTER = "counter"  # a count that rolls over and resets (see drivers.counters)


# Documented 1-based register numbers: (first number, table) for 5- and 6-digit styles.
_REGISTER_NUMBERING = (
    (400001, 465536, RegisterTable.HOLDING),
    (300001, 365536, RegisterTable.INPUT),
    (40001, 49999, RegisterTable.HOLDING),
    (30001, 39999, RegisterTable.INPUT),
)


def resolve_register_number(number: int) -> tuple[RegisterTable, int]:
    """A documented 1-based number (40001, 300001, ...) as (table, 0-based address)."""
    for first, last, table in _REGISTER_NUMBERING:
        if first <= number <= last:
            return table, number - first
    raise ValueError(
        f"register {number} is not a documented 4xxxx (holding) or 3xxxx (input) number;"
        " use address for a 0-based protocol address"
    )


class RegisterConfig(BaseModel):
    """One metric read from one register (or two, for 32-bit types).

    Its place is given one way only: ``address`` (the 0-based protocol address that goes on
    the wire) or ``register`` (the 1-based number a manual prints: 40001 is holding address
    0, 30001 input address 0). Manuals are sometimes off by one: check against the device.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    address: int = Field(ge=0, le=MAX_ADDRESS, description="protocol address, 0-based")
    # "register" in config; renamed here because BaseModel has a ``register`` attribute.
    register_number: int | None = Field(
        default=None, alias="register", description="documented 1-based number"
    )
    type: RegisterType = RegisterType.U16
    kind: RegisterKind = RegisterKind.VALUE
    word_order: WordOrder = WordOrder.HIGH_FIRST
    scale: float = Field(default=1.0, description="value = raw * scale + offset")
    offset: float = 0.0
    decimals_address: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ADDRESS,
        description="address (same table) of a register holding the number of decimals:"
        " value = raw / 10**decimals * scale + offset",
    )
    sentinels: tuple[int, ...] = Field(
        default=(), description="raw register contents that mean 'no sensor / invalid'"
    )
    valid_min: float | None = None
    valid_max: float | None = None
    modulus: int | None = Field(
        default=None, ge=2, description="where a counter rolls over (default 2**bits)"
    )
    unit: str = Field(default="", max_length=16)
    function: RegisterTable = RegisterTable.HOLDING

    @property
    def words(self) -> int:
        return self.type.words

    @property
    def end_address(self) -> int:
        """The last address this register spans."""
        return self.address + self.words - 1

    @property
    def counter_modulus(self) -> int:
        return self.modulus or 1 << (16 * self.words)

    def describe(self) -> str:
        """How errors name this register: ``register 'level_cm' (holding 0)``."""
        table = self.function.name.lower()
        number = f" = {self.register_number}" if self.register_number is not None else ""
        return f"register {self.metric!r} ({table} {self.address}{number})"

    @model_validator(mode="before")
    @classmethod
    def _resolve_register_number(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        label = f"register {data.get('metric', data.get('name', '?'))!r}"
        if ("address" in data) == ("register" in data):
            raise ValueError(
                f"{label}: give exactly one of address (0-based protocol address) or"
                " register (documented 1-based number such as 40001)"
            )
        if "register" in data and isinstance(data["register"], int):
            try:
                table, address = resolve_register_number(data["register"])
            except ValueError as exc:
                raise ValueError(f"{label}: {exc}") from None
            function = data.get("function", int(table))
            if function != int(table):
                raise ValueError(
                    f"{label}: register {data['register']} is in the {table.name.lower()}"
                    f" table, but function = {function}"
                )
            data = {**data, "address": address, "function": int(table)}
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.end_address > MAX_ADDRESS:
            raise ValueError(f"{self.describe()}: a {self.type} runs past address {MAX_ADDRESS}")
        if self.scale == 0:
            raise ValueError(f"{self.describe()}: scale 0 would read every value as the offset")
        bits = 16 * self.words
        for sentinel in self.sentinels:
            if not -(1 << (bits - 1)) <= sentinel < 1 << bits:
                raise ValueError(
                    f"{self.describe()}: sentinel {sentinel} does not fit a {self.type}"
                )
        if (
            self.valid_min is not None
            and self.valid_max is not None
            and self.valid_min > self.valid_max
        ):
            raise ValueError(f"{self.describe()}: valid_min is above valid_max")
        if self.kind is RegisterKind.COUNTER:
            if self.type not in (RegisterType.U16, RegisterType.U32):
                raise ValueError(f"{self.describe()}: a counter is u16 or u32, not {self.type}")
            if self.decimals_address is not None or self.offset != 0:
                raise ValueError(f"{self.describe()}: a counter takes no offset or decimals")
            if self.counter_modulus > 1 << bits:
                raise ValueError(f"{self.describe()}: modulus exceeds what a {self.type} holds")
        elif self.modulus is not None:
            raise ValueError(f"{self.describe()}: modulus is only for kind = 'counter'")
        return self


class HealthRegisterConfig(RegisterConfig):
    """A register that tells the device's health (reboot count, supply voltage x10, ...).

    Read with the readings, scaled like them, but reported in the device's heartbeat
    entry (``registers``), not as a reading. ``name`` (not ``metric``) in config; input
    registers (function 04) by default, where devices keep them.
    """

    metric: str = Field(alias="name", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    function: RegisterTable = RegisterTable.INPUT

    def describe(self) -> str:
        return "health " + super().describe()

    @model_validator(mode="after")
    def _check_health(self) -> Self:
        if self.kind is not RegisterKind.VALUE:
            raise ValueError(f"{self.describe()}: a health register is a value, not a counter")
        return self


class WriteEnableConfig(BaseModel):
    """A coil (function 05) that must be set before the device takes a write (06 / 16)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    coil: int = Field(ge=0, le=MAX_ADDRESS, description="0-based coil address")
    value: bool = Field(default=True, description="the coil state that enables writes")
    relock: bool = Field(
        default=True, description="write the coil back after each write: leave writes locked"
    )

    def describe(self) -> str:
        return f"write-enable coil {self.coil}"


class TriggerConfig(BaseModel):
    """A measurement started by a write, read once it is done (holding registers).

    Each ``read()`` writes ``value`` to ``address``, waits ``settle_s``, then (with
    ``ready_address``) reads that register until it holds ``ready_value``, at most the
    device's response timeout; then reads the registers. A non-zero ``error_address``
    makes every reading of that read bad, naming the register and the code.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: int = Field(ge=0, le=MAX_ADDRESS, description="holding register to write")
    value: int = Field(default=1, ge=0, le=0xFFFF)
    settle_s: float = Field(default=0.0, ge=0, le=10, description="wait before reading")
    ready_address: int | None = Field(
        default=None, ge=0, le=MAX_ADDRESS, description="holding register saying 'done'"
    )
    ready_value: int = Field(default=1, ge=0, le=0xFFFF)
    error_address: int | None = Field(
        default=None, ge=0, le=MAX_ADDRESS, description="holding register: 0 = ok, else a code"
    )

    def describe(self) -> str:
        return f"trigger (holding {self.address})"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.settle_s == 0 and self.ready_address is None:
            raise ValueError("say when the result is ready: settle_s > 0 or ready_address")
        return self


class ModbusRtuDeviceConfig(DeviceConfig):
    """A device on a Modbus RTU bus. Errors name the device, its slave and the register."""

    driver: Literal["modbus_rtu"]
    slave: int = Field(ge=1, le=247)
    mode: Literal["rtu", "ascii"] = "rtu"
    write_single_only: bool = Field(
        default=False, description="the device knows fc 06 only: write one register at a time"
    )
    wake_retries: int = Field(
        default=0,
        ge=0,
        le=3,
        description="repeat the first request of a read when unanswered (sleeping devices)",
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=10, description="response timeout; default: the port's"
    )
    registers: list[RegisterConfig] = Field(min_length=1)
    health: list[HealthRegisterConfig] = Field(
        default_factory=list, description="registers reported in the heartbeat, not as readings"
    )
    write_enable: WriteEnableConfig | None = None
    trigger: TriggerConfig | None = None

    def describe(self) -> str:
        """How errors name this device: ``device 'gauge-1' (modbus_rtu, slave 1)``."""
        return f"device {self.name!r} (modbus_rtu, slave {self.slave})"

    @property
    def all_registers(self) -> list[RegisterConfig]:
        """Readings and health registers: everything one ``read()`` reads."""
        return [*self.registers, *self.health]

    @model_validator(mode="after")
    def _check_registers(self) -> Self:
        seen: dict[str, RegisterConfig] = {}
        health: dict[str, RegisterConfig] = {}
        for register in self.all_registers:
            names = health if isinstance(register, HealthRegisterConfig) else seen
            if register.metric in names:
                key = "name" if names is health else "metric"
                first = names[register.metric].describe()
                raise ValueError(
                    f"{self.describe()}: {register.describe()} repeats {key}"
                    f" {register.metric!r} of {first}"
                )
            names[register.metric] = register
            if (
                register.decimals_address is not None
                and register.address <= register.decimals_address <= register.end_address
            ):
                raise ValueError(
                    f"{self.describe()}: {register.describe()} cannot take its decimals from itself"
                )
        by_start = sorted(self.all_registers, key=lambda r: (r.function, r.address))
        for before, after in itertools.pairwise(by_start):
            if before.function == after.function and after.address <= before.end_address:
                raise ValueError(
                    f"{self.describe()}: {after.describe()} overlaps {before.describe()}"
                    f" (a {before.type} spans {before.address}-{before.end_address})"
                )
        return self
