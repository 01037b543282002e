"""Modbus RTU driver on minimalmodbus: reads a device's register map on demand.

The serial port is opened by the agent's port owner and handed in; every call happens on
that owner's thread. minimalmodbus gets the open port object, so it never opens (or
closes) a port of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import minimalmodbus
import serial

from drivers.base import DriverError, ErrorKind, Measurement
from drivers.modbus_rtu.codec import ReadBlock, decode_value, plan_blocks
from drivers.modbus_rtu.config import ModbusRtuDeviceConfig
from wire import Quality

# Errors that say the device (or line) is not talking: the rest of the map would fail the
# same way, so the read stops at the first one instead of waiting out every timeout.
_TRANSPORT_ERRORS = frozenset(
    {ErrorKind.TIMEOUT, ErrorKind.CRC, ErrorKind.WRONG_ID, ErrorKind.GARBAGE, ErrorKind.IO}
)


def classify(error: Exception) -> ErrorKind:
    """Which health counter a minimalmodbus / pyserial failure moves."""
    if isinstance(error, minimalmodbus.NoResponseError):
        return ErrorKind.TIMEOUT
    if isinstance(error, minimalmodbus.SlaveReportedException):
        return ErrorKind.EXCEPTION
    if isinstance(error, minimalmodbus.InvalidResponseError):
        text = str(error)
        if text.startswith("Checksum error"):
            return ErrorKind.CRC
        if text.startswith("Wrong return slave address"):
            return ErrorKind.WRONG_ID
        if text.startswith("Too short"):
            return ErrorKind.TIMEOUT  # only part of an answer came in time
        return ErrorKind.GARBAGE
    if isinstance(error, minimalmodbus.ModbusException):
        return ErrorKind.GARBAGE  # e.g. a local echo that did not match
    if isinstance(error, serial.SerialException | OSError):
        return ErrorKind.IO
    return ErrorKind.GARBAGE  # ValueError / TypeError from parsing a malformed answer


class ModbusRtuDriver:
    """Reads the registers of one Modbus RTU slave; see ``drivers.base.Driver``."""

    def __init__(self, config: ModbusRtuDeviceConfig, serial_port: serial.Serial) -> None:
        if not serial_port.is_open:
            raise ValueError(f"{config.describe()}: serial port {serial_port.port} is not open")
        self._config = config
        self._serial = serial_port
        self._blocks = plan_blocks(config.registers)
        self._instrument = minimalmodbus.Instrument(
            serial_port, config.slave, mode=minimalmodbus.MODE_RTU
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
        naming why, so one wrong address does not hide the others. Raises DriverError when
        the device does not answer properly, or refuses every register.
        """
        if not self._serial.is_open:
            raise DriverError(
                ErrorKind.IO,
                f"{self._config.describe()}: serial port {self._serial.port} is closed",
            )
        by_metric: dict[str, Measurement] = {}
        refusals: list[DriverError] = []
        with self._response_timeout():
            for block in self._blocks:
                try:
                    words = self._read_block(block)
                except DriverError as error:
                    if error.kind in _TRANSPORT_ERRORS:
                        raise
                    refusals.append(error)
                    for register in block.registers:
                        by_metric[register.metric] = Measurement(
                            register.metric, None, register.unit, Quality.BAD, str(error)
                        )
                    continue
                by_metric.update(self._measurements(block, words))
        if len(refusals) == len(self._blocks):
            raise refusals[0]
        return [by_metric[register.metric] for register in self._config.registers]

    def close(self) -> None:
        """Nothing to release: the port belongs to the agent's port owner."""

    def _read_block(self, block: ReadBlock) -> list[int]:
        try:
            words: list[int] = self._instrument.read_registers(
                block.address, block.count, functioncode=int(block.function)
            )
        except Exception as error:
            kind = classify(error)
            raise DriverError(
                kind, f"{self._config.describe()}: {block.describe()}: {kind}: {error}"
            ) from error
        return words

    def _measurements(
        self, block: ReadBlock, words: Sequence[int]
    ) -> Iterator[tuple[str, Measurement]]:
        for register in block.registers:
            value = decode_value(block.words_of(register, words), register)
            if math.isfinite(value):
                yield register.metric, Measurement(register.metric, value, register.unit)
            else:
                error = (
                    f"{self._config.describe()}: {register.describe()}: "
                    f"{ErrorKind.INVALID_VALUE}: {value}"
                )
                yield (
                    register.metric,
                    Measurement(register.metric, None, register.unit, Quality.BAD, error),
                )

    @contextmanager
    def _response_timeout(self) -> Iterator[None]:
        """Use the device's own response timeout, if it has one, for this read only."""
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
