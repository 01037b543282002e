"""Counter increments that survive u16 rollover and reboot (drivers.counters)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.counters import U16_MODULUS, U32_MODULUS, counter_increment


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (100, 100, 0),
        (100, 107, 7),
        (65530, 3, 9),  # rolled over: 6 to reach 65536, then 3
        (65535, 0, 1),
        (100, 5, 5),  # a decrease far from the top: the gauge rebooted, 5 tips since
        (40000, 10, 10),  # a reboot, not 25546 tips of rain that never fell
        (0, 65535, 65535),  # an increase is taken as it is
    ],
)
def test_increment(previous: int, current: int, expected: int) -> None:
    assert counter_increment(previous, current, U16_MODULUS) == expected


def test_max_increment_decides_between_rollover_and_reset() -> None:
    assert counter_increment(65000, 100, max_increment=1000) == 636
    assert counter_increment(65000, 100, max_increment=500) == 100
    assert counter_increment(U32_MODULUS - 1, 1, U32_MODULUS) == 2


@pytest.mark.parametrize(("previous", "current"), [(-1, 0), (0, 65536), (70000, 1)])
def test_counts_outside_the_modulus_are_refused(previous: int, current: int) -> None:
    with pytest.raises(ValueError, match="outside 0-65535"):
        counter_increment(previous, current)


@given(start=st.integers(0, 65535), steps=st.lists(st.integers(0, 200), max_size=50))
def test_sum_of_increments_matches_tips_through_rollovers(start: int, steps: list[int]) -> None:
    raw, total = start, 0
    for step in steps:
        new = (raw + step) % U16_MODULUS
        total += counter_increment(raw, new)
        raw = new
    assert total == sum(steps)
