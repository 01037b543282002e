"""Modbus RTU (and ASCII) driver on minimalmodbus: reads a register map, writes settings.

The serial port is opened by the agent's port owner and handed in (a device path or any
pyserial URL, such as ``socket://host:port`` for RTU over TCP to a serial server); every
call happens on that owner's thread. minimalmodbus gets a thin wrapper of the open port
(``RecordingPort``), so it never opens or closes a port of its own, and the driver sees
the bytes of the last answer to tell a corrupted answer (crc) from line noise (garbage).

What the words mean (readings, health, the error code, a write's words) is in
``mapping``; this module makes the requests: reads, writes behind a write-enable coil, and
the trigger that starts a measurement.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import minimalmodbus
import serial

from drivers.base import DriverError, ErrorKind, LineOptions, Measurement
from drivers.modbus_rtu.codec import ReadBlock, plan_blocks
from drivers.modbus_rtu.config import (
    HealthRegisterConfig,
    ModbusRtuDeviceConfig,
    TriggerConfig,
    WriteEnableConfig,
)
from drivers.modbus_rtu.mapping import (
    Words,
    encode_write,
    health_values,
    hidden_registers,
    readings,
)
from drivers.modbus_rtu.port import InterFrameGap, RecordingPort, classify

# Errors that say the device (or line) is not talking: the rest of the map would fail the
# same way, so the read stops at the first one instead of waiting out every timeout.
_TRANSPORT_ERRORS = frozenset(
    {ErrorKind.TIMEOUT, ErrorKind.CRC, ErrorKind.WRONG_ID, ErrorKind.GARBAGE, ErrorKind.IO}
)
_MODES = {"rtu": minimalmodbus.MODE_RTU, "ascii": minimalmodbus.MODE_ASCII}
_WRITE_SINGLE = 6
_WRITE_MULTIPLE = 16
_WRITE_COIL = 5
READY_POLL_S = 0.01  # pause between reads of a trigger's ready register

T = TypeVar("T")

__all__ = ["ModbusRtuDriver", "classify"]


class ModbusRtuDriver:
    """Reads the registers of one Modbus slave; see ``drivers.base.Driver``.

    Also a ``drivers.base.HealthReporter``: ``health_registers()`` holds the health
    registers of the last ``read()``.
    """

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
        self._blocks = plan_blocks([*config.all_registers, *hidden_registers(config)])
        self._health: dict[str, float] = {}
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
        """Read every register, in config order (after the trigger, if the device has one).

        A register the device refuses (a Modbus exception) comes back as a bad measurement
        naming why, so one wrong address does not hide the others; so does a sentinel, an
        out-of-range value or a bad decimals register (``invalid_value``), and every
        reading when the trigger's error register holds a code. Raises DriverError when
        the device does not answer properly, refuses every register or the trigger, or its
        measurement is not ready in time.
        """
        self._check_open()
        words: Words = {}
        refused: dict[str, DriverError] = {}
        refusals: list[DriverError] = []
        trigger = self._config.trigger
        with self._response_timeout():
            if trigger is not None:
                self._measure(trigger)
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
                        first=index == 0 and trigger is None,
                    )
                except DriverError as error:
                    if error.kind in _TRANSPORT_ERRORS:
                        raise
                    refusals.append(error)
                    refused.update(
                        (r.metric, error)
                        for r in block.registers
                        if not isinstance(r, HealthRegisterConfig)
                    )
                    continue
                for offset, value in enumerate(values):
                    words[block.function, block.address + offset] = value
        if len(refusals) == len(self._blocks):
            raise refusals[0]
        self._health = health_values(self._config, words)
        return readings(self._config, words, refused)

    def health_registers(self) -> dict[str, float]:
        """The health registers (by name) as the last ``read()`` found them.

        Empty before the first read; a register the device refused, or whose value is
        invalid (a sentinel, out of range), is left out.
        """
        return dict(self._health)

    def write(self, target: str | int, value: float) -> None:
        """Write one setting: a configured metric (engineering value) or a raw address.

        For a metric, ``value`` is in the metric's unit and is turned back into the raw
        register value (``(value - offset) / scale``, then its type and byte order); for an
        int ``target`` (a 0-based holding address), ``value`` is the raw u16 written.
        Uses function 06 for one register and 16 for two; a device with
        ``write_single_only`` gets 06 only and cannot take a 32-bit value. A device with
        ``write_enable`` gets its coil set (function 05) first, and locked again after
        when ``relock``. This is for commissioning (e.g. a new slave address): the agent's
        port owner calls it.
        """
        self._check_open()
        register, words = encode_write(self._config, target, value)
        label = register.describe() if register else f"holding address {target}"
        address = register.address if register else int(target)
        single = len(words) == 1 and (self._config.write_single_only or register is None)
        with self._response_timeout():
            self._write_words(label, address, words, single=single)

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
                    kind, f"{self._config.describe()}: {label}: {kind}: {error}{self._hint(kind)}"
                ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _hint(self, kind: ErrorKind) -> str:
        """What a technician checks first: a wrong baud, parity or stop bits look on the wire
        like silence (the device drops frames it cannot decode) or like garbage."""
        link = self._serial
        line = f"{link.baudrate} baud, parity {link.parity}, {link.stopbits} stop bits"
        if kind is ErrorKind.TIMEOUT:
            return (
                f" (no answer: does the device use {line}? is slave {self._config.slave}"
                " its address? are A and B wired the right way round?)"
            )
        if kind in (ErrorKind.CRC, ErrorKind.GARBAGE):
            return f" (garbled answer: does the device use {line}? or noise on the line)"
        return ""

    def _write_words(self, label: str, address: int, words: list[int], *, single: bool) -> None:
        """Write ``words`` from ``address`` (fc 06 or 16), behind the write-enable coil."""
        enable = self._config.write_enable
        if enable is not None:
            self._set_write_enable(enable, label, unlocked=True)
        try:
            if single:
                self._transact(
                    label,
                    lambda: self._instrument.write_register(address, words[0], functioncode=6),
                    first=enable is None,
                )
            else:
                self._transact(
                    label,
                    lambda: self._instrument.write_registers(address, words),
                    first=enable is None,
                )
        except DriverError as error:
            if enable is not None and enable.relock:
                with contextlib.suppress(DriverError):
                    self._set_write_enable(enable, label, unlocked=False)
            raise self._explain_refused_write(error) from error.__cause__
        if enable is not None and enable.relock:
            self._set_write_enable(enable, label, unlocked=False)

    def _set_write_enable(self, enable: WriteEnableConfig, label: str, *, unlocked: bool) -> None:
        state = enable.value if unlocked else not enable.value
        action = "enable writes" if unlocked else "lock writes again"
        self._transact(
            f"{enable.describe()} ({action} for {label})",
            lambda: self._instrument.write_bit(enable.coil, int(state), functioncode=_WRITE_COIL),
            first=unlocked,
        )

    def _explain_refused_write(self, error: DriverError) -> DriverError:
        """A write refused as an illegal function: say which config may be missing."""
        if error.kind is not ErrorKind.EXCEPTION or "illegal function" not in str(error):
            return error
        if self._config.write_enable is None:
            hint = (
                "the device refuses this write: if it needs writes enabled first, configure"
                " write_enable (its coil); if it knows fc 06 only, write_single_only"
            )
        else:
            hint = (
                f"the device refuses this write although {self._config.write_enable.describe()}"
                " was set: check the coil's address and value"
            )
        return DriverError(error.kind, f"{error} ({hint})")

    def _measure(self, trigger: TriggerConfig) -> None:
        """Start a measurement, and wait until its result can be read.

        Waits ``settle_s``, then reads the ready register (if any) until it says done,
        for at most the device's response timeout.
        """
        self._write_words(trigger.describe(), trigger.address, [trigger.value], single=True)
        if trigger.settle_s:
            time.sleep(trigger.settle_s)  # the device's own measuring time
        if trigger.ready_address is None:
            return
        label = f"ready register (holding {trigger.ready_address})"
        limit_s = float(self._serial.timeout or 1.0)
        deadline = time.monotonic() + limit_s
        while True:
            (state,) = self._transact(
                label,
                functools.partial(
                    self._instrument.read_registers, trigger.ready_address, 1, functioncode=3
                ),
                first=False,
            )
            if state == trigger.ready_value:
                return
            if time.monotonic() >= deadline:
                raise DriverError(
                    ErrorKind.TIMEOUT,
                    f"{self._config.describe()}: {trigger.describe()}: {ErrorKind.TIMEOUT}:"
                    f" measurement not ready: {label} holds {state}, not"
                    f" {trigger.ready_value}, {limit_s:g} s after the trigger",
                )
            time.sleep(READY_POLL_S)

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
