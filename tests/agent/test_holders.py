"""Who has a file open: the serial port in use, the agent holding its buffer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent.ops.holders import holders_of


def test_a_real_process_holding_the_file_is_found(tmp_path: Path) -> None:
    held = tmp_path / "buffer.db"
    held.write_bytes(b"")
    code = f"import sys; f = open({str(held)!r}); print('open', flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "open\n"
        found = holders_of(held).found
        assert child.stdin is not None
        child.stdin.close()
    assert [h.pid for h in found] == [child.pid]
    assert holders_of(held).found == []  # and gone with it


def test_a_descriptor_closed_while_looking_does_not_hide_the_process(tmp_path: Path) -> None:
    """The agent opens and closes sockets and journal files all the time: one of its
    descriptors vanishing between listing and reading must not make it look stopped."""
    held = tmp_path / "buffer.db"
    held.write_bytes(b"")
    proc = tmp_path / "proc"
    fd_dir = proc / "4242" / "fd"
    fd_dir.mkdir(parents=True)
    (fd_dir / "3").write_text("")  # not a link: readlink fails as for a closed descriptor
    os.symlink(held, fd_dir / "4")
    (proc / "4242" / "comm").write_text("python3\n")
    (proc / "4242" / "cmdline").write_bytes(b"python3\0-m\0agent.cli\0run\0")

    found = holders_of(held, proc=proc).found

    assert [h.pid for h in found] == [4242]
    assert found[0].is_edgewatch_agent
