"""Taking every frame (and every problem) out of a stream with a station codec's decode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drivers.stations import ProblemKind


def take_all(
    decode: Callable[[bytes], Any], stream: bytes, item: str
) -> tuple[list[Any], list[ProblemKind]]:
    """Decode ``stream`` to its end: the items (the attribute ``item`` of each decoded
    result that has one) and the problems' kinds, in order."""
    items: list[Any] = []
    problems: list[ProblemKind] = []
    while stream:
        decoded = decode(stream)
        if decoded.used == 0:
            break
        stream = stream[decoded.used :]
        if getattr(decoded, item) is not None:
            items.append(getattr(decoded, item))
        if decoded.problem is not None:
            problems.append(decoded.problem.kind)
    return items, problems
