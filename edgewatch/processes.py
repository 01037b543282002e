"""Child processes of the demo (and of end-to-end tests): started with logs, stopped for sure.

Each child runs ``python -m edgewatch.cli ...`` with its output in ``<workdir>/<name>.log``.
``ProcessGroup`` is a context manager: leaving it sends SIGTERM to every child still alive,
then SIGKILL to whatever has not exited after a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


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
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
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
