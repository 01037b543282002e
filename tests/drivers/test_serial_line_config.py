"""Config of serial_line devices: checked once, errors that name the device and field."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.registry import DeviceConfigError, parse_device_config
from drivers.serial_line import SerialLineDeviceConfig


def gas(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "gas-1",
        "driver": "serial_line",
        "port": "line1",
        "style": "poll",
        "sentence": "GAS",
        "address": "1",
        "fields": [{"metric": "gas_lel_pct", "index": 1}],
    }
    raw.update(overrides)
    return raw


def test_default_poll_command_names_the_address() -> None:
    config = parse_device_config(gas())
    assert isinstance(config, SerialLineDeviceConfig)
    assert config.poll_command() == "POLL,1"
    custom = parse_device_config(gas(command="READ,{address},ALL"))
    assert isinstance(custom, SerialLineDeviceConfig)
    assert custom.poll_command() == "READ,1,ALL"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"sentence": None}, "nmea needs sentence"),
        ({"fields": [{"metric": "x", "key": "X"}]}, "nmea fields are chosen by index"),
        ({"fields": [{"metric": "x"}]}, "field 'x': give exactly one of index"),
        ({"fields": [{"metric": "x", "index": 1, "key": "X"}]}, "give exactly one"),
        ({"address": None}, "the default poll command needs address"),
        ({"address_field": 0, "address": None, "command": "P"}, "address_field needs address"),
        ({"format": "keyvalue", "fields": [{"metric": "x", "key": "X"}]}, "needs a command"),
        ({"style": "stream"}, "style"),
        (
            {"fields": [{"metric": "a", "index": 1}, {"metric": "a", "index": 2}]},
            "metrics repeat",
        ),
    ],
)
def test_config_errors(overrides: dict[str, Any], fragment: str) -> None:
    raw = {k: v for k, v in gas(**overrides).items() if v is not None}
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(raw)
    message = str(caught.value)
    assert message.startswith("device 'gas-1' (serial_line")
    assert fragment in message


def tilt(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "tilt-2",
        "driver": "serial_line",
        "port": "line3",
        "style": "poll",
        "format": "framed",
        "addressing": "enq",
        "address": "3",
        "fields": [{"metric": "tilt_x_deg", "key": "X"}, {"metric": "tilt_y_deg", "key": "Y"}],
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


def test_framed_commands_and_enq_id() -> None:
    enq = parse_device_config(tilt())
    assert isinstance(enq, SerialLineDeviceConfig)
    assert enq.enq_id() == 3
    data = parse_device_config(tilt(addressing=None, address=None))
    assert isinstance(data, SerialLineDeviceConfig)
    assert (data.enq_id(), data.poll_command()) == (None, "#DATA")
    push = parse_device_config(tilt(addressing=None, style="push"))
    assert isinstance(push, SerialLineDeviceConfig)
    assert push.poll_command() == "#READ"
    custom = parse_device_config(tilt(addressing=None, command="#DATA{address}"))
    assert isinstance(custom, SerialLineDeviceConfig)
    assert custom.poll_command() == "#DATA3"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"fields": [{"metric": "x", "key": "Z"}]}, "field 'x' (key 'Z'): framed fields are"),
        ({"fields": [{"metric": "x", "index": 0}]}, "framed fields are chosen by key 'X' or 'Y'"),
        ({"sentence": "GAS"}, "sentence: a framed frame has no sentence TYPE"),
        ({"address_field": 0}, "address_field: a framed frame carries no address"),
        ({"style": "push"}, "addressing 'enq' asks for one frame at a time: style must be"),
        ({"command": "#DATA"}, "command: addressing 'enq' replaces the #DATA command"),
        ({"address": "A"}, "address: addressing 'enq' needs a numeric address"),
        ({"address": None}, "address: addressing 'enq' needs a numeric address"),
        ({"address": "80"}, "address: 80 is not 0-79"),
        ({"addressing": "modbus"}, "addressing: Input should be 'enq'"),
        ({"format": "keyvalue"}, "addressing 'enq' is for format 'framed', not 'keyvalue'"),
    ],
)
def test_framed_config_errors(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(tilt(**overrides))
    message = str(caught.value)
    assert message.startswith("device 'tilt-2' (serial_line")
    assert fragment in message
