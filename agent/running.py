"""What the command handlers, the heartbeat and ``status.json`` see of the running agent.

``agent.agent.Agent`` satisfies this protocol; the modules that read the running agent
(``agent.uplink.handlers``, ``agent.uplink.health_report``, ``agent.status_file``) depend on
it instead of on ``Agent`` itself, so no import circle runs through ``agent.agent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from agent.buffer.intake import Intake
from agent.buffer.store import Buffer
from agent.bus.ports import PortOwner
from agent.config import AgentConfig
from agent.edge_rules import EdgeRules
from agent.local_state import Maintenance, Overrides
from agent.stations.book import StationBook
from agent.stations.server import StationServer
from agent.uplink.publisher import Publisher
from agent.uplink.session import MqttSession
from wire.risk import RuleSet


class RunningAgent(Protocol):
    """The running agent's parts and the operations commands may ask of it."""

    config: AgentConfig
    config_version: int | None
    version: str
    buffer: Buffer
    intake: Intake
    ports: list[PortOwner]
    station_book: StationBook
    stations: StationServer | None
    station_alarms_unrouted: int
    session: MqttSession
    publisher: Publisher
    edge_rules: EdgeRules
    overrides: Overrides
    maintenance: Maintenance

    def uptime_s(self) -> float: ...

    def reload_config(
        self, document: Mapping[str, Any], *, version: int, expected_hash: str
    ) -> tuple[bool, str]: ...

    def set_rules(self, rules: RuleSet, *, expected_hash: str) -> tuple[bool, str]: ...
