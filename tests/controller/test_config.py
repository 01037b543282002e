"""Controller config: the documented example parses; every error names the key and the fix."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from controller import config as config_module
from controller.config import ConfigError, Tier, load_config, parse_config
from controller.refusals import refusal

ROOT = Path(__file__).resolve().parents[2]


def documented_example() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Controller config (TOML)", 1)[1]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match, "docs/architecture.md has no controller TOML example"
    return match.group(1)


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads(documented_example())
    data.update(changes)
    return data


def test_the_documented_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "controller.toml"
    path.write_text(documented_example())
    config = load_config(path)
    assert config.mqtt.port == 1883
    assert config.storage.path == tmp_path / "controller.db"  # relative to the config file
    assert config.gateways[0].place == "cq/yuzhong/jiefangbei"
    assert config.centers[0].tier is Tier.CITY
    assert config.health.heartbeat_misses == 3
    assert refusal(config, active_tokens=1) is None  # and it would start, outside demo mode


def test_the_module_docstring_example_parses() -> None:
    doc = config_module.__doc__ or ""
    example = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert example
    config = parse_config(tomllib.loads(example.group(1)))
    assert config.forwarding.batch_max_readings == 500
    assert refusal(config, active_tokens=1) is None


CENTER = {"name": "c", "tier": "city", "place": "cq", "url": "http://127.0.0.1:9/ingest"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"centers": [CENTER, {**CENTER, "name": "d", "tier": "county"}]},
            "centers[1] ('d').tier: Input should be 'city', 'district' or 'street', got 'county'",
        ),
        ({"mqtt": {"hots": "x"}}, "mqtt.hots: unknown key (did you mean 'host'?)"),
        ({"centers": [{**CENTER, "tier": "distrct"}]}, "(did you mean 'district'?)"),
        ({"colour": "red"}, "colour: unknown key (allowed keys: "),
        (
            {"centers": [{**CENTER, "place": "CQ//x"}]},
            "centers[0] ('c').place: expected a place path like",
        ),
        (
            {"centers": [{**CENTER, "url": None}]},
            "centers[0] ('c').url: expected a string, got None",
        ),
        (
            {"centers": [{k: v for k, v in CENTER.items() if k != "url"}]},
            "centers[0] ('c').url: missing required key",
        ),
        ({"centers": [{**CENTER, "url": "ftp://x"}]}, "centers[0] ('c').url:"),
        ({"centers": [CENTER, CENTER]}, "centers[1].name: 'c' is configured twice"),
        ({"gateways": [{"id": "GW_1", "place": "cq"}]}, "gateways[0].id: gateway id 'GW_1' is not"),
        (
            {"http": {"port": 70000}},
            "http.port: Input should be less than or equal to 65535, got 70000",
        ),
        ({"health": {"heartbeat_misses": 0}}, "health.heartbeat_misses:"),
    ],
)
def test_errors_name_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(minimal(**changes))
    assert message in str(caught.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_config(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[mqtt\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(broken)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[http]\nport = "eighty"\n')
    with pytest.raises(ConfigError, match=r"wrong\.toml: invalid config:\n  http.port: "):
        load_config(wrong)
