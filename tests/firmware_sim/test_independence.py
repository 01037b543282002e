"""The simulator and the drivers share no code, so a bug on one side cannot hide on both."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_top_level_packages(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("firmware-sim/firmware_sim", {"drivers", "agent", "controller", "minimalmodbus"}),
        ("drivers", {"firmware_sim", "agent", "controller"}),
    ],
)
def test_no_imports_across_the_line(folder: str, forbidden: set[str]) -> None:
    assert not imported_top_level_packages(ROOT / folder) & forbidden
