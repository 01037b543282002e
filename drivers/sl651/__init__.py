"""SL651-2014 hydrological remote stations pushing to the gateway (the centre). See README.md."""

from __future__ import annotations

from drivers.sl651.config import ElementConfig, Sl651StationConfig
from drivers.sl651.driver import Sl651Link
from drivers.stations import link_factory_for

link_factory = link_factory_for(Sl651StationConfig, Sl651Link)

__all__ = ["ElementConfig", "Sl651Link", "Sl651StationConfig", "link_factory"]
