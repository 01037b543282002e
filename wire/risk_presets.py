"""Documented default rules per kind of risk metric (docs/risk-and-alerts.md has the table).

A preset gives the measure, window, thresholds, hysteresis and hold time of one metric; a
config names the preset and overrides any of its fields. Water level is the one preset
with parameters: the river section's own warning and guarantee levels (in the metric's
unit), because a fixed number means nothing across rivers; band = guarantee - warning.

| preset | measure | blue | yellow | orange | red | hysteresis | hold |
| --- | --- | --- | --- | --- | --- | --- | --- |
| water_level | value | warn - band/2 | warn | warn + band/2 | guarantee | band/20 | 600 s |
| rainfall_1h | sum over 1 h, mm | 20 | 30 | 50 | 70 | 2 mm | 1800 s |
| rainfall_24h | sum over 24 h, mm | 50 | 100 | 150 | 250 | 5 mm | 3600 s |
| slope_rate | rate over 1 h, mm/h (either way) | 1 | 2 | 5 | 10 | 0.2 mm/h | 1800 s |
| gas_lel | value, %LEL | 10 | 20 | 25 | 50 | 2 %LEL | 120 s |
| smoke_alarm | value (0/1) | - | - | - | 1 | 0 | 60 s |
| bridge_tilt | value, degrees (either way) | 0.1 | 0.2 | 0.35 | 0.5 | 0.02 deg | 600 s |
"""

from __future__ import annotations

from typing import Any

from wire.risk import Category, Measure, MetricRule

PRESETS: dict[str, dict[str, Any]] = {
    "rainfall_1h": {
        "measure": Measure.SUM,
        "window_s": 3600.0,
        "thresholds": {"blue": 20.0, "yellow": 30.0, "orange": 50.0, "red": 70.0},
        "hysteresis": 2.0,
        "hold_s": 1800.0,
    },
    "rainfall_24h": {
        "measure": Measure.SUM,
        "window_s": 86400.0,
        "thresholds": {"blue": 50.0, "yellow": 100.0, "orange": 150.0, "red": 250.0},
        "hysteresis": 5.0,
        "hold_s": 3600.0,
    },
    "slope_rate": {
        "measure": Measure.RATE_PER_H,
        "window_s": 3600.0,
        "min_span_s": 300.0,
        "absolute": True,
        "thresholds": {"blue": 1.0, "yellow": 2.0, "orange": 5.0, "red": 10.0},
        "hysteresis": 0.2,
        "hold_s": 1800.0,
    },
    "gas_lel": {
        "thresholds": {"blue": 10.0, "yellow": 20.0, "orange": 25.0, "red": 50.0},
        "hysteresis": 2.0,
        "hold_s": 120.0,
    },
    "smoke_alarm": {"thresholds": {"red": 1.0}, "hold_s": 60.0},
    "bridge_tilt": {
        "absolute": True,
        "thresholds": {"blue": 0.1, "yellow": 0.2, "orange": 0.35, "red": 0.5},
        "hysteresis": 0.02,
        "hold_s": 600.0,
    },
}
WATER_LEVEL = "water_level"
PRESET_NAMES = (WATER_LEVEL, *PRESETS)

# The preset a category uses when a metric names none.
CATEGORY_PRESETS: dict[Category, str] = {
    Category.WATER_LEVEL: WATER_LEVEL,
    Category.RAINFALL: "rainfall_1h",
    Category.SLOPE: "slope_rate",
    Category.GAS: "gas_lel",
    Category.FIRE: "smoke_alarm",
    Category.BRIDGE: "bridge_tilt",
}


# The metrics a category's default rules watch on each of a point's devices, named as the
# drivers' documented samples name them (drivers/*/README.md). A point registered without
# rules of its own gets one rule per device and metric, with the category's preset. Water
# level has no default: its thresholds are the river section's own levels.
CATEGORY_METRICS: dict[Category, tuple[str, ...]] = {
    Category.RAINFALL: ("rain_mm",),
    Category.SLOPE: ("displacement_mm",),
    Category.GAS: ("gas_lel_pct",),
    Category.FIRE: ("smoke_alarm",),
    Category.BRIDGE: ("tilt_x_deg", "tilt_y_deg"),
}


class PresetError(ValueError):
    """A preset that does not exist, or lacks its parameters."""


def water_level(warning_level: float, guarantee_level: float) -> dict[str, Any]:
    """Yellow at the warning level, red at the guarantee level (the levee's design level)."""
    band = guarantee_level - warning_level
    if band <= 0:
        raise PresetError(
            f"water_level: guarantee_level {guarantee_level:g} must be above"
            f" warning_level {warning_level:g}"
        )
    return {
        "thresholds": {
            "blue": warning_level - band / 2,
            "yellow": warning_level,
            "orange": warning_level + band / 2,
            "red": guarantee_level,
        },
        "hysteresis": band * 0.05,
        "hold_s": 600.0,
    }


def preset_fields(
    name: str, *, warning_level: float | None = None, guarantee_level: float | None = None
) -> dict[str, Any]:
    """The fields of preset ``name`` (a copy the caller may override)."""
    if name == WATER_LEVEL:
        if warning_level is None or guarantee_level is None:
            raise PresetError("water_level: needs warning_level and guarantee_level")
        return water_level(warning_level, guarantee_level)
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}: use one of {', '.join(PRESET_NAMES)}")
    return dict(PRESETS[name])


def build_rule(
    *,
    device: str,
    metric: str,
    preset: str | None = None,
    category: Category | None = None,
    warning_level: float | None = None,
    guarantee_level: float | None = None,
    **overrides: Any,
) -> MetricRule:
    """A metric rule from a preset (or the category's), with ``overrides`` on top."""
    name = preset or (CATEGORY_PRESETS.get(category) if category else None)
    fields: dict[str, Any] = {}
    if name is not None and not ("thresholds" in overrides and preset is None):
        fields = preset_fields(name, warning_level=warning_level, guarantee_level=guarantee_level)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if "thresholds" not in fields:
        raise PresetError(f"{device}/{metric}: give a preset or thresholds")
    return MetricRule.model_validate({"device": device, "metric": metric, **fields})


def default_rules(category: Category, devices: list[str]) -> list[MetricRule]:
    """The category's preset on each device's usual metrics (``CATEGORY_METRICS``)."""
    if not devices:
        return []
    metrics = CATEGORY_METRICS.get(category)
    if metrics is None:
        why = (
            "its thresholds are the river section's warning_level and guarantee_level"
            if category is Category.WATER_LEVEL
            else "it has no preset"
        )
        raise PresetError(f"category {category.value!r} has no default rules ({why}): give metrics")
    return [
        build_rule(device=device, metric=metric, category=category)
        for device in devices
        for metric in metrics
    ]
