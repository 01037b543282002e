"""Config: typed, checked once, errors that name the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError, load_config, parse_config

VALID = """
[gateway]
id = "gw-1"
data_dir = "state"

[mqtt]
host = "127.0.0.1"
port = 1883

[[ports]]
name = "bus1"
url = "/dev/ttyUSB0"
parity = "E"

[[devices]]
name = "gauge-1"
driver = "modbus_rtu"
port = "bus1"
interval_s = 2.0
slave = 1

[[devices.registers]]
metric = "level_cm"
address = 0
scale = 0.1
unit = "cm"
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="agent.toml")
    return str(info.value)


def test_a_valid_config_is_typed_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(VALID)

    config = load_config(path)

    assert isinstance(config, AgentConfig)
    assert config.gateway.data_dir == tmp_path / "state"  # relative to the config file
    assert config.gateway.heartbeat_interval_s == 5.0
    assert config.mqtt.keepalive_s == 5
    assert config.ports[0].parity == "E"
    assert config.ports[0].baud == 9600
    assert config.devices[0].name == "gauge-1"
    assert config.devices[0].interval_s == 2.0
    assert config.devices_on("bus1") == [config.devices[0]]
    assert config.buffer.live_linger_s == 0.05


def test_a_negative_live_linger_is_refused_with_the_bound() -> None:
    text = VALID + "\n[buffer]\nlive_linger_s = -1\n"
    assert error_of(text) == (
        "agent.toml: buffer.live_linger_s: Input should be greater than or equal to 0, got -1"
    )


def test_config_hash_is_stable_changes_with_config_and_ignores_the_password() -> None:
    first = parse_config(VALID).config_hash
    assert first == parse_config(VALID).config_hash
    assert len(first) == 64
    assert parse_config(VALID.replace("interval_s = 2.0", "interval_s = 3.0")).config_hash != first
    with_password = VALID.replace("port = 1883", 'port = 1883\nusername = "u"\npassword = "a"')
    other_password = with_password.replace('password = "a"', 'password = "b"')
    assert parse_config(with_password).config_hash == parse_config(other_password).config_hash


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "address = 0",
            "adress = 0",
            "agent.toml: devices[0] ('gauge-1').registers[0].adress: unknown key "
            "(did you mean 'address'?)",
            id="typo-in-device-register",
        ),
        pytest.param(
            "port = 1883",
            "port = 'abc'",
            "agent.toml: mqtt.port: expected an integer, got 'abc'",
            id="wrong-type",
        ),
        pytest.param(
            'host = "127.0.0.1"',
            'hots = "127.0.0.1"',
            "agent.toml: mqtt.hots: unknown key (did you mean 'host'?)",
            id="typo-in-section",
        ),
        pytest.param(
            'port = "bus1"',
            'port = "bus2"',
            "agent.toml: devices[0] ('gauge-1').port: no [[ports]] entry named 'bus2' "
            "(did you mean 'bus1'?)",
            id="unknown-port",
        ),
        pytest.param(
            'parity = "E"',
            'parity = "X"',
            "agent.toml: ports[0] ('bus1').parity: Input should be 'N', 'E' or 'O', got 'X'",
            id="bad-parity",
        ),
        pytest.param(
            'driver = "modbus_rtu"',
            'driver = "modbus"',
            "agent.toml: devices[0] ('gauge-1').driver: unknown driver 'modbus' "
            "(did you mean 'modbus_rtu'?)",
            id="unknown-driver",
        ),
    ],
)
def test_errors_name_the_key_and_the_fix(old: str, new: str, expected: str) -> None:
    assert old in VALID
    assert error_of(VALID.replace(old, new)) == expected


def test_a_bad_gateway_id_is_refused_with_the_rule() -> None:
    message = error_of(VALID.replace('id = "gw-1"', 'id = "GW_1"'))
    assert message.startswith("agent.toml: gateway.id: gateway id 'GW_1' is not a DNS label")


def test_duplicate_device_names_are_refused() -> None:
    second = VALID[VALID.index("[[devices]]") :]
    message = error_of(VALID + second)
    assert message == (
        "agent.toml: devices[1].name: duplicate name 'gauge-1' (also devices[0]); "
        "names must be unique"
    )


def test_missing_section_and_bad_toml() -> None:
    assert error_of(VALID.replace("[mqtt]", "[mqt]")) == (
        "agent.toml: mqt: unknown key (did you mean 'mqtt'?)"
    )
    assert error_of("[gateway\n").startswith("agent.toml: not valid TOML:")


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.toml")


def test_the_agent_readme_config_parses_with_every_key() -> None:
    readme = (Path(__file__).parents[2] / "agent" / "README.md").read_text()
    sample = readme.split("## Config (every key)")[1].split("```toml")[1].split("```")[0]

    config = parse_config(sample)

    assert config.buffer.acked_retention_s == 86400
    assert config.mqtt.reconnect_max_s == 10.0
    assert config.ports[0].bytesize == 8
    assert (config.listeners[0].protocol, config.listeners[0].frame_bytes) == ("sl651", 4120)
    assert config.devices[-1].port == "sl651-tcp"
