"""Which tier centers receive what a gateway reports, decided by place.

Places are slash paths, ``city/district/street[/grid]``. A center receives the readings of
gateways whose place lies at or below its own; a gateway without a configured place is
reported to the city-tier centers only (someone at the top must see an unplaced gateway).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controller.config import CenterConfig, Tier


def place_contains(outer: str, inner: str) -> bool:
    """True if ``inner`` is ``outer`` or lies below it ("cq" contains "cq/yuzhong")."""
    return inner == outer or inner.startswith(outer + "/")


class Router:
    """Maps a gateway id to the names of the centers that receive its readings."""

    def __init__(self, centers: Iterable[CenterConfig], gateway_places: Mapping[str, str]) -> None:
        self._centers = tuple(centers)
        self._places = dict(gateway_places)
        self._cache: dict[str, tuple[str, ...]] = {}

    def set_place(self, gateway: str, place: str | None) -> None:
        """A gateway's place changed (registry): route its next readings by the new place."""
        if place is None:
            self._places.pop(gateway, None)
        else:
            self._places[gateway] = place
        self._cache.pop(gateway, None)

    def place_of(self, gateway: str) -> str | None:
        return self._places.get(gateway)

    def centers_for(self, gateway: str) -> tuple[str, ...]:
        cached = self._cache.get(gateway)
        if cached is None:
            place = self._places.get(gateway)
            cached = tuple(
                c.name
                for c in self._centers
                if (c.tier is Tier.CITY if place is None else place_contains(c.place, place))
            )
            self._cache[gateway] = cached
        return cached
