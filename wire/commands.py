"""Commands to gateways as part of the MQTT contract: their type names and argument models.

A command travels as ``wire.CommandRequest`` (``type`` and ``args``); the controller
validates ``args`` with these models before it stores and sends one, the agent again before
it runs one (``agent.uplink.handlers``; ``replay`` checks its two seqs by hand, against the same
``MAX_REPLAY_SPAN``), so both sides hold one definition. Pure, no I/O.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from wire.payloads import MAX_PAYLOAD_BYTES, MAX_SEQ
from wire.risk_rules import RuleSet

DeviceName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
MAX_REPLAY_SPAN = 1_000_000
# An agent config pushed with reload-config, as canonical JSON (sorted keys, compact). It
# travels inside a CommandRequest, which must stay under MAX_PAYLOAD_BYTES: the rest is
# room for the envelope and for JSON escapes the canonical form writes differently.
MAX_CONFIG_BYTES = MAX_PAYLOAD_BYTES - 64 * 1024


def canonical_json(document: dict[str, Any]) -> str:
    """A config as canonical JSON: what its size is measured on and its hash is taken of."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)


def check_config_size(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` if its canonical JSON fits MAX_CONFIG_BYTES, else ValueError (a validator
    of every model that carries an agent config)."""
    size = len(canonical_json(config).encode())
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"is {size} bytes, larger than {MAX_CONFIG_BYTES} bytes")
    return config


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

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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


AgentConfigDocument = Annotated[dict[str, Any], AfterValidator(check_config_size)]


class ReloadConfigArgs(CommandArgs):
    config: AgentConfigDocument
    version: Annotated[int, Field(ge=1, le=2**31)]
    hash: Sha256Hex


class ReplayArgs(CommandArgs):
    from_seq: Annotated[int, Field(ge=1, le=MAX_SEQ)]
    to_seq: Annotated[int, Field(ge=1, le=MAX_SEQ)]

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
