"""Every driver the agent knows, by the ``driver`` name used in device config.

Adding a driver is one folder under drivers/ (``__init__.py`` with its factory,
``config.py``, ``driver.py``, ``codec.py``, ``README.md``) and one line in ``DRIVERS``.

Two kinds: a *polled* driver (``create``) reads one device on a serial port the agent's
port owner opened; a *station* driver (``link_factory``) serves stations that push to a
listener of the agent (``drivers.stations``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import serial
from pydantic import ValidationError

from drivers import hj212, modbus_rtu, serial_line, sl651
from drivers.base import DeviceConfig, Driver, LineOptions
from drivers.stations import LinkOptions, StationLink
from wire.validation import problems

LinkFactory = Callable[[Sequence[DeviceConfig], LinkOptions], Callable[[], StationLink]]


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """How to check a device's config and build its driver: on an open serial port
    (``create``, polled) or as the links of a listener (``link_factory``, stations)."""

    config_model: type[DeviceConfig]
    create: Callable[[DeviceConfig, serial.Serial, LineOptions], Driver] | None = None
    link_factory: LinkFactory | None = None

    @property
    def pushed(self) -> bool:
        """Stations that push to a listener, rather than devices polled on a port."""
        return self.link_factory is not None


DRIVERS: dict[str, DriverSpec] = {
    "modbus_rtu": DriverSpec(modbus_rtu.ModbusRtuDeviceConfig, create=modbus_rtu.create),
    "serial_line": DriverSpec(serial_line.SerialLineDeviceConfig, create=serial_line.create),
    "sl651": DriverSpec(sl651.Sl651StationConfig, link_factory=sl651.link_factory),
    "hj212": DriverSpec(hj212.Hj212StationConfig, link_factory=hj212.link_factory),
}


class DeviceConfigError(ValueError):
    """A device config that cannot be used; the message names the device and the fix."""


def parse_device_config(raw: Mapping[str, Any]) -> DeviceConfig:
    """Check one ``[[devices]]`` table with its driver's config model.

    Raises DeviceConfigError (a ValueError) naming the device and the key, in the words of
    ``wire.validation`` (as agent.toml's errors), e.g. ``device 'gauge-1' (modbus_rtu,
    slave 1): registers[0].adress: unknown key (did you mean 'address'?)``.
    """
    name = raw.get("name", "?")
    driver = raw.get("driver")
    spec = DRIVERS.get(driver) if isinstance(driver, str) else None
    if spec is None:
        known = ", ".join(sorted(DRIVERS))
        raise DeviceConfigError(f"device {name!r}: unknown driver {driver!r} (known: {known})")
    try:
        return spec.config_model.model_validate(dict(raw))
    except ValidationError as exc:
        label = driver
        if "slave" in raw:
            label = f"{driver}, slave {raw['slave']}"
        elif "address" in raw:
            label = f"{driver}, address {raw['address']}"
        elif "station" in raw:
            label = f"{driver}, station {raw['station']}"
        elif "mn" in raw:
            label = f"{driver}, MN {raw['mn']}"
        header = f"device {name!r} ({label}): "
        found = problems(exc, spec.config_model, dict(raw))
        # Model-level checks already name the device, list items' checks their item.
        found = [_named_once(p).removeprefix(header) for p in found]
        raise DeviceConfigError(header + "; ".join(found)) from exc


def create_driver(
    config: DeviceConfig, serial_port: serial.Serial, line: LineOptions | None = None
) -> Driver:
    """Build the driver for a config from ``parse_device_config`` on an open port.

    ``line`` carries the port's settings a driver may need (Modbus inter-frame silence).
    A station driver has no driver on a port: ValueError.
    """
    create = DRIVERS[config.driver].create
    if create is None:
        raise ValueError(
            f"device {config.name!r}: {config.driver} stations push to a listener;"
            " they are not read on a port"
        )
    return create(config, serial_port, line or LineOptions())


def link_factory(
    driver: str, configs: Sequence[DeviceConfig], options: LinkOptions
) -> Callable[[], StationLink]:
    """A maker of links for the ``driver`` stations of one listener (``configs``)."""
    factory = DRIVERS[driver].link_factory
    if factory is None:
        raise ValueError(f"{driver} devices are polled on a port, not served by a listener")
    return factory(configs, options)


_NAMES_ITSELF = ("register '", "health register '", "field '")


def _named_once(problem: str) -> str:
    """``registers[1]: register 'a' (holding 1) ...`` -> ``register 'a' (holding 1) ...``:
    a list item's own check already names it."""
    path, _, text = problem.partition(": ")
    return text if text.startswith(_NAMES_ITSELF) and "." not in path else problem
