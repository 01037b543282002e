"""A simulated Modbus slave: a register map declared as data, plus the request handling.

A model (``DeviceModel``) says which registers exist and how each one's value is made; a
``SimulatedDevice`` is one instance of a model at a slave address, with its own clock, its
written registers, its injected faults and its quirks (response time, sleeping when the
bus is quiet, settings that move it to another address or baud). Models live in
``firmware_sim.models``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from firmware_sim import modbus, modbus_ascii
from firmware_sim.faults import Faults, mangle
from firmware_sim.measuring import LockState, MeasurementState, Trigger, WriteLock
from firmware_sim.modbus import ExceptionCode, FunctionCode, Request

Clock = Callable[[], float]
# A register's raw value as a function of (scaled) seconds since the device was made.
Signal = Callable[[float], int]

# Baud codes of cheap transmitters (FIELD-DEVICES.md): register value -> baud.
BAUD_CODES = {0: 1200, 1: 2400, 2: 4800, 3: 9600, 4: 19200, 5: 38400, 6: 57600, 7: 115200}
ALL_FUNCTIONS = frozenset({3, 4, 5, 6, 16})
DEFAULT_BAUD = 9600

__all__ = ["BAUD_CODES", "DeviceModel", "Faults", "RegisterSpec", "SimulatedDevice", "constant"]


def constant(value: int) -> Signal:
    return lambda _elapsed_s: value


class Setting(StrEnum):
    """A register whose written value changes how the device talks, once it has answered."""

    SLAVE_ADDRESS = "slave_address"
    BAUD_CODE = "baud_code"


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """One register of a model.

    ``writable`` registers keep the last value written. A ``counter`` counts from the last
    boot and rolls over at 65536 (its signal is a total that only grows). ``out_of_range``
    is what the register reads under the out-of-range fault (None: unaffected).
    """

    name: str
    signal: Signal
    writable: bool = False
    counter: bool = False
    out_of_range: int | None = None
    setting: Setting | None = None
    # The signal is the value x1000; the register shows it with the number of decimals
    # (0-3) held in this holding register, as cheap transmitters do.
    decimals_from: int | None = None
    # The register shows its signal plus this ``DeviceStats`` count (e.g. "reboots").
    stat: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """A device family's register maps (protocol addresses, 0-based), as data."""

    model: str
    holding: Mapping[int, RegisterSpec]
    input: Mapping[int, RegisterSpec] = field(default_factory=dict)
    functions: frozenset[int] = ALL_FUNCTIONS  # function codes it implements
    write_lock: WriteLock | None = None  # writes refused until a coil enables them
    trigger: Trigger | None = None  # results only after a triggered measurement


@dataclass(slots=True)
class DeviceStats:
    requests: int = 0
    responses: int = 0
    exceptions: int = 0
    unanswered_asleep: int = 0  # requests that only woke it up
    reboots: int = 0


@dataclass(frozen=True, slots=True)
class Quirks:
    """How a device behaves on the bus, beyond its register map."""

    response_time_s: float = 0.0  # from the end of the request to the start of the answer
    sleep_after_quiet_s: float | None = None  # asleep after this long without bus traffic
    boot_delay_s: float = 0.0  # Modbus comes up this long after power-on


