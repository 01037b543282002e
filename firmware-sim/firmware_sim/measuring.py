"""Device procedures beyond plain registers: a write-enable coil, a triggered measurement.

Declared as data on a ``DeviceModel`` (``WriteLock``, ``Trigger``); the state of one
device (is it unlocked, when did its last measurement start) lives in ``LockState`` and
``MeasurementState``, owned by its ``SimulatedDevice``.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_sim.modbus import ExceptionCode

COIL_ON = 0xFF00  # function 05: the only two values a coil write may carry
COIL_OFF = 0x0000


@dataclass(frozen=True, slots=True)
class WriteLock:
    """Writes (06 / 16) are refused until coil ``coil`` is written ON (function 05).

    Refused with exception 01 (illegal function): the Modbus spec's code for a server
    "in the wrong state to process a request of this type". ``relocks``: the device locks
    itself again after each accepted write (else it stays unlocked until the coil is
    written OFF, or it reboots).
    """

    coil: int
    relocks: bool = True


class LockState:
    def __init__(self, lock: WriteLock) -> None:
        self.lock = lock
        self.unlocked = False

    def write_coil(self, address: int, value: int) -> ExceptionCode | None:
        """A function 05 request: None when taken, else the exception to answer."""
        if address != self.lock.coil:
            return ExceptionCode.ILLEGAL_DATA_ADDRESS
        if value not in (COIL_ON, COIL_OFF):
            return ExceptionCode.ILLEGAL_DATA_VALUE
        self.unlocked = value == COIL_ON
        return None

    def wrote(self) -> None:
        if self.lock.relocks:
            self.unlocked = False


@dataclass(frozen=True, slots=True)
class Trigger:
    """A measurement started by writing ``value`` to holding ``address``.

    It takes ``measure_s`` (real seconds). Meanwhile ``ready_address`` reads 0, then 1.
    The registers in ``results`` show the last finished measurement (taken the instant it
    finished), and 0 before the first one. ``error_address`` reads ``not_ready_code``
    until a measurement has finished since power-on, then 0.
    """

    address: int
    ready_address: int
    error_address: int
    results: frozenset[int]
    value: int = 1
    measure_s: float = 0.05
    not_ready_code: int = 2


class MeasurementState:
    """When the current measurement started (real time), and the last one that finished."""

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.started_s: float | None = None  # real time of the latest trigger
        self.finished_s: float | None = None  # real time the last measurement finished

    def start(self, now_s: float) -> None:
        self.update(now_s)
        self.started_s = now_s

    def update(self, now_s: float) -> None:
        """A started measurement that has had its time is finished."""
        started = self.started_s
        if started is not None and now_s - started >= self.trigger.measure_s:
            self.finished_s = started + self.trigger.measure_s
            self.started_s = None

    def forget(self) -> None:
        """Power-cycle: no measurement, none running."""
        self.started_s = self.finished_s = None

    @property
    def ready(self) -> bool:
        return self.started_s is None and self.finished_s is not None
