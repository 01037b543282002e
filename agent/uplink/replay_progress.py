"""How far a ``replay`` command has got: seqs done of the range, rows replayed.

The publisher keeps the replay in progress (or the last one finished) as a
``ReplayProgress``; the heartbeat writes it into ``status.json`` (so ``edgewatch agent
status`` shows it), and ``await_replay`` logs it every ``LOG_EVERY_S`` while the command
waits for the publisher to finish the range.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

LOG_EVERY_S = 5.0


class ReplayProgress(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    from_seq: int
    to_seq: int
    seqs_done: int  # replayed, or found unavailable (purged, evicted, never used)
    replayed: int
    started_ms: int
    finished_ms: int | None = None

    @property
    def seqs_total(self) -> int:
        return self.to_seq - self.from_seq + 1

    def describe(self) -> str:
        """``seqs 120..480: 200 of 361 done (55%), 180 replayed``."""
        percent = 100 * self.seqs_done // self.seqs_total
        text = (
            f"seqs {self.from_seq}..{self.to_seq}: {self.seqs_done} of {self.seqs_total}"
            f" done ({percent}%), {self.replayed} replayed"
        )
        if self.finished_ms is not None:
            text += f", {self.seqs_total - self.replayed} unavailable (finished)"
        return text


def await_replay(
    future: Future[str],
    progress: Callable[[], ReplayProgress | None],
    *,
    timeout_s: float,
) -> str:
    """The replay's result; a log line with its progress every ``LOG_EVERY_S`` until then.
    Raises TimeoutError after ``timeout_s``."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        left_s = deadline_s - time.monotonic()
        try:
            result = future.result(timeout=max(0.0, min(LOG_EVERY_S, left_s)))
        except TimeoutError:
            if left_s <= LOG_EVERY_S:
                raise
            if (now := progress()) is not None:
                log.info("replay %s", now.describe())
            continue
        if (done := progress()) is not None:
            log.info("replay %s", done.describe())
        return result
