"""Modbus RTU and ASCII devices (reads 03/04, writes 06/16), on minimalmodbus. See README.md."""

from __future__ import annotations

import serial

from drivers.base import DeviceConfig, LineOptions
from drivers.modbus_rtu.config import (
    ModbusRtuDeviceConfig,
    RegisterConfig,
    RegisterKind,
    RegisterTable,
    RegisterType,
    WordOrder,
)
from drivers.modbus_rtu.driver import ModbusRtuDriver


def create(
    config: DeviceConfig, serial_port: serial.Serial, line: LineOptions | None = None
) -> ModbusRtuDriver:
    """The registry's factory: a driver for ``config`` on an open ``serial_port``."""
    if not isinstance(config, ModbusRtuDeviceConfig):
        raise TypeError(f"modbus_rtu cannot drive a {type(config).__name__}")
    return ModbusRtuDriver(config, serial_port, line=line)


__all__ = [
    "ModbusRtuDeviceConfig",
    "ModbusRtuDriver",
    "RegisterConfig",
    "RegisterKind",
    "RegisterTable",
    "RegisterType",
    "WordOrder",
    "create",
]
