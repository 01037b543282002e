"""The gateway health state machine with an injected clock: no waiting at all."""

from __future__ import annotations

import wire
from controller.fleet.devices import DeviceEvidence, DeviceHealthState, judge_device
from controller.fleet.health import GatewayHealthState, HealthTracker, StatusVerdict
from tests.clock import FakeClock
from tests.controller.support import birth, health, offline

ONLINE, OFFLINE = GatewayHealthState.ONLINE, GatewayHealthState.OFFLINE


def tracker() -> tuple[HealthTracker, FakeClock]:
    clock = FakeClock()
    return HealthTracker(heartbeat_misses=3, default_heartbeat_interval_s=5, clock=clock), clock


def test_birth_then_will_of_the_same_session() -> None:
    health_tracker, clock = tracker()
    verdict, up = health_tracker.on_status("gw", birth(1))
    assert verdict is StatusVerdict.APPLIED
    assert up is not None
    expected = (GatewayHealthState.UNKNOWN, ONLINE, clock.wall_ms())
    assert (up.from_state, up.to_state, up.at_ms) == expected
    assert health_tracker.on_status("gw", birth(1)) == (StatusVerdict.APPLIED, None)  # no repeat
    _, down = health_tracker.on_status("gw", offline(1))
    assert down is not None
    assert down.to_state is OFFLINE
    assert down.reason == "offline status (session 1)"


def test_will_of_an_older_session_is_stale_and_changes_nothing() -> None:
    health_tracker, _ = tracker()
    health_tracker.on_status("gw", birth(7))
    assert health_tracker.on_status("gw", offline(6)) == (StatusVerdict.STALE, None)
    assert health_tracker.state_of("gw") is ONLINE


def test_timeout_after_three_intervals_from_the_birth() -> None:
    health_tracker, clock = tracker()
    health_tracker.on_status("gw", birth(1, heartbeat_interval_s=2.0))
    clock.now_s += 5.9
    assert health_tracker.check() == []
    clock.now_s += 0.2
    [down] = health_tracker.check()
    assert down.to_state is OFFLINE
    assert down.reason == "no heartbeat for 6.1 s (3 x 2 s)"
    assert health_tracker.check() == []  # logged and stored once


def test_heartbeats_and_data_keep_it_online_and_the_health_interval_wins() -> None:
    health_tracker, clock = tracker()
    health_tracker.on_status("gw", birth(1, heartbeat_interval_s=1.0))
    assert (
        health_tracker.on_health("gw", health(1, heartbeat_interval_s=10.0, ts_ms=clock.wall_ms()))
        is None
    )
    clock.now_s += 25
    assert health_tracker.on_data("gw", 1) is None
    clock.now_s += 29
    assert health_tracker.check() == []
    clock.now_s += 2
    assert [t.to_state for t in health_tracker.check()] == [OFFLINE]


def test_traffic_returns_a_timed_out_gateway_but_not_one_that_said_goodbye() -> None:
    health_tracker, clock = tracker()
    health_tracker.on_status("gw", birth(1))
    clock.now_s += 16
    health_tracker.check()
    back = health_tracker.on_health("gw", health(1, 5.0, ts_ms=clock.wall_ms()))
    assert back is not None
    assert back.reason == "heartbeat resumed (session 1)"

    health_tracker.on_status("gw", offline(1))
    assert health_tracker.on_data("gw", 1) is None  # late data of the session that left
    assert health_tracker.state_of("gw") is OFFLINE
    assert health_tracker.on_data("gw", 0) is None  # older session: proves nothing
    newer = health_tracker.on_data("gw", 2)
    assert newer is not None
    assert newer.to_state is ONLINE


def test_default_interval_applies_until_the_gateway_says_otherwise() -> None:
    health_tracker, clock = tracker()
    health_tracker.on_status(
        "gw", wire.Status(state=wire.GatewayState.ONLINE, session=1, heartbeat_interval_s=0)
    )
    clock.now_s += 14.9
    assert health_tracker.check() == []
    clock.now_s += 0.2
    assert len(health_tracker.check()) == 1


def test_restored_online_gateway_gets_a_full_timeout_of_grace() -> None:
    health_tracker, clock = tracker()
    health_tracker.restore("gw", ONLINE, 4, 1.0)
    clock.now_s += 2.9
    assert health_tracker.check() == []
    assert health_tracker.on_status("gw", offline(3)) == (StatusVerdict.STALE, None)


DEGRADED = GatewayHealthState.DEGRADED


def test_a_failing_device_degrades_and_recovery_brings_it_back() -> None:
    health_tracker, clock = tracker()
    health_tracker.on_status("gw", birth(1))
    failing = {"gauge-1": wire.DeviceHealth(state="failing", consecutive_failures=5)}
    down = health_tracker.on_health("gw", health(1, 5.0, ts_ms=clock.wall_ms(), devices=failing))
    assert down is not None
    assert (down.from_state, down.to_state) == (ONLINE, DEGRADED)
    assert down.reason == "devices failing: gauge-1"
    again = health_tracker.on_health("gw", health(1, 5.0, ts_ms=clock.wall_ms(), devices=failing))
    assert again is None  # the same trouble: no new transition
    # A device in maintenance does not count.
    assert (
        health_tracker.on_health(
            "gw",
            health(1, 5.0, ts_ms=clock.wall_ms(), devices=failing),
            ignore_devices=frozenset({"gauge-1"}),
        )
        is not None
    )
    assert health_tracker.state_of("gw") is ONLINE


def test_clock_skew_backlog_and_disk_are_reasons() -> None:
    health_tracker, clock = tracker()
    health_tracker.on_status("gw", birth(1))
    late = health(1, 5.0, ts_ms=clock.wall_ms() - 42_000, disk_free_bytes=10)
    late = late.model_copy(update={"oldest_unsent_age_s": 600.0, "buffer_rows": 9000})
    moved = health_tracker.on_health("gw", late)
    assert moved is not None
    assert moved.to_state is DEGRADED
    assert "backlog growing: oldest unsent reading 600 s old (9000 rows buffered)" in moved.reason
    assert "disk low: 10 bytes free" in moved.reason
    assert "clock skewed: -42.0 s" in moved.reason
    clock.now_s += 16
    [timeout] = health_tracker.check()
    assert (timeout.from_state, timeout.to_state) == (DEGRADED, OFFLINE)


def test_a_gateway_that_returns_degraded_is_one_transition() -> None:
    health_tracker, clock = tracker()
    health_tracker.on_status("gw", birth(1))
    clock.now_s += 16
    health_tracker.check()
    skewed = health(1, 5.0, ts_ms=clock.wall_ms() + 30_000)
    back = health_tracker.on_health("gw", skewed)
    assert back is not None
    assert (back.from_state, back.to_state) == (OFFLINE, DEGRADED)


def test_a_device_never_read_has_no_reading_yet_not_an_age_counted_from_1970() -> None:
    now_ms = 1_796_670_929_000
    for stored, reported in ((None, None), (0, None), (None, 0), (0, 0)):
        evidence = DeviceEvidence(
            maintenance=False,
            gateway_alive=True,
            reported=wire.DeviceHealth(state="starting", last_good_ms=reported),
            last_good_ms=stored,
        )
        assert judge_device(evidence, now_ms=now_ms, stale_after_s=10) == (
            DeviceHealthState.UNKNOWN,
            "no reading yet",
        )
    quiet = DeviceEvidence(False, True, None, last_good_ms=now_ms - 7_500_000)
    assert judge_device(quiet, now_ms=now_ms, stale_after_s=10) == (
        DeviceHealthState.STALE,
        "no good reading for 2 h 5 min",
    )
