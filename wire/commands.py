"""Commands to gateways as part of the MQTT contract: their type names and argument models.

A command travels as ``wire.CommandRequest`` (``type`` and ``args``); the controller
validates ``args`` with these models before it stores and sends one, the agent again before
it runs one (``agent.uplink.handlers``; ``replay`` checks its two seqs by hand, against the same
``MAX_REPLAY_SPAN``), so both sides hold one definition. Pure, no I/O.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wire.risk_rules import RuleSet

DeviceName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
MAX_REPLAY_SPAN = 1_000_000


class CommandType(StrEnum):
    PING = "ping"
    POLL_NOW = "poll-now"
    SET_INTERVAL = "set-interval"
    MAINTENANCE = "maintenance"
    RELOAD_CONFIG = "reload-config"
    REPLAY = "replay"
    RESTART = "restart"
    SET_RULES = "set-rules"  # the controller's own, not the API's: controller.edge_rules


class CommandArgs(BaseModel):
    """The base of every argument model: no unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(CommandArgs):
    pass


class PollNowArgs(CommandArgs):
    device: DeviceName | None = None  # None: every device


class SetIntervalArgs(CommandArgs):
    device: DeviceName
    interval_s: Annotated[float, Field(ge=0.1, le=86400)]


class MaintenanceArgs(CommandArgs):
    device: DeviceName
    on: bool


class ReloadConfigArgs(CommandArgs):
    config: dict[str, Any]
    version: Annotated[int, Field(ge=1)]
    hash: Sha256Hex


class ReplayArgs(CommandArgs):
    from_seq: Annotated[int, Field(ge=1, le=2**62)]
    to_seq: Annotated[int, Field(ge=1, le=2**62)]

    @model_validator(mode="after")
    def _range(self) -> ReplayArgs:
        if self.to_seq < self.from_seq:
            raise ValueError("to_seq must be at least from_seq")
        if self.to_seq - self.from_seq >= MAX_REPLAY_SPAN:
            raise ValueError(f"a replay covers at most {MAX_REPLAY_SPAN} seqs")
        return self


class SetRulesArgs(CommandArgs):
    rules: RuleSet
    hash: Sha256Hex
