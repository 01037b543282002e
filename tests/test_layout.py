"""The code's layout as the docs describe it: what may import what, and the module maps.

- Every import of every module of ours (at any depth: lazy imports inside functions count)
  is allowed by the dependency table of docs/architecture.md.
- agent/README.md and controller/README.md list every module file of their package, and
  nothing that is not there.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("agent", "controller", "drivers", "edgewatch", "firmware_sim", "wire")
SOURCE_ROOTS = {name: ROOT / name for name in OURS} | {
    "firmware_sim": ROOT / "firmware-sim" / "firmware_sim"
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # what it imports, dotted (``from a.b import c`` names ``a.b.c``)
    line: int


def module_name(path: Path, top: str) -> str:
    parts = path.relative_to(SOURCE_ROOTS[top]).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((top, *parts))


def imports_of(path: Path, top: str) -> list[Import]:
    module = module_name(path, top)
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import mod`` imports pkg.mod when mod is a module: name both forms
            # by the longer one, which a rule for pkg also covers.
            found += [
                Import(module, f"{node.module}.{alias.name}", node.lineno) for alias in node.names
            ]
    return [i for i in found if i.target.split(".")[0] in OURS]


def dependency_table() -> dict[str, tuple[str, ...]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("### What may import what", 1)[1]
    rules: dict[str, tuple[str, ...]] = {}
    for package, allowed in re.findall(r"^\| `([\w.]+)` \| (.+?) \|$", section, flags=re.M):
        rules[package] = tuple(re.findall(r"`([\w.]+)`", allowed))
    return rules


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_for(module: str, rules: dict[str, tuple[str, ...]]) -> str:
    """The most specific row of the table that covers the module."""
    candidates = [package for package in rules if within(module, package)]
    if not candidates:
        raise AssertionError(f"{module}: no row of the dependency table covers it")
    return max(candidates, key=len)


def all_modules() -> list[tuple[Path, str]]:
    return [(path, top) for top, folder in SOURCE_ROOTS.items() for path in folder.rglob("*.py")]


def test_the_dependency_table_names_every_top_level_package() -> None:
    assert set(OURS) <= set(dependency_table())


def test_every_import_is_allowed_by_the_dependency_table() -> None:
    rules = dependency_table()
    wrong: list[str] = []
    for path, top in all_modules():
        for found in imports_of(path, top):
            row = rule_for(found.module, rules)
            allowed = (*rules[row], row)
            if not any(within(found.target, entry) for entry in allowed):
                where = f"{path.relative_to(ROOT)}:{found.line}"
                wrong.append(f"{where}: {found.module} imports {found.target} ({row!r} may not)")
    assert not wrong, "\n".join(wrong)


def test_the_simulator_never_speaks_through_a_modbus_library() -> None:
    """firmware_sim is an independent implementation of the devices: no minimalmodbus."""
    for path, top in all_modules():
        if top != "firmware_sim":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not [n for n in names if n.split(".")[0] == "minimalmodbus"], path


def test_a_forbidden_import_is_caught() -> None:
    """The check itself can fail: a driver importing the agent breaks the table."""
    rules = dependency_table()
    row = rule_for("drivers.modbus_rtu.driver", rules)
    assert row == "drivers"
    assert not any(within("agent.bus.ports", entry) for entry in (*rules[row], row))


@pytest.mark.parametrize("package", ["agent", "controller"])
def test_the_module_map_lists_every_module(package: str) -> None:
    folder = ROOT / package
    readme = (folder / "README.md").read_text()
    section = readme.split("| module | what |", 1)[1]
    listed: set[str] = set()
    for cell in re.findall(r"^\| (.+?) \|", section, flags=re.M):
        listed.update(re.findall(r"`([\w/]+\.py|[\w/]+/)`", cell))
    files = {
        str(path.relative_to(folder)) for path in folder.rglob("*.py") if path.name != "__init__.py"
    }
    folders = {entry for entry in listed if entry.endswith("/")}
    assert files - listed == set(), f"{package}/README.md does not list these modules"
    assert {e for e in listed - files if e not in folders} == set(), (
        f"{package}/README.md lists modules that do not exist"
    )
    for entry in folders:
        assert (folder / entry).is_dir(), f"{package}/README.md lists a missing folder {entry}"
