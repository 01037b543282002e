"""Keeping the buffer within its limits: ``[buffer] max_bytes`` and ``max_age_s``.

Eviction order (documented in docs/store-and-forward.md, tested in tests/agent):

1. unsent readings older than ``max_age_s`` (by source timestamp): reason ``max_age``;
2. while the data exceeds ``max_bytes``: acked readings kept only for replays, oldest
   first (no data lost: the controller has them; counted as ``acked_evicted``, not a drop);
3. then unsent readings, oldest first (the oldest backlog goes first, live readings last):
   reason ``buffer_full``.

Alerts are never evicted to make room for readings; rows in flight (handed to the MQTT
session, PUBACK pending) are never evicted, so a drop is never also a delivery. Every
dropped reading is counted by reason in the buffer's persisted counters, which the
heartbeat reports as ``dropped``; each count is exactly a set of seqs the controller will
never receive.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from agent.buffer.store import Buffer, chunks

log = logging.getLogger(__name__)

MAX_AGE = "max_age"
BUFFER_FULL = "buffer_full"
ACKED_EVICTED = "acked_evicted"
TARGET_FRACTION = 0.9  # evict down to 90% of max_bytes, so eviction does not run per append
MAX_ROUNDS = 20


@dataclass
class EvictionReport:
    counts: Counter[str] = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return bool(self.counts)


def enforce_limits(
    buffer: Buffer, *, max_bytes: int, max_age_s: float, now_ms: int
) -> EvictionReport:
    """Evict what breaks the limits (0 means no limit); returns the counts by reason."""
    report = EvictionReport()
    if max_age_s > 0:
        cutoff_ms = now_ms - int(max_age_s * 1000)
        while True:
            seqs = _oldest_unsent(buffer, 5000, older_than_ms=cutoff_ms)
            if not seqs:
                break
            report.counts[MAX_AGE] += _delete_unsent(buffer, seqs, MAX_AGE)
    if max_bytes > 0 and buffer.used_bytes() > max_bytes:
        target = int(max_bytes * TARGET_FRACTION)
        for _ in range(MAX_ROUNDS):
            used = buffer.used_bytes()
            if used <= target:
                break
            share = (used - target) / used
            if not _evict_acked(buffer, share, report):
                rows = _unsent_count(buffer)
                seqs = _oldest_unsent(buffer, max(100, int(rows * share) + 1))
                if not seqs:
                    break
                report.counts[BUFFER_FULL] += _delete_unsent(buffer, seqs, BUFFER_FULL)
    for reason, count in report.counts.items():
        if reason != ACKED_EVICTED:
            log.warning("buffer limit: evicted %d unsent readings (%s)", count, reason)
    return report


def _oldest_unsent(buffer: Buffer, limit: int, *, older_than_ms: int | None = None) -> list[int]:
    with buffer.lock:
        rows = buffer.conn.execute(
            "SELECT seq, ts_ms FROM readings WHERE acked_at IS NULL ORDER BY seq LIMIT ?",
            [limit + len(buffer.inflight)],
        ).fetchall()
        picked = [s for s, ts in rows if s not in buffer.inflight]
        if older_than_ms is not None:
            picked = [s for s, ts in rows if ts < older_than_ms and s not in buffer.inflight]
        return picked[:limit]


def _unsent_count(buffer: Buffer) -> int:
    with buffer.lock:
        row = buffer.conn.execute("SELECT count(*) FROM readings WHERE acked_at IS NULL")
        return int(row.fetchone()[0])


def _delete_unsent(buffer: Buffer, seqs: list[int], reason: str) -> int:
    deleted = 0
    with buffer.atomic() as conn:
        for chunk in chunks(seqs):
            marks = ",".join("?" * len(chunk))
            deleted += conn.execute(
                f"DELETE FROM readings WHERE seq IN ({marks}) AND acked_at IS NULL",  # noqa: S608
                list(chunk),
            ).rowcount
        buffer.count_dropped(reason, deleted)
    return deleted


def _evict_acked(buffer: Buffer, share: float, report: EvictionReport) -> bool:
    """Delete the oldest acked rows (about ``share`` of all rows); False if there were none."""
    with buffer.atomic() as conn:
        (acked,) = conn.execute(
            "SELECT count(*) FROM readings WHERE acked_at IS NOT NULL"
        ).fetchone()
        if not acked:
            return False
        (total,) = conn.execute("SELECT count(*) FROM readings").fetchone()
        limit = min(acked, max(100, int(total * share) + 1))
        deleted = conn.execute(
            "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings"
            " WHERE acked_at IS NOT NULL ORDER BY acked_at, seq LIMIT ?)",
            [limit],
        ).rowcount
        buffer.count_dropped(ACKED_EVICTED, deleted)
    report.counts[ACKED_EVICTED] += deleted
    return True
