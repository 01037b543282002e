"""The buffer's bookkeeping in its ``meta`` table: session and seq numbering, drop counters.

What must survive even a power cut is that a ``seq`` or ``session`` is never reused:

- ``session`` bumps are committed with ``synchronous=FULL`` (they are rare);
- seqs are handed out from a reserved block whose upper end is committed with
  ``synchronous=FULL`` before any seq of it is used. After an unclean stop numbering
  resumes exactly where it was if the machine did not reboot (same kernel boot id: the OS
  still had every committed page), and after the reserved block if it did (a power cut),
  leaving a gap the controller sees rather than reusing a published seq.

Drop counters (evictions by reason) are persisted beside them, so a heartbeat after a
restart still tells. Every function here runs under the buffer's lock.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SEQ_BLOCK = 1000  # seqs reserved per durable write
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_DROPPED = "dropped."


def current_boot_id() -> int:
    """The kernel's boot id as an int (0 where there is none): it changes on every boot."""
    try:
        digits = _BOOT_ID_PATH.read_text().strip().replace("-", "")
        if len(digits) != 32:
            return 0
        # The UUID as an int (without importing uuid: RAM is tight), cut to SQLite's int64.
        return int(digits, 16) >> 65
    except (OSError, ValueError):
        return 0


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed on success, rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite rolls back by itself on e.g. SQLITE_FULL
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def set_meta(conn: sqlite3.Connection, values: dict[str, int]) -> None:
    """Upsert meta values (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


def write_meta(conn: sqlite3.Connection, values: dict[str, int], *, durable: bool) -> None:
    """Commit meta values in a transaction of their own; ``durable``: fsynced (FULL)."""
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    try:
        with transaction(conn):
            set_meta(conn, values)
    finally:
        conn.execute("PRAGMA synchronous=NORMAL")


class Numbering:
    """Session and seq numbers (never reused) and the persisted drop counters."""

    def __init__(self, boot_id: int) -> None:
        self.boot_id = boot_id
        self.session = 0
        self.next_seq = 1
        self.reserved_until = 0
        self.dropped: Counter[str] = Counter()

    def load(self, conn: sqlite3.Connection) -> None:
        """Resume from the file (see the module docstring) and mark it open (unclean)."""
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self.session = int(meta.get("session", 0))
        self.reserved_until = int(meta.get("seq_reserved_until", 0))
        stored_next = int(meta.get("next_seq", 1))
        clean = bool(meta.get("clean_close", 1 if not meta else 0))
        same_boot = self.boot_id != 0 and meta.get("boot_id") == self.boot_id
        if clean or same_boot:
            self.next_seq = stored_next
        else:
            self.next_seq = max(stored_next, self.reserved_until + 1)
        self.dropped = Counter(
            {k.removeprefix(_DROPPED): int(v) for k, v in meta.items() if k.startswith(_DROPPED)}
        )
        write_meta(
            conn,
            {"clean_close": 0, "next_seq": self.next_seq, "boot_id": self.boot_id},
            durable=True,
        )

    def save_clean_close(self, conn: sqlite3.Connection) -> None:
        write_meta(conn, {"clean_close": 1, "next_seq": self.next_seq}, durable=True)

    def bump_session(self, conn: sqlite3.Connection) -> int:
        write_meta(conn, {"session": self.session + 1}, durable=True)
        self.session += 1
        return self.session

    def reserve_through(self, conn: sqlite3.Connection, last_seq: int) -> None:
        """Make sure ``last_seq`` lies in a durably reserved block (before it is used)."""
        if last_seq > self.reserved_until:
            write_meta(conn, {"seq_reserved_until": last_seq + SEQ_BLOCK}, durable=True)
            self.reserved_until = last_seq + SEQ_BLOCK

    def count_dropped(self, conn: sqlite3.Connection, reason: str, count: int) -> None:
        """Add to the drop counter ``reason`` (inside the caller's transaction)."""
        if count:
            self.dropped[reason] += count
            set_meta(conn, {_DROPPED + reason: self.dropped[reason]})
