"""The five-colour risk rules as data: colours, categories, measures, thresholds and the
rule set the controller pushes to agents (``RuleSet``, JSON). Pure, no I/O; evaluated by
``wire.risk.RiskEvaluator``, which also re-exports every name here."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Colour(StrEnum):
    GREEN = "green"  # low risk
    BLUE = "blue"  # general
    YELLOW = "yellow"  # relatively serious
    ORANGE = "orange"  # serious
    RED = "red"  # extraordinarily serious

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {c: i for i, c in enumerate(Colour)}
COLOURS_ASCENDING: tuple[Colour, ...] = tuple(Colour)


def worst(colours: Iterable[Colour]) -> Colour:
    """The most serious colour (green for none)."""
    return max(colours, key=lambda c: c.rank, default=Colour.GREEN)


class Category(StrEnum):
    WATER_LEVEL = "water_level"
    RAINFALL = "rainfall"
    SLOPE = "slope"
    GAS = "gas"
    FIRE = "fire"
    BRIDGE = "bridge"
    OTHER = "other"


class Measure(StrEnum):
    VALUE = "value"
    RATE_PER_H = "rate_per_h"
    SUM = "sum"


class _Model(BaseModel):
    # No NaN or infinity: a bound that compares false with everything is no bound, and
    # JSON (how the rules travel and are stored) cannot carry them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Thresholds(_Model):
    """Lower bound of each colour (the measure >= bound); None: never that colour."""

    blue: float | None = None
    yellow: float | None = None
    orange: float | None = None
    red: float | None = None

    @model_validator(mode="after")
    def _ascending(self) -> Thresholds:
        bounds = [(c, b) for c, b in self.bounds() if b is not None]
        for (low, low_bound), (high, high_bound) in itertools.pairwise(bounds):
            if high_bound < low_bound:
                raise ValueError(
                    f"thresholds must not decrease with the colour: {high.value} {high_bound:g}"
                    f" < {low.value} {low_bound:g}"
                )
        if not bounds:
            raise ValueError("thresholds: give at least one of blue, yellow, orange, red")
        return self

    def bounds(self) -> list[tuple[Colour, float | None]]:
        return [
            (Colour.BLUE, self.blue),
            (Colour.YELLOW, self.yellow),
            (Colour.ORANGE, self.orange),
            (Colour.RED, self.red),
        ]

    def colour_for(self, measure: float) -> Colour:
        colour = Colour.GREEN
        for candidate, bound in self.bounds():
            if bound is not None and measure >= bound:
                colour = candidate
        return colour


class MetricRule(_Model):
    """How one device metric colours a risk point; ``device`` is ``<gateway>.<device>``."""

    device: Name
    metric: Name
    measure: Measure = Measure.VALUE
    window_s: float = Field(default=3600.0, gt=0)
    min_span_s: float = Field(default=60.0, ge=0)
    absolute: bool = False
    thresholds: Thresholds
    hysteresis: float = Field(default=0.0, ge=0, description="in the measure's unit")
    hold_s: float = Field(default=300.0, ge=0)

    @property
    def red_capable(self) -> bool:
        return self.thresholds.red is not None


class RiskPointRules(_Model):
    id: Name
    category: Category
    place: str = Field(max_length=255)
    name: str = Field(default="", max_length=255)
    stale_after_s: float = Field(default=300.0, gt=0)
    metrics: list[MetricRule] = Field(min_length=1)

    @property
    def red_capable(self) -> bool:
        return any(m.red_capable for m in self.metrics)


class RuleSet(_Model):
    """The rules the controller pushes to agents (and evaluates itself)."""

    v: Literal[1] = 1
    points: list[RiskPointRules] = Field(default_factory=list)

    def digest(self) -> str:
        """sha256 of the rules as canonical JSON: what the controller and an agent compare
        to know that the agent runs the rules it should."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()
