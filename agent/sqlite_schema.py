"""Versioned schemas for the agent's own SQLite files (``buffer.db``, ``counters.db``).

A gateway's files outlive its software: the first schema change in the field meets buffers
full of unsent readings. So every file's schema has a version, SQLite's ``PRAGMA
user_version`` (0 in a file made before versions existed), and numbered migrations that
take a file from one version to the next, each in one transaction with the new version
number. A file of a newer version than this agent knows is refused, never guessed at.

sqlite-utils' migrations would do the same, but importing it costs the agent ~17 MB of RSS
(measured), and the gateway's budget is 40 MB; ``user_version`` is SQLite's own mechanism.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class SchemaTooNewError(sqlite3.DatabaseError):
    """The file was written by a newer edgewatch: its schema version is beyond ours."""


@dataclass(frozen=True)
class Migration:
    """Takes a file from ``version - 1`` to ``version``: ``statements`` in one transaction."""

    version: int
    name: str
    statements: tuple[str, ...]


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_version(path: Path, found: int, migrations: Sequence[Migration]) -> None:
    """Refuse (one line) a file whose schema is newer than the newest migration known."""
    newest = migrations[-1].version
    if found > newest:
        raise SchemaTooNewError(
            f"{path.name} has schema version {found}, newer than this agent's {newest}:"
            " it was written by a newer edgewatch; upgrade the agent (or move the file away"
            " to start an empty one)"
        )


def migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration]) -> int:
    """Apply the migrations ``conn``'s file has not had yet; returns the version now.

    ``conn`` must be in autocommit mode (``isolation_level=None``): each migration is its own
    ``BEGIN IMMEDIATE`` ... ``COMMIT``, so a power cut leaves the file at one version or the
    next, never between.
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(migrations) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3...: got {versions}")
    found = schema_version(conn)
    check_version(path, found, migrations)
    for migration in migrations[found:]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) >= migration.version:  # another process got here first
                conn.execute("ROLLBACK")
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)
