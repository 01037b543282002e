"""Every fault the simulator can show, on a real pty, through the agent's port owner.

For each: the right health counter moves, the device's state changes (failing after
three failed reads in a row, stale when its values are bad or frozen), no thread dies, and
once the fault clears the next good answer is read and the device is ok again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent.bus.derived import INCREMENT_SUFFIX
from agent.bus.poller import DeviceState
from firmware_sim import Faults
from tests.agent.bus_rig import Rig, bus_rig, gauge, rain, simulated
from wire import Quality

# fault -> (error counter it moves, state it brings)
TRANSPORT_FAULTS: dict[str, tuple[dict[str, Any], str]] = {
    "silence": ({"silent": True}, "timeout"),
    "late_answer": ({"late_s": 0.3}, "timeout"),
    "crc_error": ({"corrupt_crc": True}, "crc"),
    "wrong_slave_id": ({"reply_as_slave": 9}, "wrong_id"),
    "truncated_frame": ({"truncate": True}, "timeout"),
    "garbage_bytes": ({"garbage": True}, "garbage"),
}


@pytest.fixture
def rig() -> Iterator[Rig]:
    sims = [simulated("water_level", 1), simulated("rain_gauge", 2, initial_tips=1000)]
    configs = [gauge(1, stuck_after_reads=5), rain(2)]
    with bus_rig(sims, configs) as opened:
        opened.wait(lambda: opened.sink.good_reads("gauge-1") >= 2, "gauge reads")
        yield opened


def recovers(rig: Rig, device: str = "gauge-1") -> None:
    """The fault cleared: a good answer is read and the device is ok again."""
    poller = rig.poller(device)
    before = rig.sink.good_reads(device)
    rig.wait(lambda: rig.sink.good_reads(device) > before + 1, f"{device} reads again")
    rig.wait(lambda: poller.state() is DeviceState.OK, f"{device} ok")
    assert rig.owner.alive
    assert rig.owner.crashes == 0


@pytest.mark.parametrize("fault", list(TRANSPORT_FAULTS), ids=list(TRANSPORT_FAULTS))
def test_a_transport_fault_counts_fails_and_recovers(rig: Rig, fault: str) -> None:
    faults, counter = TRANSPORT_FAULTS[fault]
    poller = rig.poller("gauge-1")
    rig.sim(1).faults = Faults(**faults)

    rig.wait(lambda: poller.state() is DeviceState.FAILING, f"failing under {fault}")
    health = poller.health()
    assert health.errors[counter] >= 3, health.errors
    assert health.consecutive_failures >= 3
    assert counter in (health.last_error or "")
    bad = rig.sink.of("gauge-1")[-1]
    assert [(m.metric, m.value, m.quality) for m in bad] == [("level_cm", None, Quality.BAD)]

    rig.sim(1).faults = Faults()
    recovers(rig)
    assert poller.health().consecutive_failures == 0


def test_an_out_of_range_value_is_bad_counted_and_the_device_goes_stale(rig: Rig) -> None:
    poller = rig.poller("gauge-1")
    rig.sim(1).faults = Faults(out_of_range=True)

    rig.wait(lambda: poller.state() is DeviceState.STALE, "stale on bad values")
    rig.wait(lambda: poller.health().errors["invalid_value"] >= 3, "invalid values counted")
    assert poller.health().consecutive_failures == 0  # it answers: its values are bad
    measurement = rig.sink.of("gauge-1")[-1][0]
    assert (measurement.quality, measurement.value) == (Quality.BAD, None)
    assert "invalid_value" in (measurement.error or "")

    rig.sim(1).faults = Faults()
    recovers(rig)


def test_a_stuck_value_is_reported_stale_and_the_device_goes_stale(rig: Rig) -> None:
    poller = rig.poller("gauge-1")
    rig.sim(1).faults = Faults(stuck=True)

    def stale_and_stored() -> bool:
        # The state changes on the poller's thread a moment before the reading is stored.
        readings = rig.sink.of("gauge-1")
        return poller.state() is DeviceState.STALE and readings[-1][0].quality is Quality.STALE

    rig.wait(stale_and_stored, "stale on a frozen value")
    assert poller.health().errors["stuck"] >= 1
    frozen = rig.sink.of("gauge-1")[-1][0]
    assert frozen.quality is Quality.STALE
    assert "unchanged for" in (frozen.error or "")

    rig.sim(1).faults = Faults()
    recovers(rig)


def test_a_reboot_resets_the_counter_without_inventing_rain(rig: Rig) -> None:
    poller = rig.poller("rain-2")
    rig.wait(lambda: rig.sink.good_reads("rain-2") >= 2, "rain reads")
    rig.sim(2).reboot()

    rig.wait(lambda: poller.health().errors.get("counter_reset", 0) >= 1, "reset seen")
    rig.wait(lambda: rig.sink.good_reads("rain-2") >= 5, "more rain reads")
    reads = rig.sink.of("rain-2")
    raws = [m.counter.raw for ms in reads for m in ms if m.counter is not None]
    increments = [m.value for ms in reads for m in ms if m.metric.endswith(INCREMENT_SUFFIX)]
    assert raws[0] >= 1000
    assert 0 in raws  # the count restarted from 0
    assert increments  # published beside the raw count ...
    assert all(v is not None and 0 <= v < 1.0 for v in increments)  # ... and no flood
    assert poller.state() is DeviceState.OK
    assert rig.owner.alive


def test_a_fault_on_one_slave_leaves_the_others_reading(rig: Rig) -> None:
    rig.sim(1).faults = Faults(silent=True)
    rig.wait(lambda: rig.poller("gauge-1").state() is DeviceState.FAILING, "gauge failing")
    before = rig.sink.good_reads("rain-2")

    rig.wait(lambda: rig.sink.good_reads("rain-2") >= before + 10, "rain keeps reading")
    assert rig.poller("rain-2").state() is DeviceState.OK
