"""One formatter of validation errors: every config and the API say the same for a typo."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from agent.config import ConfigError as AgentConfigError
from agent.config import parse_config as parse_agent_config
from controller.config import ConfigError as ControllerConfigError
from controller.config import parse_config as parse_controller_config
from drivers.registry import DeviceConfigError, parse_device_config
from wire.validation import explain, problems


class Port(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    parity: Literal["N", "E", "O"] = "N"


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str
    ports: list[Port] = []


def refused(raw: dict[str, object]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Doc.model_validate(raw)
    return caught.value


def test_a_typo_is_one_error_with_its_fix_not_also_a_missing_key() -> None:
    exc = refused({"hots": "x"})
    assert problems(exc, Doc, {"hots": "x"}) == ["hots: unknown key (did you mean 'host'?)"]


def test_list_items_are_named_and_the_rest_is_counted() -> None:
    raw: dict[str, object] = {"host": "h", "ports": [{"name": "bus1", "parity": "X", "baud": 1}]}
    assert explain(refused(raw), "x.toml", Doc, raw) == (
        "x.toml: ports[0] ('bus1').baud: unknown key (allowed keys: name, parity)"
        " (and 1 more error)"
    )
    assert problems(refused(raw), Doc, raw)[1] == (
        "ports[0] ('bus1').parity: Input should be 'N', 'E' or 'O', got 'X'"
    )


def test_without_the_model_an_unknown_key_is_still_named() -> None:
    assert problems(refused({"host": "h", "hots": "x"})) == ["hots: unknown key"]


def test_agent_driver_and_controller_configs_say_the_same_for_the_same_typo() -> None:
    with pytest.raises(AgentConfigError) as agent:
        parse_agent_config('[gateway]\nid = "gw-1"\n[mqtt]\nhots = "127.0.0.1"\n')
    with pytest.raises(ControllerConfigError) as controller:
        parse_controller_config({"mqtt": {"hots": "127.0.0.1"}})
    with pytest.raises(DeviceConfigError) as device:
        parse_device_config(
            {"name": "g", "driver": "modbus_rtu", "port": "bus1", "slave": 1, "slvae": 2,
             "registers": [{"metric": "m", "address": 0}]}
        )  # fmt: skip
    words = "unknown key (did you mean 'host'?)"
    assert f"agent.toml: mqtt.hots: {words}" in str(agent.value)
    assert str(controller.value) == f"mqtt.hots: {words}"
    assert str(device.value).endswith("slvae: unknown key (did you mean 'slave'?)")
