"""pyproject.toml says which versions edgewatch works with (ranges); constraints.txt pins the
ones CI and ``make`` install. Every dependency of every extra is pinned, inside its range."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        found += [Requirement(r) for r in extra]
    return [r for r in found if canonicalize_name(r.name) != "edgewatch"]


def pins() -> dict[str, Version]:
    pinned: dict[str, Version] = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        pin = raw.split("#", 1)[0].strip()
        if not pin:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", pin)
        assert match, f"constraints.txt: {pin!r} is not an exact pin (name==version)"
        pinned[canonicalize_name(match[1])] = Version(match[2])
    return pinned


def test_every_dependency_is_a_range_pinned_in_the_constraints_inside_it() -> None:
    pinned = pins()
    problems = []
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        if any(spec.operator == "==" for spec in requirement.specifier):
            problems.append(f"{requirement}: pyproject.toml pins it; give a range")
        if name not in pinned:
            problems.append(f"{requirement}: not pinned in constraints.txt")
        elif not requirement.specifier.contains(pinned[name], prereleases=True):
            problems.append(f"{requirement}: constraints.txt pins {pinned[name]}, outside")
    assert not problems, "\n".join(problems)


def test_the_package_and_the_api_say_the_same_version() -> None:
    from controller.api.app import API_VERSION  # noqa: PLC0415
    from wire.version import package_version  # noqa: PLC0415

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert package_version() == project["version"] == API_VERSION
