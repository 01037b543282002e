"""``/metrics`` in the Prometheus text format (0.0.4), written by hand: a few families only.

Counters live in memory (``Metrics``) or come from the store at scrape time (gateway and
device states, command outcomes, open alerts, each center's lanes).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping

RATE_WINDOW_S = 10.0


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


class Family:
    """One metric family: HELP, TYPE and its samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help_text = help_text
        self.samples: list[tuple[dict[str, str], float]] = []

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((labels, value))
        return self

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} {self.kind}"]
        lines += [f"{self.name}{_labels(labels)} {value:g}" for labels, value in self.samples]
        return "\n".join(lines)


def render(families: Iterable[Family]) -> str:
    return "\n".join(f.render() for f in families) + "\n"


class Metrics:
    """In-memory counters the ingest path bumps, and the readings rate over a short window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: Counter[str] = Counter()  # by topic kind
        self.readings_received = 0
        self._samples: deque[tuple[float, int]] = deque()

    def message(self, kind: str, readings: int = 0) -> None:
        with self._lock:
            self.messages[kind] += 1
            self.readings_received += readings

    def readings_rate_per_s(self, stored_total: int, now_s: float | None = None) -> float:
        """Readings stored per second over the last ~10 s (sampled at each call)."""
        now = time.monotonic() if now_s is None else now_s
        with self._lock:
            self._samples.append((now, stored_total))
            while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
                self._samples.popleft()
            first_s, first_total = self._samples[0]
        span_s = now - first_s
        return (stored_total - first_total) / span_s if span_s > 0 else 0.0

    def snapshot(self) -> tuple[dict[str, int], int]:
        with self._lock:
            return dict(self.messages), self.readings_received
