"""Numbers and durations as people read them, for log lines, API values and the console.

``measured(v)``: a value computed from a sensor's raw count (``2397 * 0.1``) carries binary
float noise (``239.70000000000002``). Values are rounded where the noise is made (the
drivers' scale and offset, counter increments) to 12 significant digits: more than any
field device resolves (a 32-bit register holds ~10 digits), far more than float noise (~16).
``duration(s)``: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``.
"""

from __future__ import annotations

import math

SIGNIFICANT_DIGITS = 12


def measured(value: float) -> float:
    """``value`` without float noise: rounded to 12 significant digits (NaN/inf kept)."""
    if not math.isfinite(value):
        return value
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def duration(seconds: float) -> str:
    """A duration in the two largest units a person uses: ``3 h 5 min``."""
    s = max(0, round(seconds))
    if s < 120:
        return f"{s} s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 3600:
        return f"{minutes} min"
    if s < 86400:
        rest = minutes % 60
        return f"{hours} h" + (f" {rest} min" if rest else "")
    rest = hours % 24
    return f"{days} d" + (f" {rest} h" if rest else "")
