"""Pure parts of the Modbus RTU driver: planning requests, decoding and encoding words."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.modbus_rtu.config import (
    RegisterConfig,
    RegisterKind,
    RegisterTable,
    RegisterType,
    WordOrder,
)
from wire.readable import measured

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


def raw_bits(words: Sequence[int], type_: RegisterType, word_order: WordOrder) -> int:
    """The register's bits as one unsigned number, most significant byte first.

    ``words`` are the 16-bit registers as read; ``word_order`` says where each byte sat.
    """
    if len(words) != type_.words:
        raise ValueError(f"a {type_} needs {type_.words} registers, got {len(words)}")
    data = b"".join(word.to_bytes(2, "big") for word in words)
    if word_order.swaps_bytes:
        data = b"".join(data[i : i + 2][::-1] for i in range(0, len(data), 2))
    if word_order.swaps_words and len(data) == 4:
        data = data[2:] + data[:2]
    return int.from_bytes(data, "big")


_FORMATS = {
    RegisterType.U16: ">H",
    RegisterType.I16: ">h",
    RegisterType.U32: ">I",
    RegisterType.I32: ">i",
    RegisterType.F32: ">f",
}


def decode_raw(words: Sequence[int], type_: RegisterType, word_order: WordOrder) -> float:
    """The raw number held by ``words`` (16-bit register values, as read)."""
    bits = raw_bits(words, type_, word_order)
    value: float = struct.unpack(_FORMATS[type_], bits.to_bytes(2 * type_.words, "big"))[0]
    return value


def encode_raw(value: float, type_: RegisterType, word_order: WordOrder) -> list[int]:
    """The words to write for the raw number ``value``: ``decode_raw`` reversed.

    Raises ValueError when ``value`` does not fit the type.
    """
    number: float | int = value if type_ is RegisterType.F32 else round(value)
    try:
        data = struct.pack(_FORMATS[type_], number)
    except struct.error as exc:
        raise ValueError(f"{value} does not fit a {type_}: {exc}") from None
    if word_order.swaps_words and len(data) == 4:
        data = data[2:] + data[:2]
    if word_order.swaps_bytes:
        data = b"".join(data[i : i + 2][::-1] for i in range(0, len(data), 2))
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def decode_value(words: Sequence[int], register: RegisterConfig) -> float:
    """The engineering value of ``register`` from its words: raw * scale + offset."""
    raw = decode_raw(words, register.type, register.word_order)
    return measured(raw * register.scale + register.offset)


MAX_DECIMALS = 9


@dataclass(frozen=True, slots=True)
class Interpreted:
    """What a register's words mean: a value, or why there is none (``problem``)."""

    value: float | None
    problem: str | None = None
    count: int | None = None  # the raw count of a counter


def interpret(
    register: RegisterConfig, words: Sequence[int], decimals: int | None = None
) -> Interpreted:
    """Apply a register's config to its words: sentinels, counter, scale, decimals, range.

    ``decimals`` is the content of the register's ``decimals_address``, when it has one.
    """
    bits = raw_bits(words, register.type, register.word_order)
    width = 16 * register.words
    mask = (1 << width) - 1
    if any(bits == sentinel & mask for sentinel in register.sentinels):
        return Interpreted(None, f"sentinel 0x{bits:0{width // 4}X} (no sensor / invalid)")
    if register.kind is RegisterKind.COUNTER:
        if bits >= register.counter_modulus:
            return Interpreted(
                None, f"count {bits} is not below modulus {register.counter_modulus}"
            )
        return Interpreted(measured(bits * register.scale), count=bits)
    raw = decode_raw(words, register.type, register.word_order)
    if register.decimals_address is not None:
        if decimals is None or not 0 <= decimals <= MAX_DECIMALS:
            where = f"decimals register {register.decimals_address}"
            return Interpreted(None, f"{where} holds {decimals}, not 0-{MAX_DECIMALS}")
        raw = raw / 10**decimals
    value = measured(raw * register.scale + register.offset)  # 239.7, not 239.70000000000002
    if not math.isfinite(value):
        return Interpreted(None, f"{value} is not a number")
    low, high = register.valid_min, register.valid_max
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"[{'' if low is None else low}, {'' if high is None else high}]"
        return Interpreted(None, f"{value:g} is outside the valid range {span}")
    return Interpreted(value)
