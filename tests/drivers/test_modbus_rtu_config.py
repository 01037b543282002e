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
    first, field_devices, procedures = re.findall(
        r"```toml\n(.*?)```", README.read_text(), flags=re.DOTALL
    )
    (raw,) = tomllib.loads(first)["devices"]
    config = parse_device_config(raw)
    assert isinstance(config, ModbusRtuDeviceConfig)
    assert config.slave == 1
    assert config.timeout_s == 0.3
    assert [r.metric for r in config.registers] == ["level_cm", "status", "firmware_version"]
    assert config.registers[0].scale == 0.1
    assert config.registers[0].type is RegisterType.U16
    level, rain, slope = (parse_device_config(d) for d in tomllib.loads(field_devices)["devices"])
    assert isinstance(level, ModbusRtuDeviceConfig)
    assert (level.registers[0].address, level.registers[0].decimals_address) == (4, 3)
    assert isinstance(rain, ModbusRtuDeviceConfig)
    assert rain.registers[0].kind == "counter"
    assert rain.registers[1].sentinels == (0x8000,)
    assert isinstance(slope, ModbusRtuDeviceConfig)
    assert slope.mode == "ascii"
    weather, tilt = (parse_device_config(d) for d in tomllib.loads(procedures)["devices"])
    assert isinstance(weather, ModbusRtuDeviceConfig)
    assert weather.write_enable is not None
    assert (weather.write_enable.coil, weather.write_enable.value) == (0, True)
    assert weather.write_enable.relock
    assert [(h.metric, int(h.function), h.address) for h in weather.health] == [
        ("reboots", 4, 0),
        ("supply_v", 4, 2),
    ]
    assert isinstance(tilt, ModbusRtuDeviceConfig)
    assert tilt.trigger is not None
    assert (tilt.trigger.address, tilt.trigger.ready_address) == (0x20, 0x21)
    assert tilt.trigger.error_address == 0x10


def test_unknown_driver_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"device 'x': unknown driver 'modbus_tcp'"
        r" \(known: hj212, modbus_rtu, serial_line, sl651\)",
    ):
        parse_device_config({"name": "x", "driver": "modbus_tcp", "port": "bus1"})


def test_field_error_names_the_register() -> None:
    raw = gauge_config(registers=[{"metric": "level_cm", "address": 0, "type": "u64"}])
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(raw)
    message = str(caught.value)
    assert message.startswith("device 'gauge-1' (modbus_rtu, slave 1): ")
    assert "registers[0].type: Input should be" in message


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
            "registers[0].function",
        ),
        ({"registers": [{"metric": "a", "address": 0, "scale": 0}]}, "scale 0"),
        ({"baud": 9600}, "baud: unknown key"),
    ],
)
def test_config_errors(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(gauge_config(**overrides))
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("number", "function", "address"),
    [
        (40001, 3, 0),
        (40005, 3, 4),
        (30001, 4, 0),
        (30257, 4, 256),
        (400001, 3, 0),
        (465536, 3, 65535),
    ],
)
def test_documented_register_numbers(number: int, function: int, address: int) -> None:
    config = parse_device_config(gauge_config(registers=[{"metric": "x", "register": number}]))
    assert isinstance(config, ModbusRtuDeviceConfig)
    (register,) = config.registers
    assert (int(register.function), register.address, register.register_number) == (
        function,
        address,
        number,
    )
    assert register.describe().endswith(f" {address} = {number})")


@pytest.mark.parametrize(
    ("register", "fragment"),
    [
        ({"metric": "lvl", "address": 0, "register": 40001}, "register 'lvl': give exactly one"),
        ({"metric": "lvl"}, "register 'lvl': give exactly one of address"),
        ({"metric": "lvl", "register": 12}, "register 'lvl': register 12 is not a documented"),
        (
            {"metric": "lvl", "register": 30001, "function": 3},
            "register 'lvl': register 30001 is in the input table, but function = 3",
        ),
        ({"metric": "lvl", "address": 0, "sentinels": [0x10000]}, "sentinel 65536 does not fit"),
        ({"metric": "lvl", "address": 0, "type": "f32", "kind": "counter"}, "a counter is u16"),
        ({"metric": "lvl", "address": 0, "modulus": 100}, "modulus is only for kind"),
        ({"metric": "lvl", "address": 0, "valid_min": 5, "valid_max": 1}, "valid_min is above"),
        ({"metric": "lvl", "address": 4, "decimals_address": 4}, "decimals from itself"),
    ],
)
def test_register_errors_name_the_register(register: dict[str, object], fragment: str) -> None:
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(gauge_config(registers=[register]))
    message = str(caught.value)
    assert message.startswith("device 'gauge-1' (modbus_rtu, slave 1): ")
    assert fragment in message


def test_device_options() -> None:
    config = parse_device_config(gauge_config(mode="ascii", write_single_only=True, wake_retries=2))
    assert isinstance(config, ModbusRtuDeviceConfig)
    assert (config.mode, config.write_single_only, config.wake_retries) == ("ascii", True, 2)
    with pytest.raises(DeviceConfigError, match="mode"):
        parse_device_config(gauge_config(mode="tcp"))
    with pytest.raises(DeviceConfigError, match="wake_retries"):
        parse_device_config(gauge_config(wake_retries=9))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            {"health": [{"metric": "reboots", "address": 0}]},
            "health[0].name: missing required key",
        ),
        (
            {"health": [{"name": "reboots", "address": 0, "kind": "counter"}]},
            "health register 'reboots' (input 0): a health register is a value, not a counter",
        ),
        (
            {"health": [{"name": "status", "address": 1, "function": 3}]},
            "health register 'status' (holding 1) overlaps register 'status' (holding 1)",
        ),
        (
            {"health": [{"name": "a", "address": 0}, {"name": "a", "address": 1}]},
            "health register 'a' (input 1) repeats name 'a' of health register 'a' (input 0)",
        ),
        ({"write_enable": {"coil": 70000}}, "write_enable.coil: Input should be less than"),
        ({"write_enable": {"address": 0}}, "write_enable.coil: missing required key"),
        ({"trigger": {"address": 32}}, "trigger: say when the result is ready"),
        ({"trigger": {"address": 32, "settle_s": 20}}, "trigger.settle_s: Input should be"),
    ],
)
def test_procedure_config_errors_name_the_field(
    overrides: dict[str, object], fragment: str
) -> None:
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(gauge_config(**overrides))
    message = str(caught.value)
    assert message.startswith("device 'gauge-1' (modbus_rtu, slave 1): ")
    assert fragment in message
