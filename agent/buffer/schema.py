"""The buffer file's schema (``buffer.db``), as numbered migrations (``agent.sqlite_schema``).

Version 1 is the schema edgewatch 0.1.0 created without a version (``CREATE TABLE IF NOT
EXISTS``): on a 0.1.0 buffer, full of unsent readings, it changes no table and only stamps
the version; on a new file it creates the tables. Add a migration at the end for every
change; never edit one that has shipped (tests/agent/test_buffer_schema.py opens a 0.1.0
buffer and drains it).
"""

from __future__ import annotations

from agent.sqlite_schema import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "readings, meta and alerts (the schema of 0.1.0)",
        (
            """CREATE TABLE IF NOT EXISTS readings (
                seq INTEGER PRIMARY KEY,
                ts_ms INTEGER NOT NULL,
                device TEXT NOT NULL,
                metric TEXT NOT NULL,
                value REAL,
                unit TEXT NOT NULL,
                quality TEXT NOT NULL,
                acked_at INTEGER
            )""",
            # Partial index: the unsent rows in seq order, whatever the backlog size.
            "CREATE INDEX IF NOT EXISTS readings_unsent ON readings(seq) WHERE acked_at IS NULL",
            "CREATE INDEX IF NOT EXISTS readings_acked_at ON readings(acked_at)",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)",
            """CREATE TABLE IF NOT EXISTS alerts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts_ms INTEGER NOT NULL,
                payload BLOB NOT NULL,
                acked_at INTEGER
            )""",
        ),
    ),
)
