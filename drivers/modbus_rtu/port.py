"""The open port as minimalmodbus sees it, and what a failed transaction says about the line.

``RecordingPort`` hands every call through to the port the agent opened (a pyserial
``Serial`` or a ``serial_for_url`` object such as ``socket://``) and keeps the bytes read
since the transaction began, so ``classify`` can look at what actually came back.
"""

from __future__ import annotations

from typing import Any

import minimalmodbus
import serial

from drivers.base import ErrorKind, InterFrameSilence

# minimalmodbus's own bookkeeping, which ``InterFrameGap`` adjusts. Pinned at 2.1.1 (see
# pyproject); tests/drivers/test_modbus_rtu_silence.py fails loudly if these change.
_MINIMALMODBUS_VERSION = "2.1.1"
_FRAME_GAP_CHARS = 3.5
_BITS_PER_CHAR = 11


class RecordingPort:
    """A pass-through serial port that remembers the answer of the current transaction."""

    def __init__(self, port: serial.Serial) -> None:
        self._port = port
        self.answer = b""

    def begin(self) -> None:
        """A new transaction starts: forget the last answer."""
        self.answer = b""

    def read(self, size: int = 1) -> bytes:
        data = self._port.read(size)
        self.answer += data
        return data

    def write(self, data: bytes) -> int | None:
        return self._port.write(data)

    def open(self) -> None:
        # The port is the agent's: minimalmodbus only "opens" one that the agent closed,
        # and reopening behind the owner's back would hide an I/O error.
        raise serial.SerialException(f"port {self._port.port} is closed")

    def close(self) -> None:
        """Never close the agent's port (minimalmodbus may, with close_port_after_each_call)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    @property
    def is_open(self) -> bool:
        return bool(self._port.is_open)


def classify(
    error: Exception, answer: bytes | None = None, *, mode: str = "rtu", slave: int | None = None
) -> ErrorKind:
    """Which health counter a failed transaction moves.

    ``answer`` is what came back (``RecordingPort.answer``) and ``slave`` who was asked,
    when known: they separate an answer cut short (timeout), one that starts as the answer
    should but whose checksum is wrong (crc), and bytes that are no answer at all (garbage).
    """
    if isinstance(error, minimalmodbus.NoResponseError):
        return ErrorKind.TIMEOUT
    if isinstance(error, minimalmodbus.SlaveReportedException):
        return ErrorKind.EXCEPTION
    if isinstance(error, minimalmodbus.InvalidResponseError):
        text = str(error)
        if text.startswith("Too short"):
            return ErrorKind.TIMEOUT  # only part of an answer came in time
        if text.startswith("Checksum error"):
            return _checksum_failure(answer, mode, slave)
        if text.startswith("Wrong return slave address"):
            return ErrorKind.WRONG_ID
        if _ascii_cut_short(answer, mode, slave):
            return ErrorKind.TIMEOUT
        return ErrorKind.GARBAGE
    if isinstance(error, minimalmodbus.ModbusException):
        return ErrorKind.GARBAGE  # e.g. a local echo that did not match
    if isinstance(error, serial.SerialException | OSError):
        return ErrorKind.IO
    return ErrorKind.GARBAGE  # ValueError / TypeError from parsing a malformed answer


def _checksum_failure(answer: bytes | None, mode: str, slave: int | None) -> ErrorKind:
    if answer is None or slave is None:
        return ErrorKind.CRC
    if mode == "ascii":
        # ":" + hex(slave) starts every answer of ours: a wrong LRC after it is corruption.
        header = f":{slave:02X}".encode()
        return ErrorKind.CRC if answer.upper().startswith(header) else ErrorKind.GARBAGE
    if len(answer) < 2 or answer[0] != slave or answer[1] & 0x7F not in _FUNCTIONS:
        return ErrorKind.GARBAGE
    if answer[1] in _READ_FUNCTIONS and len(answer) >= 3 and len(answer) < 5 + answer[2]:
        return ErrorKind.TIMEOUT  # shorter than its own byte count says: cut short
    if answer[1] in _WRITE_FUNCTIONS and len(answer) < _WRITE_ANSWER_BYTES:
        return ErrorKind.TIMEOUT  # a write's answer is 8 bytes: this one was cut short
    return ErrorKind.CRC


def _ascii_cut_short(answer: bytes | None, mode: str, slave: int | None) -> bool:
    """An ASCII answer that starts as ours should but never reached its CRLF."""
    if mode != "ascii" or answer is None or slave is None:
        return False
    return answer.upper().startswith(f":{slave:02X}".encode()) and not answer.endswith(b"\r\n")


_READ_FUNCTIONS = frozenset({3, 4})
_WRITE_FUNCTIONS = frozenset({5, 6, 16})  # answered by an echo: slave, fc, 2 x u16, CRC
_WRITE_ANSWER_BYTES = 8
_FUNCTIONS = _READ_FUNCTIONS | _WRITE_FUNCTIONS


class InterFrameGap:
    """The silence before each request, as the port's ``inter_frame_silence`` says.

    minimalmodbus 2.1.1 sleeps before each request until ``max(3.5 character times,
    1.75 ms)`` have passed since the last answer on that port name, timed from its
    module-level ``_latest_read_times[port]``. For ``char-times`` this pre-dates that entry
    by the difference, so the sleep is 3.5 character times at any baud. Nothing changes for
    ``modbus-standard`` (or at 19200 baud and below, where both are the same).
    """

    def __init__(self, mode: InterFrameSilence, serial_port: serial.Serial) -> None:
        self.mode = InterFrameSilence(mode)
        self._serial = serial_port
        self._predated_to: float | None = None
        if self.mode is InterFrameSilence.CHAR_TIMES:
            check_minimalmodbus_internals()

    def before_transaction(self) -> None:
        """Call right before each minimalmodbus transaction on this port."""
        if self.mode is InterFrameSilence.MODBUS_STANDARD:
            return
        port_name = self._serial.port or ""
        latest = minimalmodbus._latest_read_times.get(port_name)
        if latest is None or latest == self._predated_to:
            return  # no answer yet, or already moved for this gap
        baud = float(self._serial.baudrate)
        standard_s = minimalmodbus._calculate_minimum_silent_period(baud)
        char_times_s = _FRAME_GAP_CHARS * _BITS_PER_CHAR / baud
        self._predated_to = latest - max(0.0, standard_s - char_times_s)
        minimalmodbus._latest_read_times[port_name] = self._predated_to


def check_minimalmodbus_internals() -> None:
    """Refuse ``char-times`` loudly when minimalmodbus is not the version it was built on."""
    version = getattr(minimalmodbus, "__version__", "?")
    if (
        version != _MINIMALMODBUS_VERSION
        or not isinstance(getattr(minimalmodbus, "_latest_read_times", None), dict)
        or not callable(getattr(minimalmodbus, "_calculate_minimum_silent_period", None))
    ):
        raise RuntimeError(
            f"inter_frame_silence = 'char-times' relies on minimalmodbus"
            f" {_MINIMALMODBUS_VERSION} internals, found {version}: use 'modbus-standard'"
            " or check drivers/modbus_rtu/port.py against the new version"
        )
