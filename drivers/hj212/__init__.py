"""HJ212-2017 environmental data loggers pushing to the gateway (the platform). See README.md."""

from __future__ import annotations

from drivers.hj212.config import FactorConfig, Hj212StationConfig
from drivers.hj212.driver import Hj212Link
from drivers.stations import link_factory_for

link_factory = link_factory_for(Hj212StationConfig, Hj212Link)

__all__ = ["FactorConfig", "Hj212Link", "Hj212StationConfig", "link_factory"]
