"""A pre-filled agent buffer for benchmarks: N unsent readings, as the agent writes them."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agent.buffer.store import Buffer


def fill_buffer(path: Path, readings: int) -> None:
    """N unsent readings, as the agent would have written them (10 devices, 3 metrics)."""
    with Buffer(path) as buffer:
        buffer.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    base_ms = time.time_ns() // 1_000_000 - readings  # recent: within [buffer] max_age_s
    chunk = 100_000
    for start in range(1, readings + 1, chunk):
        rows = [
            (
                seq,
                base_ms + seq,
                f"gauge-{seq % 10}",
                "level_cm",
                250.0 + (seq % 97) / 10,
                "cm",
                "good",
            )
            for seq in range(start, min(start + chunk, readings + 1))
        ]
        conn.executemany(
            "INSERT INTO readings (seq, ts_ms, device, metric, value, unit, quality)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.commit()
    conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [("next_seq", readings + 1), ("seq_reserved_until", readings + 1000), ("clean_close", 1)],
    )
    conn.commit()
    conn.close()
