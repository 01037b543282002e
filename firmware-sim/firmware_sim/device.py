"""A simulated Modbus slave: a register map declared as data, plus the request handling.

A model (``DeviceModel``) says which registers exist and how each one's value is made; a
``SimulatedDevice`` is one instance of a model at a slave address, with its own clock, its
written registers and its injected faults. Models live in ``firmware_sim.models``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from firmware_sim import modbus
from firmware_sim.modbus import ExceptionCode, FunctionCode, Request

Clock = Callable[[], float]
# A register's value as a function of seconds since the device started (a u16).
Signal = Callable[[float], int]


def constant(value: int) -> Signal:
    return lambda _elapsed_s: value


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """One register of a model. ``writable`` registers keep the last value written."""

    name: str
    signal: Signal
    writable: bool = False


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """A device family's register maps (protocol addresses, 0-based), as data."""

    model: str
    holding: Mapping[int, RegisterSpec]
    input: Mapping[int, RegisterSpec] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviour to inject, swapped whole at run time (``device.faults = Faults(...)``)."""

    silent: bool = False  # never answer, as a dead or sleeping device
    corrupt_crc: bool = False  # answer with a wrong CRC, as a noisy line
    reply_as_slave: int | None = None  # answer with another slave id


@dataclass(slots=True)
class DeviceStats:
    requests: int = 0
    responses: int = 0
    exceptions: int = 0


class SimulatedDevice:
    """One slave on a simulated bus. ``handle`` is called by the bus thread only."""

    def __init__(self, model: DeviceModel, *, slave: int, clock: Clock = time.monotonic) -> None:
        if not 1 <= slave <= 247:
            raise ValueError(f"slave address {slave} is outside 1-247")
        self.model = model
        self.slave = slave
        self.faults = Faults()
        self.stats = DeviceStats()
        self._clock = clock
        self._started_s = clock()
        self._written: dict[int, int] = {}
        self._lock = threading.Lock()

    def register_value(self, address: int, *, table: FunctionCode) -> int | None:
        """The current value of a register, or None when the map has no such register."""
        specs = (
            self.model.input if table is FunctionCode.READ_INPUT_REGISTERS else self.model.holding
        )
        spec = specs.get(address)
        if spec is None:
            return None
        if table is FunctionCode.READ_HOLDING_REGISTERS:
            with self._lock:
                if address in self._written:
                    return self._written[address]
        elapsed_s = self._clock() - self._started_s
        return max(0, min(0xFFFF, int(spec.signal(elapsed_s))))

    def handle(self, request: Request) -> bytes | None:
        """The response frame to ``request`` (already addressed to us), or None for silence."""
        self.stats.requests += 1
        faults = self.faults
        if faults.silent:
            return None
        response = self._respond(request)
        if response is None:
            return None
        self.stats.responses += 1
        if response[1] & 0x80:
            self.stats.exceptions += 1
        if faults.reply_as_slave is not None:
            response = modbus.with_crc(bytes([faults.reply_as_slave]) + response[1:-2])
        if faults.corrupt_crc:
            response = response[:-1] + bytes([response[-1] ^ 0xFF])
        return response

    def _respond(self, request: Request) -> bytes | None:
        slave, function, data = self.slave, request.function, request.data
        if function in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
            return self._read(request)
        if function == FunctionCode.WRITE_SINGLE_REGISTER and len(data) == 4:
            address, value = modbus.u16_pair(data)
            code = self._write(address, [value])
            if code is not None:
                return modbus.exception_response(slave, function, code)
            return modbus.write_single_response(slave, address, value)
        if function == FunctionCode.WRITE_MULTIPLE_REGISTERS and len(data) >= 5:
            address, count = modbus.u16_pair(data)
            words = data[5:]
            if (
                not 1 <= count <= modbus.MAX_WRITE_REGISTERS
                or data[4] != 2 * count
                or len(words) != 2 * count
            ):
                return modbus.exception_response(slave, function, ExceptionCode.ILLEGAL_DATA_VALUE)
            values = [int.from_bytes(words[i : i + 2], "big") for i in range(0, len(words), 2)]
            code = self._write(address, values)
            if code is not None:
                return modbus.exception_response(slave, function, code)
            return modbus.write_multiple_response(slave, address, count)
        if function in (FunctionCode.WRITE_SINGLE_REGISTER, FunctionCode.WRITE_MULTIPLE_REGISTERS):
            return modbus.exception_response(slave, function, ExceptionCode.ILLEGAL_DATA_VALUE)
        return modbus.exception_response(slave, function, ExceptionCode.ILLEGAL_FUNCTION)

    def _read(self, request: Request) -> bytes:
        table = FunctionCode(request.function)
        if len(request.data) != 4:
            return modbus.exception_response(self.slave, table, ExceptionCode.ILLEGAL_DATA_VALUE)
        address, count = modbus.u16_pair(request.data)
        if not 1 <= count <= modbus.MAX_READ_REGISTERS:
            return modbus.exception_response(self.slave, table, ExceptionCode.ILLEGAL_DATA_VALUE)
        values: list[int] = []
        for offset in range(count):
            value = self.register_value(address + offset, table=table)
            if value is None:
                return modbus.exception_response(
                    self.slave, table, ExceptionCode.ILLEGAL_DATA_ADDRESS
                )
            values.append(value)
        return modbus.read_response(self.slave, table, values)

    def _write(self, address: int, values: list[int]) -> ExceptionCode | None:
        """Store ``values`` from ``address`` on; all or nothing, as a slave must."""
        for offset in range(len(values)):
            spec = self.model.holding.get(address + offset)
            if spec is None or not spec.writable:
                return ExceptionCode.ILLEGAL_DATA_ADDRESS
        with self._lock:
            for offset, value in enumerate(values):
                self._written[address + offset] = value
        return None
