"""The shared risk rules: threshold edges, hysteresis, hold time, rates, sums, blind spots.

Time is the readings' source time and the ``now_ms`` given to ``tick``: no clock runs.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from wire.risk import (
    BlindSpot,
    Category,
    Colour,
    ColourChange,
    Measure,
    MetricRule,
    RiskEvaluator,
    RiskPointRules,
    RuleSet,
    Thresholds,
    worst,
)
from wire.risk_presets import PresetError, build_rule, default_rules

T0 = 1_700_000_000_000
LEVELS = Thresholds(blue=10, yellow=20, orange=30, red=40)


def point(*metrics: MetricRule, stale_after_s: float = 300) -> RiskPointRules:
    return RiskPointRules(
        id="p1", category=Category.OTHER, place="cq/a/b", metrics=list(metrics),
        stale_after_s=stale_after_s,
    )  # fmt: skip


def rule(**fields: object) -> MetricRule:
    base: dict[str, object] = {"device": "gw.d1", "metric": "m", "thresholds": LEVELS}
    return MetricRule.model_validate({**base, **fields})


def colours(ev: RiskEvaluator, values: list[float], *, step_ms: int = 1000) -> list[Colour]:
    seen = []
    for i, value in enumerate(values):
        ev.observe("gw.d1", "m", T0 + i * step_ms, value)
        seen.append(ev.colour_of("p1"))
    return seen


@pytest.mark.parametrize(
    ("value", "colour"),
    [
        (-5, Colour.GREEN), (9.999, Colour.GREEN), (10, Colour.BLUE), (19.99, Colour.BLUE),
        (20, Colour.YELLOW), (29.9, Colour.YELLOW), (30, Colour.ORANGE), (39.999, Colour.ORANGE),
        (40, Colour.RED), (1e9, Colour.RED),
    ],
)  # fmt: skip
def test_threshold_edges_are_inclusive_lower_bounds(value: float, colour: Colour) -> None:
    assert LEVELS.colour_for(value) is colour
    ev = RiskEvaluator([point(rule())])
    ev.observe("gw.d1", "m", T0, value)
    assert ev.colour_of("p1") is colour


def test_colours_rank_and_worst() -> None:
    assert [c.rank for c in Colour] == [0, 1, 2, 3, 4]
    assert worst([Colour.BLUE, Colour.RED, Colour.YELLOW]) is Colour.RED
    assert worst([]) is Colour.GREEN


def test_thresholds_must_ascend_and_exist() -> None:
    with pytest.raises(ValidationError, match="must not decrease"):
        Thresholds(yellow=20, orange=10)
    with pytest.raises(ValidationError, match="at least one"):
        Thresholds()
    assert Thresholds(red=1).colour_for(0.99) is Colour.GREEN


def test_rises_at_once_and_falls_only_after_the_hold_time() -> None:
    ev = RiskEvaluator([point(rule(hold_s=10))])
    changes = ev.observe("gw.d1", "m", T0, 45)
    assert changes == [ColourChange("p1", Colour.GREEN, Colour.RED, T0, "gw.d1", "m", 45, T0)]
    assert ev.observe("gw.d1", "m", T0 + 1000, 5) == []  # below, the hold starts
    assert ev.tick(T0 + 10_999) == []
    assert ev.colour_of("p1") is Colour.RED
    (fall,) = ev.tick(T0 + 11_000)
    assert isinstance(fall, ColourChange)
    assert (fall.before, fall.after, fall.at_ms) == (Colour.RED, Colour.GREEN, T0 + 11_000)


def test_a_new_rise_during_the_hold_restarts_it() -> None:
    ev = RiskEvaluator([point(rule(hold_s=10))])
    ev.observe("gw.d1", "m", T0, 45)
    ev.observe("gw.d1", "m", T0 + 1000, 5)
    ev.observe("gw.d1", "m", T0 + 5000, 41)  # red again: hold is off
    ev.observe("gw.d1", "m", T0 + 6000, 5)
    assert ev.tick(T0 + 12_000) == []
    assert ev.colour_of("p1") is Colour.RED
    assert ev.tick(T0 + 16_000) != []


def test_falls_to_the_colour_the_value_is_in_not_straight_to_green() -> None:
    ev = RiskEvaluator([point(rule(hold_s=0))])
    assert colours(ev, [45, 25, 25, 12, 0]) == [
        Colour.RED, Colour.YELLOW, Colour.YELLOW, Colour.BLUE, Colour.GREEN,
    ]  # fmt: skip


def test_hysteresis_keeps_the_colour_in_the_band_below_a_bound() -> None:
    ev = RiskEvaluator([point(rule(hysteresis=2, hold_s=0))])
    # 38.5 is within 2 of red's 40: stays red; 37.9 is below the band: orange.
    assert colours(ev, [40, 38.5, 39.9, 38.01, 37.9]) == [Colour.RED] * 4 + [Colour.ORANGE]
    # Rising needs the bound itself, not the band: 38.5 from orange stays orange.
    assert colours(ev, [38.5, 39.99, 40]) == [Colour.ORANGE, Colour.ORANGE, Colour.RED]


def test_a_noisy_sensor_around_a_bound_does_not_flap() -> None:
    ev = RiskEvaluator([point(rule(hysteresis=1, hold_s=30))])
    noisy = [40.3, 39.6, 40.1, 38.7, 40.4, 38.2, 39.9, 37.5, 40.0]
    changes = []
    for i, value in enumerate(noisy):
        changes += ev.observe("gw.d1", "m", T0 + i * 2000, value)
    assert [c.after for c in changes if isinstance(c, ColourChange)] == [Colour.RED]


def test_bad_and_stale_readings_and_maintenance_never_raise() -> None:
    ev = RiskEvaluator([point(rule())])
    assert ev.observe("gw.d1", "m", T0, 99, "bad") == []
    assert ev.observe("gw.d1", "m", T0, 99, "stale") == []
    assert ev.observe("gw.d1", "m", T0, None) == []
    ev.set_maintenance("gw.d1", True)
    assert ev.observe("gw.d1", "m", T0, 99) == []
    assert ev.tick(T0 + 10**9) == []  # and is never a blind spot
    ev.set_maintenance("gw.d1", False)
    assert ev.observe("gw.d1", "m", T0 + 1, 99) != []
    assert ev.observe("gw.other", "m", T0, 99) == []  # not watched


def test_rate_of_change_per_hour_over_a_window() -> None:
    slope = rule(
        measure=Measure.RATE_PER_H, window_s=600, min_span_s=60, absolute=True,
        thresholds=Thresholds(blue=1, yellow=2, orange=5, red=10), hold_s=0,
    )  # fmt: skip
    ev = RiskEvaluator([point(slope)])
    ev.observe("gw.d1", "m", T0, 100.0)
    # 30 s later: too short a span to call it a rate, even though it moved 1 mm.
    assert ev.observe("gw.d1", "m", T0 + 30_000, 101.0) == []
    # 60 s after the first: 1 mm/min = 60 mm/h -> red.
    (change,) = ev.observe("gw.d1", "m", T0 + 60_000, 101.0)
    assert isinstance(change, ColourChange)
    assert change.after is Colour.RED
    assert change.measure == pytest.approx(60.0)
    # A slope moving back the other way counts the same (absolute).
    ev2 = RiskEvaluator([point(slope)])
    ev2.observe("gw.d1", "m", T0, 100.0)
    ev2.observe("gw.d1", "m", T0 + 3_600_000 // 6, 99.5)  # -0.5 mm in 10 min = 3 mm/h
    assert ev2.colour_of("p1") is Colour.YELLOW


def test_rate_window_forgets_old_movement() -> None:
    slope = rule(measure=Measure.RATE_PER_H, window_s=600, min_span_s=60,
                 thresholds=Thresholds(red=10), hold_s=0)  # fmt: skip
    ev = RiskEvaluator([point(slope)])
    ev.observe("gw.d1", "m", T0, 0.0)
    ev.observe("gw.d1", "m", T0 + 60_000, 1.0)  # 60 mm/h: red
    assert ev.colour_of("p1") is Colour.RED
    for minute in range(2, 30):  # still afterwards
        ev.observe("gw.d1", "m", T0 + minute * 60_000, 1.0)
    assert ev.colour_of("p1") is Colour.GREEN


def test_sum_over_a_window_for_rainfall() -> None:
    rain = build_rule(device="gw.d1", metric="m", preset="rainfall_1h", hold_s=0)
    ev = RiskEvaluator([point(rain)])
    for minute in range(6):  # 6 x 5 mm in 6 minutes = 30 mm: yellow
        ev.observe("gw.d1", "m", T0 + minute * 60_000, 5.0)
    assert ev.colour_of("p1") is Colour.YELLOW
    ev.observe("gw.d1", "m", T0 + 6 * 60_000, 40.0)  # 70 mm in the hour: red
    assert ev.colour_of("p1") is Colour.RED
    ev.tick(T0 + 3_600_000 + 5 * 60_000 + 1)  # an hour on, only the last 40 mm count
    assert ev.colour_of("p1") is Colour.YELLOW
    ev.tick(T0 + 3 * 3_600_000)
    assert ev.colour_of("p1") is Colour.GREEN


def test_a_point_takes_the_worst_of_its_metrics() -> None:
    level = rule(hold_s=0)
    gas = rule(device="gw.d2", metric="lel", thresholds=Thresholds(yellow=20, red=50), hold_s=0)
    ev = RiskEvaluator([point(level, gas)])
    ev.observe("gw.d1", "m", T0, 12)
    assert ev.colour_of("p1") is Colour.BLUE
    ev.observe("gw.d2", "lel", T0, 55)
    assert ev.colour_of("p1") is Colour.RED
    ev.observe("gw.d2", "lel", T0 + 1, 0)
    assert ev.colour_of("p1") is Colour.BLUE
    assert ev.colours() == {"p1": Colour.BLUE}


def test_a_quiet_device_on_a_red_capable_point_is_a_blind_spot() -> None:
    ev = RiskEvaluator([point(rule(), stale_after_s=60)])
    assert ev.tick(T0) == []  # never heard of: judged from the first tick
    assert ev.tick(T0 + 60_000) == []
    assert ev.tick(T0 + 60_001) == [BlindSpot("p1", "gw.d1", True, T0, T0 + 60_001)]
    assert ev.tick(T0 + 120_000) == []  # once
    assert ev.observe("gw.d1", "m", T0 + 130_000, 1.0) == [
        BlindSpot("p1", "gw.d1", False, T0 + 130_000, T0 + 130_000)
    ]
    # A point that can never be red is not watched for blind spots.
    ev2 = RiskEvaluator([point(rule(thresholds=Thresholds(yellow=1)), stale_after_s=1)])
    ev2.tick(T0)
    assert ev2.tick(T0 + 10**7) == []


def test_rules_travel_as_json() -> None:
    rules = RuleSet(points=[point(build_rule(device="gw.d1", metric="m", preset="gas_lel"))])
    again = RuleSet.model_validate_json(rules.model_dump_json())
    assert again == rules
    assert RiskEvaluator(again).points["p1"].red_capable


def test_presets() -> None:
    water = build_rule(device="gw.d", metric="level_cm", category=Category.WATER_LEVEL,
                       warning_level=1800, guarantee_level=2000)  # fmt: skip
    assert water.thresholds == Thresholds(blue=1700, yellow=1800, orange=1900, red=2000)
    assert water.hysteresis == pytest.approx(10)
    with pytest.raises(PresetError, match="needs warning_level"):
        build_rule(device="gw.d", metric="m", preset="water_level")
    with pytest.raises(PresetError, match="must be above"):
        build_rule(device="gw.d", metric="m", preset="water_level", warning_level=2,
                   guarantee_level=1)  # fmt: skip
    with pytest.raises(PresetError, match="unknown preset 'nope'"):
        build_rule(device="gw.d", metric="m", preset="nope")
    with pytest.raises(PresetError, match="give a preset or thresholds"):
        build_rule(device="gw.d", metric="m")
    custom = build_rule(device="gw.d", metric="m", preset="gas_lel", hold_s=5)
    assert (custom.hold_s, custom.thresholds.red) == (5, 50)
    tilt = build_rule(device="gw.d", metric="deg", category=Category.BRIDGE)
    assert tilt.absolute
    smoke = build_rule(device="gw.d", metric="alarm", category=Category.FIRE)
    assert smoke.thresholds.colour_for(1) is Colour.RED


def test_rules_replaced_while_running_keep_the_state_of_unchanged_metrics() -> None:
    level, gas = rule(), rule(device="gw.d2", metric="lel", thresholds=Thresholds(red=50))
    ev = RiskEvaluator([point(level, stale_after_s=60)])
    ev.observe("gw.d1", "m", T0, 45)
    assert ev.colour_of("p1") is Colour.RED
    # A metric added: the level keeps its reading and colour, nothing is re-raised.
    assert ev.set_points([point(level, gas, stale_after_s=60)], now_ms=T0 + 1) == []
    assert ev.colour_of("p1") is Colour.RED
    assert ev.tick(T0 + 2) == []
    assert ev.watches("gw.d2", "lel")
    # The level's device goes quiet, then is dropped from the point: its blind spot ends.
    ev.observe("gw.d2", "lel", T0 + 60_000, 1)
    assert [e for e in ev.tick(T0 + 61_000) if isinstance(e, BlindSpot)] == [
        BlindSpot("p1", "gw.d1", True, T0, T0 + 61_000)
    ]
    ended = ev.set_points([point(gas, stale_after_s=60)], now_ms=T0 + 62_000)
    assert ended == [BlindSpot("p1", "gw.d1", False, T0, T0 + 62_000)]
    assert not ev.watches("gw.d1", "m")
    # The point's colour follows its remaining metric at the next tick.
    (change,) = ev.tick(T0 + 63_000)
    assert isinstance(change, ColourChange)
    assert (change.before, change.after) == (Colour.RED, Colour.GREEN)
    assert ev.set_points([], now_ms=T0 + 64_000) == []
    assert ev.colours() == {}


def test_default_rules_per_category() -> None:
    (gas,) = default_rules(Category.GAS, ["gw.g1"])
    assert (gas.device, gas.metric, gas.thresholds.red) == ("gw.g1", "gas_lel_pct", 50)
    tilts = default_rules(Category.BRIDGE, ["gw.t1"])
    assert [r.metric for r in tilts] == ["tilt_x_deg", "tilt_y_deg"]
    assert default_rules(Category.OTHER, []) == []
    with pytest.raises(PresetError, match=r"warning_level and guarantee_level\): give metrics"):
        default_rules(Category.WATER_LEVEL, ["gw.l1"])
    with pytest.raises(PresetError, match="no preset"):
        default_rules(Category.OTHER, ["gw.x"])


def test_a_restored_colour_is_held_until_the_readings_fall_for_the_hold_time() -> None:
    ev = RiskEvaluator([point(rule(metric="other"), rule(hold_s=60))])
    ev.restore("p1", Colour.ORANGE, cause=("gw.d1", "m"), blind=["gw.d1", "gw.gone"])
    assert ev.colour_of("p1") is Colour.ORANGE
    assert ev.tick(T0) == []  # no reading yet: nothing to judge by, the colour stays
    events = ev.observe("gw.d1", "other", T0, 5)  # not the cause: orange stays
    assert events == [BlindSpot("p1", "gw.d1", False, T0, T0)]  # the device reports again
    assert ev.observe("gw.d1", "m", T0 + 1000, 5) == []  # the cause falls: the hold starts
    assert ev.tick(T0 + 60_999) == []
    (change,) = ev.tick(T0 + 61_000)
    assert isinstance(change, ColourChange)
    assert (change.before, change.after) == (Colour.ORANGE, Colour.GREEN)
    ev.restore("nobody", Colour.RED, cause=None, blind=[])  # a point no longer judged


def test_a_restored_rate_is_not_judged_before_its_readings_span_the_minimum() -> None:
    rate = rule(measure=Measure.RATE_PER_H, min_span_s=300, thresholds=Thresholds(red=10))
    ev = RiskEvaluator([point(rate)])
    ev.restore("p1", Colour.ORANGE, cause=None, blind=[])  # orange: the first able metric
    assert ev.colour_of("p1") is Colour.ORANGE
    assert ev.tick(T0 + 3_600_000) == []  # no readings: no rate, the colour stays


def test_the_rules_digest_is_the_same_after_travelling_as_json() -> None:
    rules = RuleSet(points=[point(rule(), rule(metric="x", hold_s=12.5))])
    again = RuleSet.model_validate_json(rules.model_dump_json())
    assert again.digest() == rules.digest() != RuleSet().digest()
    assert len(rules.digest()) == 64
