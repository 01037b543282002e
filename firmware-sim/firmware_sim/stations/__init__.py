"""Simulated field stations that push: SL651-2014 remote stations and HJ212-2017 loggers.

Written apart from drivers/ (its own encoders: ``sl651``, ``hj212``), so a shared bug
cannot hide. ``models`` says what each station measures, ``station`` how one behaves on
its link, ``runner`` runs thousands from one thread. A scenario declares them in
``[[stations]]`` tables (``firmware_sim.scenario``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from firmware_sim.models import ModelContext
from firmware_sim.signals import Quantity
from firmware_sim.stations.models import (
    MODEL_OPTIONS,
    MODEL_PROTOCOLS,
    STATION_MODELS,
    STATION_PROTOCOLS,
    StationModel,
)
from firmware_sim.stations.runner import StationRunner
from firmware_sim.stations.station import (
    SimStation,
    StationOptions,
    StationQuirks,
    StationStats,
)

TRANSPORTS = ("tcp", "pty")
_OPTION_KEYS = {f for f in StationOptions.__dataclass_fields__ if f != "period_s"}


@dataclass(frozen=True, slots=True)
class StationSpec:
    """One ``[[stations]]`` table of a scenario."""

    name: str
    model: str  # a key of STATION_MODELS
    station: str  # SL651: the 10-hex-digit address; HJ212: the MN
    password: str
    transport: str = "tcp"  # tcp: dial in to the listener; pty: a serial line
    seed: int = 0
    inputs: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return MODEL_PROTOCOLS[self.model]

    def check(self) -> None:
        if self.model not in STATION_MODELS:
            raise ValueError(
                f"station {self.name!r}: model {self.model!r} is not one of"
                f" {sorted(STATION_MODELS)}"
            )
        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"station {self.name!r}: transport {self.transport!r} not in {TRANSPORTS}"
            )
        if self.protocol == "sl651" and (
            len(self.station) != 10 or any(c not in "0123456789ABCDEFabcdef" for c in self.station)
        ):
            raise ValueError(f"station {self.name!r}: an SL651 address is 10 hex digits")


def build_station(
    spec: StationSpec,
    *,
    quantities: Mapping[str, Quantity] | None = None,
    targets: Mapping[str, tuple[str, int]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    time_scale: float = 1.0,
) -> SimStation:
    """A station from its spec; a TCP station dials ``targets[protocol]``."""
    spec.check()
    quantities = quantities or {}
    context = ModelContext(
        seed=spec.seed,
        inputs={name: quantities[signal] for name, signal in spec.inputs.items()},
        options=spec.options,
    )
    model: StationModel = STATION_MODELS[spec.model](context)
    unknown = sorted(set(spec.options) - _OPTION_KEYS - MODEL_OPTIONS)
    if unknown:
        raise ValueError(f"station {spec.name!r}: unknown options {unknown}")
    options = StationOptions(
        period_s=model.period_s,
        **{k: v for k, v in spec.options.items() if k in _OPTION_KEYS},
    )
    target = None
    if spec.transport == "tcp":
        target = (targets or {}).get(model.protocol)
        if target is None:
            raise ValueError(
                f"station {spec.name!r} dials in over TCP: say where its {model.protocol}"
                f" listener is (--connect {model.protocol}=HOST:PORT)"
            )
    return SimStation(
        spec.name,
        model,
        key=spec.station.upper() if model.protocol == "sl651" else spec.station,
        password=spec.password,
        options=options,
        target=target,
        clock=clock,
        wall=wall,
        time_scale=time_scale,
        seed=spec.seed,
    )


__all__ = [
    "STATION_MODELS",
    "STATION_PROTOCOLS",
    "TRANSPORTS",
    "SimStation",
    "StationOptions",
    "StationQuirks",
    "StationRunner",
    "StationSpec",
    "StationStats",
    "build_station",
]
