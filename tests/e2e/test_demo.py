"""`make demo`: the README's first command, run as a user runs it: for N seconds, or until
Ctrl-C (SIGINT to the terminal's process group) or SIGTERM (``timeout`` signals its group)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edgewatch.waiting import wait_until

DEMO = [sys.executable, "-m", "edgewatch.cli", "demo"]
STATUS = re.compile(r"centers received: (.*)$")


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
    assert any("map: http://127.0.0.1:" in line and "38 districts" in line for line in lines)
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


@contextmanager
def demo_in_its_own_group(
    args: list[str], out: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """The demo as a terminal runs it: the leader of its own process group."""
    with out.open("wb") as sink:
        process = subprocess.Popen(
            DEMO + args, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def centers_received(out: Path) -> dict[str, int]:
    """The last status line's count per center ({} before the first status line)."""
    found: dict[str, int] = {}
    for line in out.read_text(errors="replace").splitlines():
        match = STATUS.search(line)
        if match:
            pairs = (part.rsplit(" ", 1) for part in match.group(1).split(", "))
            found = {name: int(count) for name, count in pairs}
    return found


def stop_when_every_center_received(
    process: subprocess.Popen[bytes], out: Path, signum: int
) -> tuple[dict[str, int], str]:
    """Wait for a status line where every center received readings, send ``signum`` to the
    demo's process group, and return those counts and everything the demo printed."""

    def every_center_received() -> dict[str, int]:
        assert process.poll() is None, out.read_text()
        counts = centers_received(out)
        return counts if len(counts) == 3 and all(counts.values()) else {}

    seen = wait_until(every_center_received, timeout_s=90, interval_s=0.2, message="readings")
    os.killpg(process.pid, signum)
    process.wait(timeout=60)
    return seen, out.read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_demo_s_process_group_stops_it_cleanly_with_a_true_summary(
    tmp_path: Path, signum: int
) -> None:
    work = tmp_path / "work"
    with demo_in_its_own_group(["--workdir", str(work)], tmp_path / "out") as process:
        seen, printed = stop_when_every_center_received(process, tmp_path / "out", signum)
    assert process.returncode == 0, printed
    assert "Traceback" not in printed
    assert f"stopping ({signal.Signals(signum).name})" in printed
    summary = json.loads(printed.strip().splitlines()[-1])
    for name, before in seen.items():
        # Each center's own count, asked before anything stopped: never less than it had.
        assert summary["centers"][name]["received"] >= before, (name, printed)
    assert summary["gateways"]["online"] == 3  # two water-gauge gateways and the flood station
    assert f"logs: {work / 'logs'}/" in printed
    assert (work / "logs" / "controller.log").exists()  # --workdir: kept


def test_the_demo_removes_its_temporary_folder_when_it_stops(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp))
    with demo_in_its_own_group([], tmp_path / "out", env) as process:
        _, printed = stop_when_every_center_received(process, tmp_path / "out", signal.SIGTERM)
    assert process.returncode == 0, printed
    workdir = re.search(r"working directory: (\S+)", printed)
    assert workdir is not None, printed
    assert workdir.group(1).startswith(str(temp)), printed
    assert "the folder is removed on exit, keep it with --workdir DIR" in printed
    assert list(temp.iterdir()) == []


def test_ctrl_c_while_the_demo_starts_stops_every_part_without_a_traceback(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    with demo_in_its_own_group(["--workdir", str(tmp_path / "work")], out) as process:
        wait_until(
            lambda: "center" in out.read_text() or process.poll() is not None,
            timeout_s=60,
            message="the first center started",
        )
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    printed = out.read_text()
    assert process.returncode == 0, printed
    assert "Traceback" not in printed
    assert "stopped (SIGINT) while starting" in printed
