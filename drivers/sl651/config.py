"""Config of an SL651-2014 remote station: who it is, and which element is which metric."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from drivers.sl651.elements import element_label, parse_element_key
from drivers.stations import MetricMap, StationDeviceConfig
from wire.risk import Colour


class ElementConfig(MetricMap):
    """One element as one metric. ``element``: an ASCII name (``Z``, ``PJ``) or a hex
    identifier (``39``; ``FFA0`` for an extended one)."""

    element: str = Field(min_length=1, max_length=8)
    counter: bool = Field(
        default=False,
        description="a counter (PT, accumulated rainfall): the agent adds <metric>_increment,"
        " surviving roll-over (at 10**digits) and the station's reset",
    )

    @property
    def ident(self) -> int:
        return parse_element_key(self.element)

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            parse_element_key(self.element)
        except ValueError as exc:
            raise ValueError(f"element for {self.metric!r}: {exc}") from None
        if self.scale == 0:
            raise ValueError(f"element {self.element!r}: scale 0 would read every value as 0")
        return self


class Sl651StationConfig(StationDeviceConfig):
    """A station that pushes SL651 reports to a ``[[listeners]]`` entry (``port``)."""

    driver: Literal["sl651"]
    station: str = Field(
        pattern=r"^[0-9A-Fa-f]{10}$", description="the station address: 10 hex digits"
    )
    password: str = Field(default="0000", pattern=r"^[0-9A-Fa-f]{4}$")
    acknowledge: bool = Field(
        default=True, description="M2: answer each report (false: M1, the station wants none)"
    )
    negative_counted: bool = Field(
        default=True,
        description="the FF of a negative value is counted in the definition byte's length"
        " (false for stations that leave it out)",
    )
    alarm_colour: Colour = Field(
        default=Colour.ORANGE,
        description="the colour a 33H (additional, alarm) report raises at the risk points"
        " watching its trigger element",
    )
    elements: list[ElementConfig] = Field(min_length=1, max_length=64)

    def station_key(self) -> str:
        return self.station.upper()

    def describe(self) -> str:
        """How errors name it: ``device 'river-7' (sl651, station 0012345678)``."""
        return f"device {self.name!r} (sl651, station {self.station_key()})"

    def element_map(self) -> dict[int, ElementConfig]:
        return {e.ident: e for e in self.elements}

    @model_validator(mode="after")
    def _check(self) -> Self:
        metrics = [e.metric for e in self.elements]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"{self.describe()}: metrics repeat: {metrics}")
        idents = [e.ident for e in self.elements]
        repeated = sorted({element_label(i) for i in idents if idents.count(i) > 1})
        if repeated:
            raise ValueError(f"{self.describe()}: elements repeat: {', '.join(repeated)}")
        return self
