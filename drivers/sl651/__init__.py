"""SL651-2014 hydrological remote stations pushing to the gateway (the centre). See README.md."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from drivers.base import DeviceConfig
from drivers.sl651.config import ElementConfig, Sl651StationConfig
from drivers.sl651.driver import Sl651Link
from drivers.stations import LinkOptions, index_stations


def link_factory(configs: Sequence[DeviceConfig], options: LinkOptions) -> Callable[[], Sl651Link]:
    """The registry's factory: for the stations configured on one listener, a maker of
    the centre side of each link (connection). The links share one station index."""
    stations = {
        key: config
        for key, config in index_stations(configs, Sl651StationConfig).items()
        if isinstance(config, Sl651StationConfig)
    }
    return lambda: Sl651Link(stations, options)


__all__ = ["ElementConfig", "Sl651Link", "Sl651StationConfig", "link_factory"]
