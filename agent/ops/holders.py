"""Which processes have a file open: a serial port in use, or the agent holding its buffer.

Linux only: each ``/proc/<pid>/fd/<n>`` is a symlink to what the descriptor has open. An
unprivileged user sees only their own processes' descriptors; ``unseen`` counts the others
(run as root to see them all). The calling process is left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    command: str  # the process's name (comm), e.g. "minicom" or "python3"
    cmdline: str
    # It holds the master side of this pseudo-terminal: it is the far end of the line (a
    # device simulator, socat), not a second program talking on it.
    is_pty_master: bool = False

    @property
    def is_edgewatch_agent(self) -> bool:
        return "agent" in self.cmdline and (
            "edgewatch" in self.cmdline or "agent.cli" in self.cmdline
        )

    def describe(self) -> str:
        return f"{self.command} (pid {self.pid}: {self.cmdline[:80]})"


@dataclass
class Holders:
    found: list[Holder] = field(default_factory=list)
    unseen: int = 0  # processes whose descriptors we may not read


def holders_of(path: Path | str, *, proc: Path = PROC) -> Holders:
    """The processes (other than this one) with ``path`` open."""
    target = os.path.realpath(path)
    result = Holders()
    own_pid = os.getpid()
    try:
        pids = [int(p.name) for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return result
    for pid in pids:
        if pid == own_pid:
            continue
        fd_dir = proc / str(pid) / "fd"
        try:
            fds = list(fd_dir.iterdir())
        except PermissionError:
            result.unseen += 1
            continue
        except OSError:
            continue  # the process ended meanwhile
        links = dict(_links(fds))
        if target in links.values():
            master = _pty_index(target) in _master_indexes(proc, pid, links)
            result.found.append(_holder(proc, pid, is_pty_master=master))
    return result


def _pty_index(path: str) -> int | None:
    """``/dev/pts/7`` -> 7; None for anything that is not a pseudo-terminal's slave."""
    folder, _, name = path.rpartition("/")
    return int(name) if folder == "/dev/pts" and name.isdigit() else None


def _master_indexes(proc: Path, pid: int, links: dict[str, str]) -> set[int]:
    """The pseudo-terminals whose master side (``/dev/ptmx``) the process holds: Linux
    names the pty of each in the descriptor's fdinfo (``tty-index``)."""
    found: set[int] = set()
    for fd, link in links.items():
        if link not in ("/dev/ptmx", "/dev/pts/ptmx"):
            continue
        try:
            info = (proc / str(pid) / "fdinfo" / fd).read_text()
        except OSError:
            continue
        for line in info.splitlines():
            key, _, value = line.partition(":")
            if key == "tty-index" and value.strip().isdigit():
                found.add(int(value))
    return found


def _links(fds: list[Path]) -> Iterator[tuple[str, str]]:
    """(descriptor, where it points); one closed while we look (a socket, a journal file)
    is skipped, not taken for the whole process being gone."""
    for fd in fds:
        try:
            yield fd.name, os.readlink(fd)
        except OSError:
            continue


def _holder(proc: Path, pid: int, *, is_pty_master: bool = False) -> Holder:
    try:
        command = (proc / str(pid) / "comm").read_text().strip()
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return Holder(pid, "?", "", is_pty_master)
    cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return Holder(pid, command, cmdline, is_pty_master)
