"""The alerts lane of the buffer: edge-evaluated alerts, stored before they are published.

Alerts share the buffer's database file but not its limits: eviction never deletes an
alert to make room for readings. The payload is opaque here (the edge alerting that builds
it owns its schema); the publisher sends it on ``edgewatch/v1/<gw>/alerts`` ahead of any
reading, and an alert leaves the unsent set only on its PUBACK, as a reading does.
"""

from __future__ import annotations

from agent.buffer.store import Buffer


class AlertQueue:
    """Unsent alerts of one buffer, oldest first, with their own in-flight set."""

    def __init__(self, buffer: Buffer) -> None:
        self._buffer = buffer
        self._inflight: set[int] = set()
        # True once a take found no unsent alert at all: the publisher asks on every
        # round, and alerts are rare, so until the next append (or release) it costs no
        # query. Only this object appends, releases and acks alerts in the file.
        self._none_unsent = False

    def append(self, ts_ms: int, payload: bytes) -> int:
        """Store one alert payload; returns its id."""
        with self._buffer.atomic() as conn:
            cursor = conn.execute(
                "INSERT INTO alerts (ts_ms, payload) VALUES (?, ?)", [ts_ms, payload]
            )
            self._none_unsent = False
            return int(cursor.lastrowid or 0)

    def take(self, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` unsent alerts not in flight: (id, payload); now in flight."""
        with self._buffer.lock:
            if self._none_unsent:
                return []
            rows = self._buffer.conn.execute(
                "SELECT id, payload FROM alerts WHERE acked_at IS NULL ORDER BY id LIMIT ?",
                [limit + len(self._inflight)],
            ).fetchall()
            self._none_unsent = not rows
            taken = [(int(i), bytes(p)) for i, p in rows if i not in self._inflight][:limit]
            self._inflight.update(i for i, _ in taken)
            return taken

    def ack(self, alert_id: int, now_ms: int) -> None:
        with self._buffer.atomic() as conn:
            conn.execute("UPDATE alerts SET acked_at = ? WHERE id = ?", [now_ms, alert_id])
            self._inflight.discard(alert_id)

    def release(self, alert_id: int) -> None:
        with self._buffer.lock:
            self._inflight.discard(alert_id)
            self._none_unsent = False

    def release_all(self) -> None:
        with self._buffer.lock:
            self._inflight.clear()
            self._none_unsent = False

    def purge_acked(self, before_ms: int) -> int:
        with self._buffer.atomic() as conn:
            cursor = conn.execute(
                "DELETE FROM alerts WHERE acked_at IS NOT NULL AND acked_at < ?", [before_ms]
            )
            return int(cursor.rowcount)
