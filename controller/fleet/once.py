"""What was logged once, remembered in bounded memory.

"Logged once per (gateway, reason)" needs a memory of what was logged, and the keys come
from senders: a gateway level of a topic, a command id. A plain set grows with every new key
a sender makes up; ``LoggedOnce`` keeps the most recently seen ``capacity`` keys (an LRU), so
a key seen again while remembered is not logged again, and a flood of new keys costs at most
``capacity`` entries (a forgotten key may be logged once more, which is the right trade).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

DEFAULT_CAPACITY = 4096
# A sender's text quoted in a log line: at most this many characters of it.
MAX_QUOTED_CHARS = 64


class LoggedOnce:
    """``first(key)`` is True the first time ``key`` is seen while it is remembered."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


def quoted(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters (marked with ...), for a log line."""
    return text if len(text) <= limit else text[:limit] + "..."
