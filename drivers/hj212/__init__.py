"""HJ212-2017 environmental data loggers pushing to the gateway (the platform). See README.md."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from drivers.base import DeviceConfig
from drivers.hj212.config import FactorConfig, Hj212StationConfig
from drivers.hj212.driver import Hj212Link
from drivers.stations import LinkOptions, index_stations


def link_factory(configs: Sequence[DeviceConfig], options: LinkOptions) -> Callable[[], Hj212Link]:
    """The registry's factory: for the loggers configured on one listener, a maker of the
    platform side of each link (connection). The links share one MN index."""
    stations = {
        key: config
        for key, config in index_stations(configs, Hj212StationConfig).items()
        if isinstance(config, Hj212StationConfig)
    }
    return lambda: Hj212Link(stations, options)


__all__ = ["FactorConfig", "Hj212Link", "Hj212StationConfig", "link_factory"]
