"""Modbus RTU (and ASCII) driver on minimalmodbus: reads a register map, writes settings.

The serial port is opened by the agent's port owner and handed in (a device path or any
pyserial URL, such as ``socket://host:port`` for RTU over TCP to a serial server); every
call happens on that owner's thread. minimalmodbus gets a thin wrapper of the open port
(``RecordingPort``), so it never opens or closes a port of its own, and the driver sees
the bytes of the last answer to tell a corrupted answer (crc) from line noise (garbage).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import minimalmodbus
import serial

from drivers.base import DriverError, ErrorKind, LineOptions, Measurement
from drivers.counters import CounterValue
from drivers.modbus_rtu.codec import ReadBlock, encode_raw, interpret, plan_blocks
from drivers.modbus_rtu.config import (
    ModbusRtuDeviceConfig,
    RegisterConfig,
    RegisterKind,
    RegisterTable,
    RegisterType,
)
from drivers.modbus_rtu.port import InterFrameGap, RecordingPort, classify
from wire import Quality

# Errors that say the device (or line) is not talking: the rest of the map would fail the
# same way, so the read stops at the first one instead of waiting out every timeout.
_TRANSPORT_ERRORS = frozenset(
    {ErrorKind.TIMEOUT, ErrorKind.CRC, ErrorKind.WRONG_ID, ErrorKind.GARBAGE, ErrorKind.IO}
)
_MODES = {"rtu": minimalmodbus.MODE_RTU, "ascii": minimalmodbus.MODE_ASCII}
_WRITE_SINGLE = 6
_WRITE_MULTIPLE = 16

T = TypeVar("T")
Words = dict[tuple[RegisterTable, int], int]

__all__ = ["ModbusRtuDriver", "classify"]


class ModbusRtuDriver:
    """Reads the registers of one Modbus slave; see ``drivers.base.Driver``."""

    def __init__(
        self,
        config: ModbusRtuDeviceConfig,
        serial_port: serial.Serial,
        *,
        line: LineOptions | None = None,
    ) -> None:
        if not serial_port.is_open:
            raise ValueError(f"{config.describe()}: serial port {serial_port.port} is not open")
        self._config = config
        self._serial = serial_port
        self._port = RecordingPort(serial_port)
        self._gap = InterFrameGap((line or LineOptions()).inter_frame_silence, serial_port)
        self._blocks = plan_blocks([*config.registers, *_decimals_registers(config)])
        self._instrument = minimalmodbus.Instrument(
            self._port,  # any serial-like object will do
            config.slave,
            mode=_MODES[config.mode],
        )
        # Answers that arrive after their timeout must not be taken for the next answer.
        self._instrument.clear_buffers_before_each_transaction = True

    @property
    def device_name(self) -> str:
        return self._config.name

    @property
    def config(self) -> ModbusRtuDeviceConfig:
        return self._config

    @property
    def blocks(self) -> list[ReadBlock]:
        """The read requests one ``read()`` makes, in order."""
        return list(self._blocks)

    def read(self) -> list[Measurement]:
        """Read every register, in config order.

        A register the device refuses (a Modbus exception) comes back as a bad measurement
        naming why, so one wrong address does not hide the others; so does a sentinel, an
        out-of-range value or a bad decimals register (``invalid_value``). Raises
        DriverError when the device does not answer properly, or refuses every register.
        """
        self._check_open()
        words: Words = {}
        refused: dict[str, DriverError] = {}
        refusals: list[DriverError] = []
        with self._response_timeout():
            for index, block in enumerate(self._blocks):
                try:
                    values: list[int] = self._transact(
                        block.describe(),
                        functools.partial(
                            self._instrument.read_registers,
                            block.address,
                            block.count,
                            functioncode=int(block.function),
                        ),
                        first=index == 0,
                    )
                except DriverError as error:
                    if error.kind in _TRANSPORT_ERRORS:
                        raise
                    refusals.append(error)
                    refused.update((r.metric, error) for r in block.registers)
                    continue
                for offset, value in enumerate(values):
                    words[block.function, block.address + offset] = value
        if len(refusals) == len(self._blocks):
            raise refusals[0]
        return [self._measurement(r, words, refused.get(r.metric)) for r in self._config.registers]

    def write(self, target: str | int, value: float) -> None:
        """Write one setting: a configured metric (engineering value) or a raw address.

        For a metric, ``value`` is in the metric's unit and is turned back into the raw
        register value (``(value - offset) / scale``, then its type and byte order); for an
        int ``target`` (a 0-based holding address), ``value`` is the raw u16 written.
        Uses function 06 for one register and 16 for two; a device with
        ``write_single_only`` gets 06 only and cannot take a 32-bit value. This is for
        commissioning (e.g. a new slave address): the agent's port owner calls it.
        """
        self._check_open()
        register, words = self._encode_write(target, value)
        label = register.describe() if register else f"holding address {target}"
        address = register.address if register else int(target)
        if len(words) == 1 and (self._config.write_single_only or register is None):
            function = _WRITE_SINGLE
        else:
            function = _WRITE_MULTIPLE
        with self._response_timeout():
            if function == _WRITE_SINGLE:
                self._transact(
                    label,
                    lambda: self._instrument.write_register(address, words[0], functioncode=6),
                    first=True,
                )
            else:
                self._transact(
                    label, lambda: self._instrument.write_registers(address, words), first=True
                )

    def close(self) -> None:
        """Nothing to release: the port belongs to the agent's port owner."""

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._serial.is_open:
            raise DriverError(
                ErrorKind.IO,
                f"{self._config.describe()}: serial port {self._serial.port} is closed",
            )

    def _transact(self, label: str, call: Callable[[], T], *, first: bool) -> T:
        """One request; the first of a read may be repeated for a device that was asleep."""
        attempts = 1 + (self._config.wake_retries if first else 0)
        for attempt in range(attempts):
            self._port.begin()
            self._gap.before_transaction()
            try:
                return call()
            except Exception as error:
                kind = classify(
                    error, self._port.answer, mode=self._config.mode, slave=self._config.slave
                )
                if kind is ErrorKind.TIMEOUT and attempt + 1 < attempts:
                    continue
                raise DriverError(
                    kind, f"{self._config.describe()}: {label}: {kind}: {error}"
                ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _encode_write(
        self, target: str | int, value: float
    ) -> tuple[RegisterConfig | None, list[int]]:
        where = self._config.describe()
        if isinstance(target, int):
            if not 0 <= target <= 0xFFFF or not 0 <= value <= 0xFFFF or value != int(value):
                raise ValueError(f"{where}: write {value} to address {target}: need two u16")
            return None, [int(value)]
        register = next((r for r in self._config.registers if r.metric == target), None)
        if register is None:
            raise ValueError(f"{where}: no register with metric {target!r} to write")
        if register.function is not RegisterTable.HOLDING:
            raise ValueError(f"{where}: {register.describe()} is an input register: read-only")
        if register.decimals_address is not None or register.kind is RegisterKind.COUNTER:
            raise ValueError(f"{where}: {register.describe()} cannot be written as a value")
        if register.words > 1 and self._config.write_single_only:
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
                f"{where}: {register.describe()}: {value} is not a multiple of scale"
                f" {register.scale}"
            )
        return register, words

    def _measurement(
        self, register: RegisterConfig, words: Words, refusal: DriverError | None
    ) -> Measurement:
        metric, unit = register.metric, register.unit
        if refusal is not None:
            return Measurement(
                metric, None, unit, Quality.BAD, str(refusal), error_kind=refusal.kind
            )
        span = [words[register.function, a] for a in _addresses(register)]
        decimals = None
        if register.decimals_address is not None:
            decimals = words.get((register.function, register.decimals_address))
        result = interpret(register, span, decimals)
        if result.problem is not None:
            error = (
                f"{self._config.describe()}: {register.describe()}: "
                f"{ErrorKind.INVALID_VALUE}: {result.problem}"
            )
            return Measurement(
                metric, None, unit, Quality.BAD, error, error_kind=ErrorKind.INVALID_VALUE
            )
        counter = None
        if result.count is not None:
            counter = CounterValue(result.count, register.counter_modulus, register.scale)
        return Measurement(metric, result.value, unit, counter=counter)

    @contextmanager
    def _response_timeout(self) -> Iterator[None]:
        """Use the device's own response timeout, if it has one, for this call only."""
        timeout_s = self._config.timeout_s
        if timeout_s is None:
            yield
            return
        port_timeout_s = self._serial.timeout
        self._serial.timeout = timeout_s
        try:
            yield
        finally:
            self._serial.timeout = port_timeout_s


def _addresses(register: RegisterConfig) -> range:
    return range(register.address, register.end_address + 1)


def _decimals_registers(config: ModbusRtuDeviceConfig) -> Sequence[RegisterConfig]:
    """Registers read only for the decimals they hold, when no metric covers them already."""
    covered = {(r.function, a) for r in config.registers for a in _addresses(r)}
    hidden: dict[tuple[RegisterTable, int], RegisterConfig] = {}
    for register in config.registers:
        if register.decimals_address is None:
            continue
        key = (register.function, register.decimals_address)
        if key not in covered and key not in hidden:
            hidden[key] = RegisterConfig.model_validate(
                {
                    "metric": f"decimals:{register.decimals_address}",
                    "address": register.decimals_address,
                    "function": int(register.function),
                }
            )
    return list(hidden.values())
