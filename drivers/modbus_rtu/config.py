"""Config of a Modbus RTU device: its slave address and its register map, as data.

Addresses are protocol addresses, 0-based (what goes on the wire). Manuals that number
holding registers "40001" mean address 0: subtract 40001, and check the manual is not
off by one.
"""

from __future__ import annotations

import itertools
from enum import IntEnum, StrEnum
from typing import Literal, Self

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
    """Order of the 16-bit words of a 32-bit value (bytes in a word are always big-endian)."""

    HIGH_FIRST = "ABCD"  # the Modbus convention
    LOW_FIRST = "CDAB"  # common in inclinometers and meters ("word swapped")


class RegisterTable(IntEnum):
    """The function code that reads the register: holding (03) or input (04)."""

    HOLDING = 3
    INPUT = 4


class RegisterConfig(BaseModel):
    """One metric read from one register (or two, for 32-bit types)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    address: int = Field(ge=0, le=MAX_ADDRESS, description="protocol address, 0-based")
    type: RegisterType = RegisterType.U16
    word_order: WordOrder = WordOrder.HIGH_FIRST
    scale: float = Field(default=1.0, description="value = raw * scale + offset")
    offset: float = 0.0
    unit: str = Field(default="", max_length=16)
    function: RegisterTable = RegisterTable.HOLDING

    @property
    def words(self) -> int:
        return self.type.words

    @property
    def end_address(self) -> int:
        """The last address this register spans."""
        return self.address + self.words - 1

    def describe(self) -> str:
        """How errors name this register: ``register 'level_cm' (holding 0)``."""
        return f"register {self.metric!r} ({self.function.name.lower()} {self.address})"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.end_address > MAX_ADDRESS:
            raise ValueError(f"{self.describe()}: a {self.type} runs past address {MAX_ADDRESS}")
        if self.scale == 0:
            raise ValueError(f"{self.describe()}: scale 0 would read every value as the offset")
        return self


class ModbusRtuDeviceConfig(DeviceConfig):
    """A device on a Modbus RTU bus. Errors name the device, its slave and the register."""

    driver: Literal["modbus_rtu"]
    slave: int = Field(ge=1, le=247)
    timeout_s: float | None = Field(
        default=None, gt=0, le=10, description="response timeout; default: the port's"
    )
    registers: list[RegisterConfig] = Field(min_length=1)

    def describe(self) -> str:
        """How errors name this device: ``device 'gauge-1' (modbus_rtu, slave 1)``."""
        return f"device {self.name!r} (modbus_rtu, slave {self.slave})"

    @model_validator(mode="after")
    def _check_registers(self) -> Self:
        seen: dict[str, RegisterConfig] = {}
        for register in self.registers:
            if register.metric in seen:
                raise ValueError(
                    f"{self.describe()}: {register.describe()} repeats metric "
                    f"{register.metric!r} of {seen[register.metric].describe()}"
                )
            seen[register.metric] = register
        by_start = sorted(self.registers, key=lambda r: (r.function, r.address))
        for before, after in itertools.pairwise(by_start):
            if before.function == after.function and after.address <= before.end_address:
                raise ValueError(
                    f"{self.describe()}: {after.describe()} overlaps {before.describe()}"
                    f" (a {before.type} spans {before.address}-{before.end_address})"
                )
        return self
