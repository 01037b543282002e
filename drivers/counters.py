"""Counters that roll over and reset: turning two raw readings into an increment.

A tipping-bucket rain gauge holds its tip count in a u16 register: it rolls over at 65536
and resets to 0 when the station reboots or loses power. Rainfall over an hour or a day is
the sum of increments between reads, so each increment must survive both.

The rule (``counter_increment``):

- ``current >= previous``: the increment is ``current - previous``.
- ``current < previous`` is either a rollover or a reset; the two cannot be told apart
  from the numbers alone, so the plausible step decides. If going forward past the modulus
  (``modulus - previous + current``) is at most ``max_increment``, the counter rolled
  over; otherwise it restarted from 0 (reboot) and the increment is ``current``: the
  counts since the restart. Counts between the last read and the restart are lost.

When in doubt the rule undercounts rather than invents: mistaking a reboot for a rollover
would add tens of thousands of tips, a flood of rain that never fell, and raise alarms.
The default ``max_increment`` (1/256 of the modulus: 256 tips for a u16, i.e. 128 mm at
0.5 mm a tip) is far more than any real gauge counts between two polls.
"""

from __future__ import annotations

from dataclasses import dataclass

U16_MODULUS = 1 << 16
U32_MODULUS = 1 << 32


@dataclass(frozen=True, slots=True)
class CounterValue:
    """The raw count behind a counter measurement, for computing increments downstream.

    ``raw`` is the register's count as read (no scale), ``modulus`` where it rolls over,
    and ``scale`` what one count is worth in the measurement's unit (0.2 mm a tip).
    """

    raw: int
    modulus: int
    scale: float = 1.0


def default_max_increment(modulus: int) -> int:
    return max(1, modulus // 256)


def counter_increment(
    previous: int, current: int, modulus: int = U16_MODULUS, *, max_increment: int | None = None
) -> int:
    """Counts between two raw readings of a counter that rolls over at ``modulus``.

    See the module docstring for how a decrease is read (rollover or reset).
    """
    if modulus < 2:
        raise ValueError(f"counter modulus {modulus} must be at least 2")
    for name, value in (("previous", previous), ("current", current)):
        if not 0 <= value < modulus:
            raise ValueError(f"{name} count {value} is outside 0-{modulus - 1}")
    if current >= previous:
        return current - previous
    limit = default_max_increment(modulus) if max_increment is None else max_increment
    wrapped = modulus - previous + current
    return wrapped if wrapped <= limit else current
