"""Every registered driver has the same shape: config model, factory, README sample."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

from drivers.registry import DRIVERS, parse_device_config


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_driver_folder_shape(name: str) -> None:
    spec = DRIVERS[name]
    package = importlib.import_module(f"drivers.{name}")
    folder = Path(package.__file__ or "").parent
    for file in ("__init__.py", "config.py", "driver.py", "codec.py", "README.md"):
        assert (folder / file).is_file(), f"drivers/{name}/{file} is missing"
    assert spec.config_model.model_fields["driver"].annotation is not str  # a Literal of its name
    samples = re.findall(r"```toml\n(.*?)```", (folder / "README.md").read_text(), flags=re.DOTALL)
    assert samples, f"drivers/{name}/README.md has no toml sample"
    for sample in samples:
        for raw in tomllib.loads(sample)["devices"]:
            config = parse_device_config(raw)
            assert type(config) is spec.config_model
            assert config.driver == name
