"""Serial-line driver: ASCII sentences, polled (command, answer) or pushed by the device.

Polled: ``read()`` clears stale input, writes the command and reads until the answer (a
sentence of the configured type from the configured address) or the timeout. Pushed:
``read()`` drains what the port has buffered and returns the newest values; if nothing
usable is buffered it waits up to the timeout for the next sentence. The port belongs to
the agent's port owner; every call runs on its thread.

Framed inclinometers are polled with ``#DATA`` (or, on a shared line, by the address byte
0xB0 + id and ENQ), or pushed: the first ``read()`` sends ``#READ`` and drains the stream
from then on; after a read that saw nothing at all, the next sends ``#READ`` again (a
device that lost power has forgotten it), and ``close()`` sends ``#STOP``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import serial

from drivers.base import DriverError, ErrorKind, Measurement
from drivers.serial_line.codec import (
    FramedFramer,
    Framer,
    FramerStats,
    KeyValueFramer,
    Sentence,
    SentenceFramer,
    enq_request,
    frame_sentence,
)
from drivers.serial_line.config import (
    FRAMED_KEYS,
    FRAMED_STOP_COMMAND,
    FieldConfig,
    SerialLineDeviceConfig,
)
from wire import Quality
from wire.readable import measured


class SerialLineDriver:
    """Reads one sentence device; see ``drivers.base.Driver``."""

    def __init__(self, config: SerialLineDeviceConfig, serial_port: serial.Serial) -> None:
        if not serial_port.is_open:
            raise ValueError(f"{config.describe()}: serial port {serial_port.port} is not open")
        self._config = config
        self._serial = serial_port
        length = config.max_line_bytes
        self._framer: Framer
        if config.format == "nmea":
            self._framer = SentenceFramer(max_length=length)
        elif config.format == "keyvalue":
            self._framer = KeyValueFramer(max_length=length)
        else:
            self._framer = FramedFramer(max_length=length)
        self.wrong_address = 0  # answers from another address, ignored
        # framed push: whether #READ was sent (and the stream has not gone quiet since)
        self._streaming = False

    @property
    def device_name(self) -> str:
        return self._config.name

    @property
    def config(self) -> SerialLineDeviceConfig:
        return self._config

    @property
    def framer_stats(self) -> FramerStats:
        """What the framer threw away so far: noise, bad checksums, over-long lines."""
        return self._framer.stats

    def read(self) -> list[Measurement]:
        """One reading of every configured field. Raises DriverError when none came."""
        if not self._serial.is_open:
            raise DriverError(
                ErrorKind.IO,
                f"{self._config.describe()}: serial port {self._serial.port} is closed",
            )
        before, wrong_before = self._framer.stats.copy(), self.wrong_address
        timeout_s = (
            self._config.timeout_s if self._config.timeout_s is not None else self._serial.timeout
        )
        deadline = time.monotonic() + (timeout_s or 0.0)
        latest: dict[str, str] = {}
        try:
            with self._restore_timeout():
                if self._config.style == "poll":
                    self._serial.reset_input_buffer()
                    self._serial.write(self._command())
                    self._collect(latest, deadline, stop_at_first=True)
                else:
                    if self._config.format == "framed" and not self._streaming:
                        self._serial.reset_input_buffer()
                        self._serial.write(self._command())  # #READ: start the stream
                        self._streaming = True
                    self._collect(latest, time.monotonic(), stop_at_first=False)  # the buffer
                    if not self._complete(latest):
                        self._collect(latest, deadline, stop_at_first=False)
        except (serial.SerialException, OSError) as exc:
            raise DriverError(
                ErrorKind.IO, f"{self._config.describe()}: {ErrorKind.IO}: {exc}"
            ) from exc
        if not latest:
            error = self._nothing_usable(before, wrong_before, timeout_s)
            if error.kind is ErrorKind.TIMEOUT:
                self._streaming = False  # a rebooted device forgot #READ: ask again next time
            raise error
        return [self._measurement(f, latest.get(f.metric)) for f in self._config.fields]

    def close(self) -> None:
        """Stop a framed stream (``#STOP``); the port itself belongs to the port owner."""
        if self._streaming and self._serial.is_open:
            with suppress(serial.SerialException, OSError):
                self._serial.write(FRAMED_STOP_COMMAND.encode("ascii") + b"\r\n")
        self._streaming = False

    # -- internals ------------------------------------------------------------------------

    def _command(self) -> bytes:
        enq_id = self._config.enq_id()
        if enq_id is not None:
            return enq_request(enq_id)
        text = self._config.poll_command()
        if self._config.format == "nmea":
            return frame_sentence(text)
        return text.encode("ascii") + b"\r\n"

    def _collect(self, latest: dict[str, str], deadline: float, *, stop_at_first: bool) -> None:
        """Feed the framer until the deadline (or the first usable answer, when polling)."""
        while True:
            waiting = self._serial.in_waiting
            remaining = deadline - time.monotonic()
            if waiting:
                data = self._serial.read(waiting)
            elif remaining <= 0:
                return
            else:
                self._serial.timeout = remaining
                data = self._serial.read(1)
            for sentence in self._framer.feed(data):
                self._take(sentence, latest)
            if latest and (stop_at_first or self._complete(latest)) and not self._serial.in_waiting:
                return

    def _take(self, sentence: Sentence, latest: dict[str, str]) -> None:
        config = self._config
        if config.format == "keyvalue":
            for field in config.fields:
                if field.key == sentence.type:
                    latest[field.metric] = sentence.fields[0]
            return
        if config.format == "framed":
            latest.clear()  # one frame carries both angles: the newest wins whole
            for field in config.fields:
                position = FRAMED_KEYS[field.key or ""]
                text = sentence.fields[position] if position < len(sentence.fields) else ""
                latest[field.metric] = text
            return
        if sentence.type != config.sentence:
            return
        if config.address_field is not None and (
            config.address_field >= len(sentence.fields)
            or sentence.fields[config.address_field] != config.address
        ):
            self.wrong_address += 1
            return
        latest.clear()  # one sentence carries every field: the newest wins whole
        for field in config.fields:
            assert field.index is not None
            if field.index < len(sentence.fields):
                latest[field.metric] = sentence.fields[field.index]
            else:
                latest[field.metric] = ""

    def _complete(self, latest: dict[str, str]) -> bool:
        return all(f.metric in latest for f in self._config.fields)

    def _nothing_usable(
        self, before: FramerStats, wrong_before: int, timeout_s: float | None
    ) -> DriverError:
        """Why no reading came: the worst thing seen on the line, else a timeout."""
        stats = self._framer.stats
        name = self._config.describe()
        if stats.bad_checksums > before.bad_checksums:
            kind, why = ErrorKind.CRC, f"{stats.bad_checksums - before.bad_checksums} bad checksums"
        elif self.wrong_address > wrong_before:
            kind, why = ErrorKind.WRONG_ID, "answers only from another address"
        elif (
            stats.noise_bytes > before.noise_bytes
            or stats.overlong > before.overlong
            or stats.cut_short > before.cut_short
        ):
            kind = ErrorKind.GARBAGE
            why = (
                f"{stats.noise_bytes - before.noise_bytes} noise bytes,"
                f" {stats.overlong - before.overlong} over-long lines,"
                f" {stats.cut_short - before.cut_short} cut-short sentences"
            )
        else:
            kind, why = ErrorKind.TIMEOUT, f"no sentence within {timeout_s} s"
        return DriverError(kind, f"{name}: {kind}: {why}")

    def _measurement(self, field: FieldConfig, text: str | None) -> Measurement:
        metric, unit = field.metric, field.unit
        problem = None
        value = None
        try:
            value = measured(float(text or "nan") * field.scale + field.offset)
        except ValueError:
            problem = f"{text!r} is not a number"
        if problem is None and (value is None or not math.isfinite(value)):
            problem = f"{text!r} is not a number" if text else "the field is missing or empty"
        if problem is None and value is not None:
            low, high = field.valid_min, field.valid_max
            if (low is not None and value < low) or (high is not None and value > high):
                problem = f"{value:g} is outside the valid range [{low}, {high}]"
        if problem is not None:
            where = f"{self._config.describe()}: {field.describe()}"
            error = f"{where}: {ErrorKind.INVALID_VALUE}: {problem}"
            return Measurement(
                metric, None, unit, Quality.BAD, error, error_kind=ErrorKind.INVALID_VALUE
            )
        return Measurement(metric, value, unit)

    @contextmanager
    def _restore_timeout(self) -> Iterator[None]:
        port_timeout_s = self._serial.timeout
        try:
            yield
        finally:
            self._serial.timeout = port_timeout_s
