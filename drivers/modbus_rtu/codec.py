"""Pure parts of the Modbus RTU driver: planning requests and decoding register words."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.modbus_rtu.config import RegisterConfig, RegisterTable, RegisterType, WordOrder

MAX_REGISTERS_PER_READ = 125  # the Modbus limit for fc 03/04


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request covering adjacent registers of one table."""

    function: RegisterTable
    address: int
    count: int
    registers: tuple[RegisterConfig, ...]

    def describe(self) -> str:
        """How errors name the registers of this request."""
        if len(self.registers) == 1:
            return self.registers[0].describe()
        metrics = ", ".join(repr(r.metric) for r in self.registers)
        table = self.function.name.lower()
        return f"registers {metrics} ({table} {self.address}-{self.address + self.count - 1})"

    def words_of(self, register: RegisterConfig, words: Sequence[int]) -> Sequence[int]:
        start = register.address - self.address
        return words[start : start + register.words]


def plan_blocks(
    registers: Sequence[RegisterConfig], *, max_registers: int = MAX_REGISTERS_PER_READ
) -> list[ReadBlock]:
    """Merge registers that sit next to each other in one table into as few reads as fit.

    Only touching registers are merged: reading across a gap could hit an address the
    device does not map and turn a good read into an exception.
    """
    blocks: list[ReadBlock] = []
    for register in sorted(registers, key=lambda r: (r.function, r.address)):
        last = blocks[-1] if blocks else None
        if (
            last is not None
            and last.function == register.function
            and register.address == last.address + last.count
            and last.count + register.words <= max_registers
        ):
            blocks[-1] = ReadBlock(
                function=last.function,
                address=last.address,
                count=last.count + register.words,
                registers=(*last.registers, register),
            )
        else:
            blocks.append(
                ReadBlock(register.function, register.address, register.words, (register,))
            )
    return blocks


def decode_raw(words: Sequence[int], type_: RegisterType, word_order: WordOrder) -> float:
    """The raw number held by ``words`` (16-bit register values, as read)."""
    if len(words) != type_.words:
        raise ValueError(f"a {type_} needs {type_.words} registers, got {len(words)}")
    if word_order is WordOrder.LOW_FIRST:
        words = list(reversed(words))
    data = b"".join(word.to_bytes(2, "big") for word in words)
    fmt = {
        RegisterType.U16: ">H",
        RegisterType.I16: ">h",
        RegisterType.U32: ">I",
        RegisterType.I32: ">i",
        RegisterType.F32: ">f",
    }[type_]
    value: float = struct.unpack(fmt, data)[0]
    return value


def decode_value(words: Sequence[int], register: RegisterConfig) -> float:
    """The engineering value of ``register`` from its words: raw * scale + offset."""
    return decode_raw(words, register.type, register.word_order) * register.scale + register.offset
