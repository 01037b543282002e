"""`make demo ARGS="--seconds N"`: the README's first command, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_whole_system_and_prints_a_summary(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgewatch.cli",
            "demo",
            "--seconds",
            "12",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert any("controller API: http://127.0.0.1:" in line for line in lines)
    summary = json.loads(lines[-1])
    assert summary["gateways"]["online"] == 3  # two water-gauge gateways and the flood station
    assert any("sl651 sl651_river river-st-1 dials in over TCP" in line for line in lines)
    assert any("hj212 hj212_air air-1 dials in over TCP" in line for line in lines)
    reporting = {s["protocol"] for s in summary["stations"].values() if s["value"] is not None}
    assert reporting == {"sl651", "hj212"}
    assert summary["readings_stored"] > 0
    tiers = {center["tier"] for center in summary["centers"].values()}
    assert tiers == {"city", "district", "street"}
    for name, center in summary["centers"].items():
        assert center["delivered"] > 0, name
        assert center["received"] > 0, name


def test_demo_refuses_a_nonsense_duration() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgewatch.cli", "demo", "--seconds", "-3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--seconds must be positive" in result.stderr