class SimulatedDevice:
    """One slave on a simulated bus. ``handle`` is called by the bus thread only.

    ``clock`` is real time (response time, sleeping); signals see ``time_scale`` times the
    seconds since the device was made, so a scenario can run a storm in seconds.
    """

    def __init__(
        self,
        model: DeviceModel,
        *,
        slave: int,
        clock: Clock = time.monotonic,
        baud: int | None = None,
        quirks: Quirks = Quirks(),
        time_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        if not 1 <= slave <= 247:
            raise ValueError(f"slave address {slave} is outside 1-247")
        self.model = model
        self.slave = slave
        self.baud = baud  # None: whatever the bus runs at
        self.quirks = quirks
        self.stats = DeviceStats()
        self.rng = random.Random(seed)
        self._faults = Faults()
        self._clock = clock
        self._time_scale = time_scale
        self._made_s = self._booted_s = self._last_traffic_s = clock()
        self._asleep = False
        # Under the stuck fault: each register's value when first read while stuck.
        self._stuck: dict[tuple[bool, int], int] | None = None
        self._counter_base: dict[int, int] = {}
        self._written: dict[int, int] = {}
        # Registers held at a value from outside (``hold``): (holding table?, address) -> raw.
        self._held: dict[tuple[bool, int], int] = {}
        self._pending_settings: list[tuple[Setting, int]] = []
        self._lock = threading.Lock()
        self.write_lock = LockState(model.write_lock) if model.write_lock else None
        self.measurement = MeasurementState(model.trigger) if model.trigger else None

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        if faults.stuck and self._stuck is None:
            self._stuck = {}
        elif not faults.stuck:
            self._stuck = None
        self._faults = faults

    def reboot(self) -> None:
        """Power-cycle: counters restart from 0, Modbus is back after the boot delay.

        Written settings survive (they sit in EEPROM on a real device); an unlocked write
        lock locks, and a triggered measurement is lost.
        """
        with self._lock:
            if self.write_lock is not None:
                self.write_lock.unlocked = False
            if self.measurement is not None:
                self.measurement.forget()
            now = self._signal_time()
            self._counter_base = {
                address: self._total(spec, now)
                for address, spec in self.model.holding.items()
                if spec.counter
            } | {
                0x10000 + address: self._total(spec, now)
                for address, spec in self.model.input.items()
                if spec.counter
            }
            self._booted_s = self._clock()
            self.stats.reboots += 1

    @property
    def held(self) -> dict[str, int]:
        """The registers held at a value by ``hold``, by name."""
        with self._lock:
            held = dict(self._held)
        return {self._spec(holding, address).name: v for (holding, address), v in held.items()}

    def hold(self, values: Mapping[str, int]) -> None:
        """Hold registers (by name, in either table) at raw values, as if the world measured
        them, until the next ``hold`` replaces the set (``{}`` releases them all).

        What a benchmark or a test uses to step a reading over a threshold at a moment of its
        choosing. Faults still apply on top (out of range, stuck); a written register keeps
        the value written to it.
        """
        by_name: dict[str, list[tuple[bool, int]]] = {}
        for holding, table in ((True, self.model.holding), (False, self.model.input)):
            for address, spec in table.items():
                by_name.setdefault(spec.name, []).append((holding, address))
        held: dict[tuple[bool, int], int] = {}
        for name, value in values.items():
            if name not in by_name:
                raise ValueError(
                    f"{self.model.model} has no register {name!r} (known: {sorted(by_name)})"
                )
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
                raise ValueError(f"register {name!r}: {value!r} is not a raw value 0-65535")
            held.update(dict.fromkeys(by_name[name], value))
        with self._lock:
            self._held = held

    def _spec(self, holding: bool, address: int) -> RegisterSpec:
        return (self.model.holding if holding else self.model.input)[address]

    def hear_traffic(self) -> None:
        """The bus carried a frame (for anyone): a sleeping device wakes, but misses it."""
        now = self._clock()
        quiet = self.quirks.sleep_after_quiet_s
        self._asleep = quiet is not None and now - self._last_traffic_s > quiet
        self._last_traffic_s = now

    def register_value(
        self, address: int, *, table: FunctionCode, now: float | None = None
    ) -> int | None:
        """The current value of a register, or None when the map has no such register.

        ``now`` (signal time) lets one request read every register at the same instant.
        """
        holding = table is not FunctionCode.READ_INPUT_REGISTERS
        spec = (self.model.holding if holding else self.model.input).get(address)
        if spec is None:
            return None
        if spec.setting is Setting.SLAVE_ADDRESS:
            return self.slave
        if spec.setting is Setting.BAUD_CODE:
            codes = {baud: code for code, baud in BAUD_CODES.items()}
            return codes.get(self.baud or DEFAULT_BAUD, 0xFFFF)
        if holding:
            with self._lock:
                if address in self._written:
                    return self._written[address]
        measurement = self.measurement
        if holding and measurement and address == measurement.trigger.ready_address:
            measurement.update(self._clock())  # the device's state: never stuck
            return int(measurement.ready)
        if self._faults.out_of_range and spec.out_of_range is not None:
            return spec.out_of_range & 0xFFFF
        stuck = self._stuck
        if stuck is not None and (holding, address) in stuck:
            return stuck[holding, address]
        value = self._measured_value(spec, address, holding, now)
        if stuck is not None:
            stuck[holding, address] = value
        return value

    def _measured_value(
        self, spec: RegisterSpec, address: int, holding: bool, now: float | None
    ) -> int:
        """The live value, or under a trigger the last measurement's (or its state)."""
        measurement = self.measurement
        if measurement is None or not holding:
            return self._live_value(spec, address, holding, now)
        trigger = measurement.trigger
        measurement.update(self._clock())
        if address == trigger.error_address and measurement.finished_s is None:
            return trigger.not_ready_code
        if address in trigger.results:
            if measurement.finished_s is None:
                return 0  # nothing measured since power-on
            taken = (measurement.finished_s - self._made_s) * self._time_scale
            return self._live_value(spec, address, holding, taken)
        return self._live_value(spec, address, holding, now)

    def _live_value(
        self, spec: RegisterSpec, address: int, holding: bool, now: float | None
    ) -> int:
        with self._lock:
            held = self._held.get((holding, address))
        if held is not None:
            return held
        if now is None:
            now = self._signal_time()
        if spec.stat is not None:
            return (int(spec.signal(now)) + int(getattr(self.stats, spec.stat))) & 0xFFFF
        if spec.counter:
            base = self._counter_base.get(address if holding else 0x10000 + address, 0)
            return (self._total(spec, now) - base) % 0x10000
        value = int(spec.signal(now))
        if spec.decimals_from is not None:
            table = FunctionCode.READ_HOLDING_REGISTERS
            decimals = self.register_value(spec.decimals_from, table=table, now=now)
            value = round(value / 10 ** (3 - min(3, decimals or 0)))
        if value < 0:  # a signed register: two's complement, clamped to i16
            return max(-0x8000, value) & 0xFFFF
        return min(0xFFFF, value)

    def handle(self, request: Request, *, mode: str = "rtu") -> bytes | None:
        """The answer frame to ``request`` (already addressed to us), or None for silence.

        ``mode`` is the framing, "rtu" or "ascii". Faults apply to what goes on the wire.
        """
        self.stats.requests += 1
        faults = self._faults
        if self._asleep:
            self._asleep = False
            self.stats.unanswered_asleep += 1
            return None
        if faults.silent or self._clock() - self._booted_s < self.quirks.boot_delay_s:
            return None
        pdu = self._respond(request)
        if pdu is None:
            return None
        self.stats.responses += 1
        if pdu[0] & 0x80:
            self.stats.exceptions += 1
        slave = self.slave if faults.reply_as_slave is None else faults.reply_as_slave
        body = bytes([slave]) + pdu
        if mode == "ascii":
            frame = modbus_ascii.encode(body, corrupt=faults.corrupt_crc)
        else:
            frame = modbus.with_crc(body)
            if faults.corrupt_crc:
                frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        return mangle(frame, faults, self.rng)

    def after_answer(self) -> None:
        """Apply settings just written (address, baud): a device moves only once it answered."""
        pending, self._pending_settings = self._pending_settings, []
        for setting, value in pending:
            if setting is Setting.SLAVE_ADDRESS:
                self.slave = value
            else:
                self.baud = BAUD_CODES[value]

    # -- internals ------------------------------------------------------------------------

    def _signal_time(self) -> float:
        return (self._clock() - self._made_s) * self._time_scale

    @staticmethod
    def _total(spec: RegisterSpec, now: float) -> int:
        return int(spec.signal(now))

    def _respond(self, request: Request) -> bytes | None:
        """The answer's PDU (function code and data)."""
        function, data = request.function, request.data
        if function not in self.model.functions:
            return _exception(function, ExceptionCode.ILLEGAL_FUNCTION)
        if function in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
            return self._read(request)
        if function == FunctionCode.WRITE_SINGLE_COIL and len(data) == 4:
            address, value = modbus.u16_pair(data)
            lock = self.write_lock
            code = lock.write_coil(address, value) if lock else ExceptionCode.ILLEGAL_DATA_ADDRESS
            return _exception(function, code) if code else bytes([function]) + data
        if function == FunctionCode.WRITE_SINGLE_REGISTER and len(data) == 4:
            address, value = modbus.u16_pair(data)
            code = self._write(address, [value])
            return _exception(function, code) if code else bytes([function]) + data
        if function == FunctionCode.WRITE_MULTIPLE_REGISTERS and len(data) >= 5:
            address, count = modbus.u16_pair(data)
            words = data[5:]
            if (
                not 1 <= count <= modbus.MAX_WRITE_REGISTERS
                or data[4] != 2 * count
                or len(words) != 2 * count
            ):
                return _exception(function, ExceptionCode.ILLEGAL_DATA_VALUE)
            values = [int.from_bytes(words[i : i + 2], "big") for i in range(0, len(words), 2)]
            code = self._write(address, values)
            return _exception(function, code) if code else bytes([function]) + data[:4]
        if function in (
            FunctionCode.WRITE_SINGLE_COIL,
            FunctionCode.WRITE_SINGLE_REGISTER,
            FunctionCode.WRITE_MULTIPLE_REGISTERS,
        ):
            return _exception(function, ExceptionCode.ILLEGAL_DATA_VALUE)
        return _exception(function, ExceptionCode.ILLEGAL_FUNCTION)

    def _read(self, request: Request) -> bytes:
        table = FunctionCode(request.function)
        if len(request.data) != 4:
            return _exception(table, ExceptionCode.ILLEGAL_DATA_VALUE)
        address, count = modbus.u16_pair(request.data)
        if not 1 <= count <= modbus.MAX_READ_REGISTERS:
            return _exception(table, ExceptionCode.ILLEGAL_DATA_VALUE)
        values: list[int] = []
        now = self._signal_time()
        for offset in range(count):
            value = self.register_value(address + offset, table=table, now=now)
            if value is None:
                return _exception(table, ExceptionCode.ILLEGAL_DATA_ADDRESS)
            values.append(value)
        words = b"".join(v.to_bytes(2, "big") for v in values)
        return bytes([table, len(words)]) + words

    def _write(self, address: int, values: list[int]) -> ExceptionCode | None:
        """Store ``values`` from ``address`` on; all or nothing, as a slave must.

        A locked device refuses every write (01, see ``WriteLock``); a write of the
        trigger's value to its register starts a measurement.
        """
        lock = self.write_lock
        if lock is not None and not lock.unlocked:
            return ExceptionCode.ILLEGAL_FUNCTION
        measurement = self.measurement
        if measurement is not None and address == measurement.trigger.address:
            if values != [measurement.trigger.value]:
                return ExceptionCode.ILLEGAL_DATA_VALUE
            measurement.start(self._clock())
            return None
        for offset, value in enumerate(values):
            spec = self.model.holding.get(address + offset)
            if spec is None or not spec.writable:
                return ExceptionCode.ILLEGAL_DATA_ADDRESS
            if (spec.setting is Setting.SLAVE_ADDRESS and not 1 <= value <= 247) or (
                spec.setting is Setting.BAUD_CODE and value not in BAUD_CODES
            ):
                return ExceptionCode.ILLEGAL_DATA_VALUE
        with self._lock:
            for offset, value in enumerate(values):
                setting = self.model.holding[address + offset].setting
                if setting is None:
                    self._written[address + offset] = value
                else:
                    self._pending_settings.append((setting, value))
        if lock is not None:
            lock.wrote()
        return None


def _exception(function: int, code: ExceptionCode) -> bytes:
    return bytes([(function | 0x80) & 0xFF, int(code)])
