"""What the words of one read mean for one device, and what a write means in words.

Pure functions over a device's config and the register words read (no I/O): the
measurements, the health values, the trigger's error code, the registers read only for
another's sake (decimals, error code), and the words a write puts on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping

from drivers.base import DriverError, ErrorKind, Measurement
from drivers.counters import CounterValue
from drivers.modbus_rtu.codec import encode_raw, interpret
from drivers.modbus_rtu.config import (
    ModbusRtuDeviceConfig,
    RegisterConfig,
    RegisterKind,
    RegisterTable,
    RegisterType,
)
from wire import Quality

# (table, address) -> the word read there.
Words = dict[tuple[RegisterTable, int], int]


def addresses(register: RegisterConfig) -> range:
    return range(register.address, register.end_address + 1)


def hidden_registers(config: ModbusRtuDeviceConfig) -> list[RegisterConfig]:
    """Registers read only for another's sake, when no configured register covers them.

    A register's decimals (``decimals_address``), and the trigger's error code.
    """
    covered = {(r.function, a) for r in config.all_registers for a in addresses(r)}
    wanted: list[tuple[str, RegisterTable, int]] = [
        ("decimals", r.function, r.decimals_address)
        for r in config.all_registers
        if r.decimals_address is not None
    ]
    trigger = config.trigger
    if trigger is not None and trigger.error_address is not None:
        wanted.append(("error", RegisterTable.HOLDING, trigger.error_address))
    hidden: dict[tuple[RegisterTable, int], RegisterConfig] = {}
    for role, table, address in wanted:
        key = (table, address)
        if key not in covered and key not in hidden:
            hidden[key] = RegisterConfig.model_validate(
                {"metric": f"{role}:{address}", "address": address, "function": int(table)}
            )
    return list(hidden.values())


def device_error(config: ModbusRtuDeviceConfig, words: Words) -> str | None:
    """Why every reading of this read is bad, by the trigger's error-code register."""
    trigger = config.trigger
    if trigger is None or trigger.error_address is None:
        return None
    where = f"error register (holding {trigger.error_address})"
    code = words.get((RegisterTable.HOLDING, trigger.error_address))
    if code is None:
        return f"{where} could not be read"
    if code != 0:
        return f"{where} holds error code {code} (0x{code:04X})"
    return None


def measurement(
    config: ModbusRtuDeviceConfig,
    register: RegisterConfig,
    words: Words,
    refusal: DriverError | None,
    error: str | None = None,
) -> Measurement:
    """One reading: its value, or bad with why (a refusal, the device's error, the value)."""
    metric, unit = register.metric, register.unit
    if refusal is not None:
        return Measurement(metric, None, unit, Quality.BAD, str(refusal), error_kind=refusal.kind)
    problem = error
    result = None
    if problem is None:
        decimals = None
        if register.decimals_address is not None:
            decimals = words.get((register.function, register.decimals_address))
        result = interpret(
            register, [words[register.function, a] for a in addresses(register)], decimals
        )
        problem = result.problem
    if problem is not None or result is None:
        text = f"{config.describe()}: {register.describe()}: {ErrorKind.INVALID_VALUE}: {problem}"
        return Measurement(
            metric, None, unit, Quality.BAD, text, error_kind=ErrorKind.INVALID_VALUE
        )
    counter = None
    if result.count is not None:
        counter = CounterValue(result.count, register.counter_modulus, register.scale)
    return Measurement(metric, result.value, unit, counter=counter)


def health_values(config: ModbusRtuDeviceConfig, words: Words) -> dict[str, float]:
    """The health registers that read a value; refused or invalid ones are left out."""
    values: dict[str, float] = {}
    for register in config.health:
        span = [words.get((register.function, a)) for a in addresses(register)]
        if any(word is None for word in span):
            continue
        decimals = None
        if register.decimals_address is not None:
            decimals = words.get((register.function, register.decimals_address))
        result = interpret(register, [w for w in span if w is not None], decimals)
        if result.value is not None:
            values[register.metric] = result.value
    return values


def encode_write(
    config: ModbusRtuDeviceConfig, target: str | int, value: float
) -> tuple[RegisterConfig | None, list[int]]:
    """The register written (None for a raw address) and the words to write.

    Raises ValueError, naming device and register, for a write that cannot be made.
    """
    where = config.describe()
    if isinstance(target, int):
        if not 0 <= target <= 0xFFFF or not 0 <= value <= 0xFFFF or value != int(value):
            raise ValueError(f"{where}: write {value} to address {target}: need two u16")
        return None, [int(value)]
    register = next((r for r in config.registers if r.metric == target), None)
    if register is None:
        raise ValueError(f"{where}: no register with metric {target!r} to write")
    if register.function is not RegisterTable.HOLDING:
        raise ValueError(f"{where}: {register.describe()} is an input register: read-only")
    if register.decimals_address is not None or register.kind is RegisterKind.COUNTER:
        raise ValueError(f"{where}: {register.describe()} cannot be written as a value")
    if register.words > 1 and config.write_single_only:
        raise ValueError(
            f"{where}: {register.describe()} spans 2 registers, but the device writes one"
            " at a time (write_single_only)"
        )
    raw = (value - register.offset) / register.scale
    try:
        words = encode_raw(raw, register.type, register.word_order)
    except ValueError as exc:
        raise ValueError(f"{where}: {register.describe()}: {exc}") from None
    if register.type is not RegisterType.F32 and abs(raw - round(raw)) > 1e-6:
        raise ValueError(
            f"{where}: {register.describe()}: {value} is not a multiple of scale {register.scale}"
        )
    return register, words


def readings(
    config: ModbusRtuDeviceConfig, words: Words, refused: Mapping[str, DriverError]
) -> list[Measurement]:
    """Every configured reading of one read, in config order."""
    error = device_error(config, words)
    return [measurement(config, r, words, refused.get(r.metric), error) for r in config.registers]


__all__ = [
    "Words",
    "addresses",
    "device_error",
    "encode_write",
    "health_values",
    "hidden_registers",
    "measurement",
    "readings",
]
