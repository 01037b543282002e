"""What the heartbeat reports about the gateway itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent import system_info


def test_the_clock_check_asks_the_kernel_without_starting_a_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It runs on every heartbeat: looking libc up with ``ldconfig -p`` each time cost the
    agent more CPU than polling ten devices."""
    system_info._adjtimex.cache_clear()

    def no_processes(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"started a process: {args}")

    monkeypatch.setattr(subprocess.Popen, "__init__", no_processes)
    first = system_info.clock_synchronized()
    second = system_info.clock_synchronized()

    assert isinstance(first, bool)  # Linux: the kernel knows, yes or no
    assert second == first


def test_disk_free_is_what_the_file_system_says(tmp_path: Path) -> None:
    free = system_info.disk_free_bytes(tmp_path)
    assert free is not None
    assert free > 0
    assert system_info.disk_free_bytes(tmp_path / "no" / "such" / "dir") is None
