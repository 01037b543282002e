"""Operating gateways: commands, versioned config and the audit log."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlite_utils import Database

from controller.access import AuditEntry, record_audit
from controller.api.deps import (
    BackendDep,
    GatewayId,
    Operator,
    PageDep,
    Viewer,
    scoped_gateway,
    unprocessable,
)
from controller.fleet import configs
from controller.fleet.commands import (
    CommandIn,
    CommandOut,
    CommandState,
    DeadlineS,
    MaintenanceCommand,
    ReloadConfigCommand,
    get_command,
    list_commands,
)
from controller.fleet.configs import ConfigState, ConfigVersion
from controller.fleet.queries import Where
from wire import ReloadConfigArgs
from wire.pushed_config import gateway_owned_keys
from wire.pushed_config import refusal as owned_key_refusal

commands = APIRouter(prefix="/gateways/{gateway_id}", tags=["commands", "config"])
audit = APIRouter(prefix="/audit", tags=["audit"])

CommandId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@commands.post("/commands", response_model=CommandOut, status_code=201)
def create_command(
    gateway_id: GatewayId,
    command: Annotated[CommandIn, Body()],
    backend: BackendDep,
    principal: Operator,
) -> CommandOut:
    """Queue a command; it goes out when the gateway is online, or expires at its deadline."""
    place = scoped_gateway(backend, principal, gateway_id)
    if isinstance(command, ReloadConfigCommand):
        refuse_gateway_owned_keys(command.args.config, "args.config")
    if isinstance(command, MaintenanceCommand):
        device = command.args.device
        if not backend.fleet.set_maintenance(gateway_id, device, on=command.args.on):
            raise HTTPException(
                status_code=404,
                detail=f"args.device: device {device!r} of gateway {gateway_id!r} is not known",
            )
    return backend.commands.create(gateway_id, place, command, principal)


@commands.get("/commands", response_model=list[CommandOut])
def list_gateway_commands(
    gateway_id: GatewayId,
    backend: BackendDep,
    principal: Viewer,
    page: PageDep,
    state: CommandState | None = None,
) -> list[CommandOut]:
    scoped_gateway(backend, principal, gateway_id)
    return backend.store.read(
        lambda conn: list_commands(
            conn, gateway_id, state=state, limit=page.limit, offset=page.offset
        )
    )


@commands.get("/commands/{command_id}", response_model=CommandOut)
def get_gateway_command(
    gateway_id: GatewayId, command_id: CommandId, backend: BackendDep, principal: Viewer
) -> CommandOut:
    scoped_gateway(backend, principal, gateway_id)
    found = backend.store.read(lambda conn: get_command(conn, gateway_id, command_id))
    if found is None:
        raise HTTPException(
            status_code=404,
            detail=f"command {command_id!r} of gateway {gateway_id!r} is not known",
        )
    return found


# -- versioned config -------------------------------------------------------------------------


def refuse_gateway_owned_keys(config: dict[str, Any], field: str) -> None:
    """422 naming the first key of ``config`` that only the gateway's agent.toml may set
    (``wire.pushed_config``): a file to read, a host to dial, a write to a field device."""
    owned = gateway_owned_keys(config)
    if owned:
        raise unprocessable(field, owned_key_refusal(owned[0]))


class ConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] = Field(description="the agent config as a JSON object")

    @field_validator("config")
    @classmethod
    def _size(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(configs.canonical(value)) > configs.MAX_CONFIG_BYTES:
            raise ValueError(f"is larger than {configs.MAX_CONFIG_BYTES} bytes")
        return value

    @field_validator("config")
    @classmethod
    def _gateway_owned(cls, value: dict[str, Any]) -> dict[str, Any]:
        owned = gateway_owned_keys(value)
        if owned:
            raise ValueError(owned_key_refusal(owned[0]))
        return value


class ConfigSetOut(BaseModel):
    changed: bool  # False: identical to the latest version, nothing new stored
    desired: ConfigVersion


class PushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Annotated[int | None, Field(ge=1, le=2**31)] = None  # None: the latest
    deadline_s: DeadlineS = 300.0


@commands.get("/config", response_model=ConfigState)
def get_config(gateway_id: GatewayId, backend: BackendDep, principal: Viewer) -> ConfigState:
    """The desired config (latest version), the hash the agent reports, and the drift."""
    scoped_gateway(backend, principal, gateway_id)
    return backend.store.read(lambda conn: configs.config_state(conn, gateway_id))


@commands.put("/config", response_model=ConfigSetOut)
def set_config(
    gateway_id: GatewayId, body: ConfigIn, backend: BackendDep, principal: Operator
) -> ConfigSetOut:
    place = scoped_gateway(backend, principal, gateway_id)
    now_ms = backend.clock.wall_ms()

    def store(db: Database) -> ConfigSetOut:
        version, changed = configs.set_desired(
            db, gateway_id, body.config, actor=principal.name, now_ms=now_ms
        )
        record_audit(
            db,
            AuditEntry(
                principal,
                "config.set",
                f"gateway:{gateway_id}",
                place,
                {"version": version.version, "hash": version.hash},
                "ok" if changed else "unchanged",
            ),
            now_ms=now_ms,
        )
        return ConfigSetOut(changed=changed, desired=version)

    return backend.store.call(store)


@commands.get("/config/versions", response_model=list[ConfigVersion])
def config_versions(
    gateway_id: GatewayId, backend: BackendDep, principal: Viewer, page: PageDep
) -> list[ConfigVersion]:
    scoped_gateway(backend, principal, gateway_id)
    return backend.store.read(
        lambda conn: configs.list_versions(conn, gateway_id, limit=page.limit, offset=page.offset)
    )


@commands.post("/config/push", response_model=CommandOut, status_code=201)
def push_config(
    gateway_id: GatewayId, body: PushIn, backend: BackendDep, principal: Operator
) -> CommandOut:
    """Send a desired config version to the agent as a ``reload-config`` command."""
    place = scoped_gateway(backend, principal, gateway_id)
    found = backend.store.read(lambda conn: configs.get_version(conn, gateway_id, body.version))
    if found is None or found.config is None:
        what = f"version {body.version}" if body.version else "a desired config"
        raise HTTPException(
            status_code=404, detail=f"version: gateway {gateway_id!r} has no {what}"
        )
    refuse_gateway_owned_keys(found.config, "version")  # stored before this rule existed
    command = ReloadConfigCommand(
        type="reload-config",
        args=ReloadConfigArgs(config=found.config, version=found.version, hash=found.hash),
        deadline_s=body.deadline_s,
    )
    return backend.commands.create(gateway_id, place, command, principal)


# -- audit --------------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    at_ms: int
    actor: str
    role: str
    action: str
    target: str
    place: str | None
    detail: dict[str, Any]
    outcome: str


@audit.get("", response_model=list[AuditOut])
def list_audit(
    backend: BackendDep,
    principal: Operator,
    page: PageDep,
    action: Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z.-]+$")] = None,
) -> list[AuditOut]:
    """Who did what, when, with what outcome; newest first. Scoped by the token's place, for
    every role: an admin of a district sees what was done in its district (and below), and
    nothing unplaced."""
    where = Where().equals("action", action).within("place", principal.place)
    columns = "id, at_ms, actor, role, action, target, place, detail, outcome"
    sql = f"SELECT {columns} FROM audit WHERE {where.sql} ORDER BY id DESC LIMIT ? OFFSET ?"  # noqa: S608
    rows = backend.store.read(
        lambda conn: conn.execute(sql, [*where.params, page.limit, page.offset]).fetchall()
    )
    return [
        AuditOut.model_validate({**dict(row), "detail": json.loads(row["detail"])}) for row in rows
    ]
