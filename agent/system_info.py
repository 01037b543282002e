"""Facts about the gateway the heartbeat reports: free disk, whether the clock is synchronised."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import shutil
from collections.abc import Callable
from pathlib import Path

_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised (STA_UNSYNC)
_TIMEX_BUFFER_BYTES = 512  # larger than struct timex on every Linux ABI (208 on 64-bit)


def disk_free_bytes(path: Path) -> int | None:
    """Bytes free for an unprivileged writer on the file system holding ``path``."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def clock_synchronized() -> bool | None:
    """Whether the kernel says the system clock is synchronised (NTP, chrony,
    systemd-timesyncd all set it): adjtimex(2) in read-only mode, one cheap system call.
    None where it cannot be known (not Linux)."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    timex = ctypes.create_string_buffer(_TIMEX_BUFFER_BYTES)  # modes = 0: read only
    state = int(adjtimex(timex))
    if state < 0:
        return None
    return state != _TIME_ERROR


@functools.cache
def _adjtimex() -> Callable[[ctypes.Array[ctypes.c_char]], int] | None:
    """libc's adjtimex, looked up once: the process's own symbols hold libc on Linux, and
    ``ctypes.util.find_library`` (the fallback) runs ``ldconfig -p`` in a subprocess, which
    on every heartbeat cost the agent more CPU than polling ten devices."""
    finders: tuple[Callable[[], str | None], ...] = (
        lambda: None,
        lambda: ctypes.util.find_library("c"),
    )
    for find in finders:
        try:
            function: Callable[[ctypes.Array[ctypes.c_char]], int] = ctypes.CDLL(
                find(), use_errno=True
            ).adjtimex
        except (OSError, AttributeError):
            continue
        return function
    return None
