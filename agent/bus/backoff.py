"""Bounded backoff: how long to wait before trying a failing thing again.

One rule for devices and for the poll loop: the wait doubles with each consecutive failure,
from ``base_s`` up to ``max_s`` and never beyond, so a device that died comes back to its
schedule within ``max_s`` of answering again, never after minutes of blackout.
"""

from __future__ import annotations

# The longest a failing device waits between tries (issue 3: at most 30 s).
DEVICE_BACKOFF_MAX_S = 30.0
# The first backed-off wait (or the interval, if longer). Doubling from a 10 ms interval
# would cost a dead slave's timeout a dozen times before the wait grew to anything; from
# 0.5 s it is 0.5, 1, 2, 4, 8, 16, 30 s.
DEVICE_BACKOFF_BASE_S = 0.5
# Tries at the normal interval before backing off: one lost answer is line noise, not a
# dead device.
DEVICE_RETRIES_BEFORE_BACKOFF = 1


def backoff_s(failures: int, *, base_s: float, max_s: float) -> float:
    """The wait after ``failures`` consecutive failures: ``base_s * 2**(failures - 1)``,
    capped at ``max_s`` (0 failures: ``base_s``)."""
    if base_s <= 0 or max_s <= 0:
        raise ValueError(f"backoff needs positive base and max, got {base_s}, {max_s}")
    exponent = max(0, failures - 1)
    if exponent >= 64:  # 2**64 * base is beyond any cap; avoid huge floats
        return max_s
    return min(max_s, base_s * 2.0**exponent)


def device_retry_s(
    consecutive_failures: int,
    *,
    interval_s: float,
    max_s: float = DEVICE_BACKOFF_MAX_S,
    base_s: float = DEVICE_BACKOFF_BASE_S,
    retries_before_backoff: int = DEVICE_RETRIES_BEFORE_BACKOFF,
) -> float:
    """When a device is read next, after its last read.

    Answering (0 failures) or within ``retries_before_backoff`` failures: its interval.
    Then ``max(base_s, interval_s)``, doubling with each failure, capped at ``max_s``; but
    a device is never read more often than its interval (a 60 s rain gauge keeps 60 s).
    """
    backing_off = consecutive_failures - retries_before_backoff
    if backing_off <= 0:
        return interval_s
    wait_s = backoff_s(backing_off, base_s=max(base_s, interval_s), max_s=max_s)
    return max(interval_s, wait_s)
