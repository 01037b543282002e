"""When the port owners expect to store their next readings: what the live lane asks to
know whether holding a live batch for more readings buys anything.

Each port owner keeps one entry, the monotonic time at which it expects to hand its next
read to the sink: while it reads a device, the start of that read plus how long the
device's last poll took; once that reading is stored, the next device due (or this one
again), from the later of now and its due time, plus that device's last poll time. An
idle owner's entry is therefore its next scheduled read; a closed or stopped port has
none. The estimate is cheap (a few comparisons per poll, no extra thread wake-up) and
may be wrong (a slave that stops answering takes its timeout instead of its usual poll
time): the live lane's own deadline (``[buffer] live_linger_s``) bounds what a wrong
guess costs.

At 9600 baud a two-register Modbus read takes about 29 ms, so during a poll round the next
reading is ~29 ms away and after the round's last read it is the next round's first:
the publisher sends a batch as soon as the next expected reading would miss its deadline
(``agent.uplink.publisher``).
"""

from __future__ import annotations

import math
import threading


class BusOutlook:
    """The next expected store of every port owner; any thread may ask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_store_s: dict[str, float] = {}

    def expect(self, port: str, at_s: float) -> None:
        """``port`` expects to store its next reading at ``at_s`` (monotonic s)."""
        with self._lock:
            self._next_store_s[port] = at_s

    def forget(self, port: str) -> None:
        """``port`` stores nothing until it says otherwise (closed, stopped)."""
        with self._lock:
            self._next_store_s.pop(port, None)

    def next_store_s(self) -> float:
        """The earliest expected store over every port; infinity when none expects one."""
        with self._lock:
            return min(self._next_store_s.values(), default=math.inf)
