"""Config of an HJ212-2017 data logger (数采仪): who it is, and which factor is which metric."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from drivers.stations import MetricMap, StationDeviceConfig

DataCommand = Literal["2011", "2051", "2061", "2031"]
DATA_COMMANDS: tuple[DataCommand, ...] = ("2011", "2051", "2061", "2031")
COMMAND_NAMES = {
    "2011": "real-time data",
    "2051": "minute data",
    "2061": "hourly data",
    "2031": "daily data",
    "2021": "facility state",
    "2041": "facility run time",
    "2081": "logger boot",
    "1013": "logger asks for the time",
    "9011": "request answer",
    "9012": "execution result",
}


class FactorConfig(MetricMap):
    """One field of one factor as one metric: ``a34004`` + ``Rtd`` -> ``pm25_ug_m3``."""

    factor: str = Field(min_length=3, max_length=8, pattern=r"^[A-Za-z0-9]+$")
    field: Literal["Rtd", "Avg", "Min", "Max", "Cou"] = Field(
        default="Rtd",
        description="Rtd: real-time (2011); Avg, Min, Max, Cou: of a period (2051/2061/2031)",
    )

    @property
    def key(self) -> str:
        """The CP key carrying the value: ``a34004-Rtd``."""
        return f"{self.factor}-{self.field}"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.scale == 0:
            raise ValueError(f"factor {self.key!r}: scale 0 would read every value as 0")
        return self


class Hj212StationConfig(StationDeviceConfig):
    """A logger that pushes HJ212 packets to a ``[[listeners]]`` entry (``port``)."""

    driver: Literal["hj212"]
    mn: str = Field(
        pattern=r"^[0-9A-Za-z]{1,32}$",
        description="the logger's MN: 24 hex characters (HJ212-2017), 14 (2005)",
    )
    password: str = Field(pattern=r"^[0-9A-Za-z]{1,16}$", description="PW, usually 6 digits")
    data_commands: list[DataCommand] = Field(
        default_factory=lambda: list(DATA_COMMANDS),
        description="which uploads are readings: 2011 real-time, 2051 minute, 2061 hourly,"
        " 2031 daily (others are answered and counted)",
    )
    factors: list[FactorConfig] = Field(min_length=1, max_length=64)

    def station_key(self) -> str:
        return self.mn

    def describe(self) -> str:
        """How errors name it: ``device 'air-3' (hj212, MN 5001...A1)``."""
        return f"device {self.name!r} (hj212, MN {self.mn})"

    def factor_map(self) -> dict[str, FactorConfig]:
        return {f.key: f for f in self.factors}

    @model_validator(mode="after")
    def _check(self) -> Self:
        metrics = [f.metric for f in self.factors]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"{self.describe()}: metrics repeat: {metrics}")
        keys = [f.key for f in self.factors]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"{self.describe()}: factors repeat: {', '.join(repeated)}")
        return self
