"""The `edgewatch` console script: every subcommand dispatches, and every one is documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgewatch.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_answers_help(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgewatch.cli", name, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_is_documented(name: str) -> None:
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "architecture.md").read_text()
    assert f"edgewatch {name}" in docs


def test_an_unknown_subcommand_is_refused_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err
    assert "controller" in err
