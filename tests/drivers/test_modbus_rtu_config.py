"""Device config of modbus_rtu: checked once, errors that name device and register."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from drivers.modbus_rtu import ModbusRtuDeviceConfig, RegisterType
from drivers.registry import DeviceConfigError, parse_device_config

from .conftest import gauge_config

README = Path(__file__).resolve().parents[2] / "drivers" / "modbus_rtu" / "README.md"


def test_readme_sample_parses() -> None:
    (sample,) = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (raw,) = tomllib.loads(sample)["devices"]
    config = parse_device_config(raw)
    assert isinstance(config, ModbusRtuDeviceConfig)
    assert config.slave == 1
    assert config.timeout_s == 0.3
    assert [r.metric for r in config.registers] == ["level_cm", "status", "firmware_version"]
    assert config.registers[0].scale == 0.1
    assert config.registers[0].type is RegisterType.U16


def test_unknown_driver_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match=r"device 'x': unknown driver 'modbus_tcp' \(known: modbus_rtu\)"
    ):
        parse_device_config({"name": "x", "driver": "modbus_tcp", "port": "bus1"})


def test_field_error_names_the_register() -> None:
    raw = gauge_config(registers=[{"metric": "level_cm", "address": 0, "type": "u64"}])
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(raw)
    message = str(caught.value)
    assert message.startswith("device 'gauge-1' (modbus_rtu, slave 1): ")
    assert "registers[0] 'level_cm'.type: Input should be" in message


def test_overlap_names_both_registers_once() -> None:
    raw = gauge_config(
        registers=[
            {"metric": "angle_x", "address": 0x100, "type": "f32", "word_order": "CDAB"},
            {"metric": "angle_y", "address": 0x101, "type": "f32"},
        ]
    )
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(raw)
    assert str(caught.value) == (
        "device 'gauge-1' (modbus_rtu, slave 1): register 'angle_y' (holding 257) overlaps "
        "register 'angle_x' (holding 256) (a f32 spans 256-257)"
    )


def test_same_address_in_other_table_is_fine() -> None:
    config = parse_device_config(
        gauge_config(
            registers=[
                {"metric": "level", "address": 0},
                {"metric": "supply_v", "address": 0, "function": 4, "scale": 0.1},
            ]
        )
    )
    assert isinstance(config, ModbusRtuDeviceConfig)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"slave": 0}, "slave: Input should be greater than or equal to 1"),
        ({"slave": 248}, "slave: Input should be less than or equal to 247"),
        ({"registers": []}, "registers: List should have at least 1 item"),
        (
            {"registers": [{"metric": "a", "address": 0}, {"metric": "a", "address": 1}]},
            "register 'a' (holding 1) repeats metric 'a' of register 'a' (holding 0)",
        ),
        (
            {"registers": [{"metric": "a", "address": 0xFFFF, "type": "u32"}]},
            "register 'a' (holding 65535): a u32 runs past address 65535",
        ),
        (
            {"registers": [{"metric": "a", "address": 0, "function": 6}]},
            "registers[0] 'a'.function",
        ),
        ({"registers": [{"metric": "a", "address": 0, "scale": 0}]}, "scale 0"),
        ({"baud": 9600}, "baud: Extra inputs are not permitted"),
    ],
)
def test_config_errors(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(gauge_config(**overrides))
    assert fragment in str(caught.value)
