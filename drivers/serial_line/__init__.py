"""Serial-line devices speaking ASCII sentences, polled or pushing, on pyserial. See README.md."""

from __future__ import annotations

import serial

from drivers.base import DeviceConfig, LineOptions
from drivers.serial_line.codec import (
    FramedFramer,
    KeyValueFramer,
    Sentence,
    SentenceFramer,
    enq_request,
    frame_angles,
    frame_sentence,
)
from drivers.serial_line.config import FieldConfig, SerialLineDeviceConfig
from drivers.serial_line.driver import SerialLineDriver


def create(
    config: DeviceConfig, serial_port: serial.Serial, line: LineOptions | None = None
) -> SerialLineDriver:
    """The registry's factory: a driver for ``config`` on an open ``serial_port``.

    ``line`` (Modbus framing options) means nothing to a sentence device.
    """
    if not isinstance(config, SerialLineDeviceConfig):
        raise TypeError(f"serial_line cannot drive a {type(config).__name__}")
    return SerialLineDriver(config, serial_port)


__all__ = [
    "FieldConfig",
    "FramedFramer",
    "KeyValueFramer",
    "Sentence",
    "SentenceFramer",
    "SerialLineDeviceConfig",
    "SerialLineDriver",
    "create",
    "enq_request",
    "frame_angles",
    "frame_sentence",
]
