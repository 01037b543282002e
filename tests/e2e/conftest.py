"""The whole system as real processes: centers, controller, simulators and agents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewatch.broker import Mosquitto
from edgewatch.processes import ProcessGroup
from edgewatch.system import GATEWAYS, LocalSystem


@pytest.fixture
def gateway_places() -> dict[str, str]:
    """The gateways the controller's config places (id -> place); a module may override it."""
    return dict(GATEWAYS)


@pytest.fixture
def system(
    tmp_path: Path, mosquitto: Mosquitto, gateway_places: dict[str, str]
) -> Iterator[LocalSystem]:
    """Three reference centers and the controller, running; gateways are added by the test."""
    with ProcessGroup(tmp_path / "logs") as procs:
        local = LocalSystem(tmp_path, mosquitto.port, procs, places=gateway_places)
        local.start_centers()
        local.start_controller()
        yield local
