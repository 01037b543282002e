"""Counter increments that survive rollover, reboot and a gateway restart."""

from __future__ import annotations

from pathlib import Path

from agent.bus.counter_state import MemoryCounterStore, SqliteCounterStore
from agent.bus.derived import Deriver
from drivers.base import Measurement
from drivers.counters import CounterValue
from wire import Quality


def tips(raw: int, modulus: int = 65536) -> Measurement:
    return Measurement("rain_mm", raw * 0.2, "mm", counter=CounterValue(raw, modulus, 0.2))


def increments(deriver: Deriver, raw: int) -> list[tuple[str, float | None]]:
    return [
        (m.metric, m.value)
        for m in deriver.derive([tips(raw)]).measurements
        if m.metric == "rain_mm_increment"
    ]


def test_increments_survive_a_gateway_restart(tmp_path: Path) -> None:
    store = SqliteCounterStore(tmp_path / "counters.db")
    assert increments(Deriver("rain-1", store), 100) == []  # no baseline yet
    store.close()

    reopened = SqliteCounterStore(tmp_path / "counters.db")  # the gateway restarted
    deriver = Deriver("rain-1", reopened)
    assert increments(deriver, 105) == [("rain_mm_increment", 1.0)]
    assert increments(deriver, 3) == [("rain_mm_increment", 0.6)]  # rebooted; no float noise
    reopened.close()


def test_rollover_and_reset() -> None:
    deriver = Deriver("rain-1", MemoryCounterStore())
    deriver.derive([tips(65530)])
    rolled = deriver.derive([tips(4)])
    assert rolled.counter_resets == 0
    assert rolled.measurements[1].value == 10 * 0.2
    reset = deriver.derive([tips(2)])
    assert reset.counter_resets == 1
    assert reset.measurements[1].value == 2 * 0.2


def test_a_changed_modulus_is_no_baseline() -> None:
    store = MemoryCounterStore()
    store.remember("rain-1", "rain_mm", 100, 65536)
    assert store.previous("rain-1", "rain_mm", 1 << 32) is None


def test_a_frozen_value_goes_stale_and_a_moving_one_is_good_again() -> None:
    deriver = Deriver("gauge-1", MemoryCounterStore(), stuck_after_reads=3)
    qualities = [
        deriver.derive([Measurement("level_cm", value)]).measurements[0].quality
        for value in (1.0, 2.0, 2.0, 2.0, 2.0, 3.0)
    ]
    assert qualities == [Quality.GOOD] * 3 + [Quality.STALE] + [Quality.STALE, Quality.GOOD]
