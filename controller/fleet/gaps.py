"""Gap detection: per gateway, the seqs that never arrived, replays asked for, and gaps that
could not be filled.

Every reading carries a per-gateway ``seq`` that is never reused, so a seq above the highest
one seen opens a gap below it. A gap is *ripe* for a replay once it has waited
``[gaps] reorder_wait_s`` (batches on the live and backlog lanes arrive out of order) and,
when the gateway's heartbeat says where its unsent rows start (``first_unsent_seq``: every
seq below is acked by the broker or evicted), only the part below that seq is asked for:
rows above are still on their way. The ask is a ``replay`` CommandRequest on
``edgewatch/v1/<gw>/cmd/<id>`` with ``{"from_seq", "to_seq"}``; the agent re-publishes what
it still holds on the backlog lane. A gap still open ``replay_timeout_s`` after an ask is
asked again, up to ``max_attempts``; then it is recorded ``unfillable`` (the agent evicted
or purged those rows) and no longer tracked.

Gaps are recorded in the ``gaps`` table (one row per detected gap, its remaining ranges,
state ``open`` -> ``requested`` -> ``filled`` | ``unfillable``) and served per gateway at
``GET /api/v1/gateways/{id}/gaps``. The first seq ever seen from a gateway opens no gap
(a new controller does not ask for a gateway's whole history).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

import wire
from controller.config import GapsConfig
from controller.store.sqlite import Store
from wire.clock import Clock
from wire.supervision import FailureLog, run_every

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.25
COMMAND_DEADLINE_S = 60.0
Publish = Callable[[str, bytes], bool]


@dataclass
class _Gap:
    """One detected gap; ``ranges`` is what is still missing of it."""

    record_id: int
    ranges: list[list[int]]
    detected_s: float
    attempts: int = 0
    asked_s: float | None = None

    @property
    def missing(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)


@dataclass
class _Gateway:
    high_water: int
    gaps: list[_Gap] = field(default_factory=list)
    first_unsent_seq: int | None = None
    health_s: float = 0.0


def seq_runs(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted runs of consecutive seqs: [1, 2, 3, 7, 8] -> [(1, 3), (7, 8)]."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _subtract(ranges: list[list[int]], lo: int, hi: int) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in ranges:
        if b < lo or a > hi:
            out.append([a, b])
            continue
        if a < lo:
            out.append([a, lo - 1])
        if b > hi:
            out.append([hi + 1, b])
    return out


class GapDetector:
    def __init__(self, store: Store, publish: Publish, clock: Clock, config: GapsConfig) -> None:
        self._store = store
        self._publish = publish
        self._clock = clock
        self._config = config
        self._lock = threading.Lock()
        self._gateways: dict[str, _Gateway] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gap-detector")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        run_every(CHECK_EVERY_S, self.check, failures=FailureLog(log, "gap check"), stop=self._stop)

    # -- what ingest tells --------------------------------------------------------------

    def observe(self, gateway: str, seqs: Sequence[int]) -> None:
        """Seqs of one readings batch of ``gateway`` (either lane, duplicates welcome)."""
        runs = seq_runs(seqs)
        if not runs:
            return
        now_s = self._clock.monotonic_s()
        with self._lock:
            state = self._gateways.get(gateway)
            if state is None:
                state = self._load(gateway, default_high_water=runs[0][0] - 1)
            for lo, hi in runs:
                if lo > state.high_water + 1:
                    self._open(gateway, state, state.high_water + 1, lo - 1, now_s)
                for gap in [
                    g for g in state.gaps if lo <= g.ranges[-1][1] and hi >= g.ranges[0][0]
                ]:
                    self._fill(gateway, state, gap, lo, hi)
                state.high_water = max(state.high_water, hi)

    def on_health(self, gateway: str, health: wire.Health) -> None:
        extra = health.model_extra or {}
        first_unsent = extra.get("first_unsent_seq")
        if not isinstance(first_unsent, int):
            return
        with self._lock:
            state = self._gateways.get(gateway)
            if state is not None:
                state.first_unsent_seq = first_unsent
                state.health_s = self._clock.monotonic_s()

    # -- asking for replays ---------------------------------------------------------------

    def check(self) -> None:
        now_s = self._clock.monotonic_s()
        asks: list[tuple[str, int, int]] = []
        with self._lock:
            for gateway, state in self._gateways.items():
                for gap in list(state.gaps):
                    ask = self._due(gateway, state, gap, now_s)
                    if ask is not None:
                        asks.append((gateway, *ask))
        for gateway, from_seq, to_seq in asks:
            self._ask(gateway, from_seq, to_seq)

    def _due(
        self, gateway: str, state: _Gateway, gap: _Gap, now_s: float
    ) -> tuple[int, int] | None:
        config = self._config
        if gap.asked_s is not None and now_s - gap.asked_s < config.replay_timeout_s:
            return None
        if gap.asked_s is None and now_s - gap.detected_s < config.reorder_wait_s:
            return None
        if gap.attempts >= config.max_attempts:
            self._give_up(gateway, state, gap)
            return None
        lo, hi = gap.ranges[0][0], gap.ranges[-1][1]
        if state.first_unsent_seq is not None and state.health_s >= gap.detected_s:
            hi = min(hi, state.first_unsent_seq - 1)  # above: still unsent at the agent
            if hi < lo:
                return None
        gap.attempts += 1
        gap.asked_s = now_s
        self._record(gateway, gap, "requested")
        return lo, hi

    def _ask(self, gateway: str, from_seq: int, to_seq: int) -> None:
        request = wire.CommandRequest(
            id=f"replay-{uuid.uuid4().hex[:16]}",
            type=wire.CommandType.REPLAY,
            args={"from_seq": from_seq, "to_seq": to_seq},
            deadline_ms=self._clock.wall_ms() + int(COMMAND_DEADLINE_S * 1000),
        )
        topic = wire.topic_for(gateway, wire.TopicKind.CMD, request.id)
        sent = self._publish(topic, wire.encode(request))
        log.info(
            "gateway %s: seqs %d..%d missing; replay %s%s",
            gateway,
            from_seq,
            to_seq,
            "asked" if sent else "not sent (not connected)",
            f" ({request.id})" if sent else "",
        )

    # -- bookkeeping (under the lock) -----------------------------------------------------

    def _load(self, gateway: str, *, default_high_water: int) -> _Gateway:
        def load(conn: Any) -> tuple[int | None, list[Any]]:
            top = conn.execute("SELECT max(seq) FROM readings WHERE gateway = ?", (gateway,))
            rows = conn.execute(
                "SELECT id, ranges, attempts FROM gaps WHERE gateway = ?"
                " AND state IN ('open', 'requested') ORDER BY id",
                (gateway,),
            ).fetchall()
            return top.fetchone()[0], rows

        high_water, rows = self._store.read(load)
        now_s = self._clock.monotonic_s()
        state = _Gateway(high_water=default_high_water if high_water is None else high_water)
        for row in rows:
            ranges = json.loads(row["ranges"])
            if ranges:
                state.gaps.append(_Gap(row["id"], ranges, now_s, attempts=row["attempts"]))
        self._gateways[gateway] = state
        return state

    def _open(self, gateway: str, state: _Gateway, lo: int, hi: int, now_s: float) -> None:
        now_ms = self._clock.wall_ms()

        def insert(db: Database) -> int:
            cursor = db.conn.execute(
                "INSERT INTO gaps (gateway, from_seq, to_seq, missing, ranges, state,"
                " detected_ms, updated_ms) VALUES (?, ?, ?, ?, ?, 'open', ?, ?)",
                (gateway, lo, hi, hi - lo + 1, json.dumps([[lo, hi]]), now_ms, now_ms),
            )
            return int(cursor.lastrowid or 0)

        record_id = self._store.call(insert)
        state.gaps.append(_Gap(record_id, [[lo, hi]], now_s))

    def _fill(self, gateway: str, state: _Gateway, gap: _Gap, lo: int, hi: int) -> None:
        before = gap.missing
        gap.ranges = _subtract(gap.ranges, lo, hi)
        if gap.missing == before:
            return
        if not gap.ranges:
            state.gaps.remove(gap)
            self._record(gateway, gap, "filled")
        else:
            self._record(gateway, gap, "requested" if gap.attempts else "open")

    def _give_up(self, gateway: str, state: _Gateway, gap: _Gap) -> None:
        state.gaps.remove(gap)
        detail = f"{gap.missing} seqs not replayed after {gap.attempts} asks"
        log.warning("gateway %s: gap recorded as unfillable: %s %s", gateway, detail, gap.ranges)
        self._record(gateway, gap, "unfillable", detail)

    def _record(self, gateway: str, gap: _Gap, status: str, detail: str | None = None) -> None:
        values = (
            gap.missing,
            json.dumps(gap.ranges),
            status,
            gap.attempts,
            self._clock.wall_ms(),
            detail,
            gap.record_id,
        )
        self._store.submit(
            lambda db: db.conn.execute(
                "UPDATE gaps SET missing = ?, ranges = ?, state = ?, attempts = ?,"
                " updated_ms = ?, detail = coalesce(?, detail) WHERE id = ?",
                values,
            )
        )
