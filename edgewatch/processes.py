"""Child processes of the demo (and of end-to-end tests): started with logs, stopped for sure.

Each child runs ``python -m edgewatch.cli ...`` with its output in ``<workdir>/<name>.log``.
``ProcessGroup`` is a context manager: leaving it sends SIGTERM to every child still alive,
then SIGKILL to whatever has not exited after a grace period.

Each child runs in a process group of its own, so a terminal's Ctrl-C (SIGINT to the
foreground process group) or ``timeout``'s SIGTERM (to its process group) reaches only the
parent: the demo can then take its summary while every part still answers, and stop them
in order. So that a parent killed outright (SIGKILL) leaves no children behind, each child
asks the kernel for SIGTERM when its parent dies (``die_with_parent``, Linux).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

# Set in a child's environment: the pid of the parent it should not outlive.
PARENT_PID_ENV = "EDGEWATCH_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child started by ``ProcessGroup``: SIGTERM (a graceful stop) when the parent dies.

    Called first thing by ``edgewatch.cli``. Only on Linux (prctl); elsewhere, and outside a
    ProcessGroup, it does nothing. If the parent died before the request took effect, the
    child stops at once. (The kernel's "parent" is the thread that started the child: a
    ProcessGroup is used from the main thread.)
    """
    parent = os.environ.pop(PARENT_PID_ENV, None)  # not for this child's own children
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if str(os.getppid()) != parent:
        os.kill(os.getpid(), signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive:
            self.process.send_signal(signum)

    def stop(self, grace_s: float = 5.0) -> int:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL; return the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class ProcessGroup:
    workdir: Path
    children: list[Child] = field(default_factory=list)

    def start_cli(self, name: str, *args: str) -> Child:
        """Start ``edgewatch <args>`` as a child named ``name``."""
        return self.start(name, [sys.executable, "-m", "edgewatch.cli", *args])

    def start(self, name: str, argv: list[str]) -> Child:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / f"{name}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{PARENT_PID_ENV: str(os.getpid())})
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                process_group=0,  # terminal signals reach the parent only (module docstring)
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def stop_all(self, grace_s: float = 5.0) -> None:
        # Signal everyone first so they stop in parallel, then collect.
        for child in reversed(self.children):
            child.signal(signal.SIGTERM)
        for child in reversed(self.children):
            child.stop(grace_s)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
