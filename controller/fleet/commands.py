"""Commands to gateways: validated requests, a stored lifecycle, MQTT out, results in.

Lifecycle: ``queued`` (stored; waits while its gateway is offline) -> ``delivered`` (the
broker acknowledged it for an online gateway, or the agent answered ``accepted``) ->
``succeeded`` / ``failed`` (the agent's ``cmd-result``) or ``expired`` (its deadline passed
first). A command goes out as ``wire.CommandRequest`` on ``edgewatch/v1/<gw>/cmd/<id>`` at
QoS 1. There is no remote shell: only the types below, each with its own argument model
(``wire.commands``, shared with the agent).
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database

import wire
from controller.access import AuditEntry, Principal, record_audit
from controller.fleet.health import HealthTracker
from controller.store.sqlite import Store
from wire.clock import Clock
from wire.supervision import FailureLog, run_once

log = logging.getLogger(__name__)

DeadlineS = Annotated[float, Field(gt=0, le=7 * 86400, description="seconds from now")]


class CommandState(StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


FINAL_STATES = frozenset({CommandState.SUCCEEDED, CommandState.FAILED, CommandState.EXPIRED})


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deadline_s: DeadlineS = 300.0


class PingCommand(_Command):
    type: Literal["ping"]
    args: wire.NoArgs = wire.NoArgs()


class PollNowCommand(_Command):
    type: Literal["poll-now"]
    args: wire.PollNowArgs = wire.PollNowArgs()


class SetIntervalCommand(_Command):
    type: Literal["set-interval"]
    args: wire.SetIntervalArgs


class MaintenanceCommand(_Command):
    type: Literal["maintenance"]
    args: wire.MaintenanceArgs


class ReloadConfigCommand(_Command):
    type: Literal["reload-config"]
    args: wire.ReloadConfigArgs


class ReplayCommand(_Command):
    type: Literal["replay"]
    args: wire.ReplayArgs


class RestartCommand(_Command):
    type: Literal["restart"]
    args: wire.NoArgs = wire.NoArgs()


CommandIn = Annotated[
    PingCommand
    | PollNowCommand
    | SetIntervalCommand
    | MaintenanceCommand
    | ReloadConfigCommand
    | ReplayCommand
    | RestartCommand,
    Field(discriminator="type"),
]


class CommandOut(BaseModel):
    id: str
    gateway: str
    type: wire.CommandType
    args: dict[str, Any]
    state: CommandState
    detail: str
    actor: str
    created_ms: int
    deadline_ms: int
    published_ms: int | None
    delivered_ms: int | None
    finished_ms: int | None


_COLUMNS = (
    "id, gateway, type, args_json, state, detail, actor, created_ms, deadline_ms,"
    " published_ms, delivered_ms, finished_ms"
)


def _out(row: sqlite3.Row | tuple[Any, ...]) -> CommandOut:
    names = [c.strip() for c in _COLUMNS.split(",")]
    fields = dict(zip(names, row, strict=True))
    fields["args"] = json.loads(fields.pop("args_json"))
    return CommandOut.model_validate(fields)


def get_command(conn: sqlite3.Connection, gateway: str, command_id: str) -> CommandOut | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM commands WHERE id = ? AND gateway = ?",  # noqa: S608
        (command_id, gateway),
    ).fetchone()
    return _out(row) if row else None


def list_commands(
    conn: sqlite3.Connection, gateway: str, *, state: CommandState | None, limit: int, offset: int
) -> list[CommandOut]:
    sql = f"SELECT {_COLUMNS} FROM commands WHERE gateway = ?"  # noqa: S608
    params: list[Any] = [gateway]
    if state is not None:
        sql += " AND state = ?"
        params.append(state.value)
    rows = conn.execute(
        sql + " ORDER BY created_ms DESC, id LIMIT ? OFFSET ?", [*params, limit, offset]
    )
    return [_out(row) for row in rows]


def outcome_counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    rows = conn.execute("SELECT type, state, count(*) FROM commands GROUP BY type, state")
    return {(row[0], row[1]): int(row[2]) for row in rows}


Publish = Callable[[str, bytes], "mqtt.MQTTMessageInfo | None"]


class Commands:
    """Stores commands, sends them when their gateway is alive, expires them at the deadline."""

    def __init__(
        self,
        *,
        store: Store,
        tracker: HealthTracker,
        publish: Publish,
        clock: Clock,
        tick_s: float = 0.2,
    ) -> None:
        self.store = store
        self.tracker = tracker
        self.publish = publish
        self.clock = clock
        self.tick_s = tick_s
        self._in_flight: dict[str, mqtt.MQTTMessageInfo] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unknown_logged: set[str] = set()

    # -- API side ------------------------------------------------------------------------

    def create(
        self, gateway: str, place: str | None, command: _Command, actor: Principal
    ) -> CommandOut:
        now_ms = self.clock.wall_ms()
        command_id = "c" + secrets.token_hex(8)
        kind: str = getattr(command, "type")  # noqa: B009 (every subclass has it)
        args = getattr(command, "args")  # noqa: B009
        args_json = json.dumps(args.model_dump(mode="json"), sort_keys=True)
        deadline_ms = now_ms + int(command.deadline_s * 1000)

        def insert(db: Database) -> CommandOut:
            db.execute(
                "INSERT INTO commands (id, gateway, type, args_json, state, actor, actor_role,"
                " place, created_ms, deadline_ms) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                (
                    command_id,
                    gateway,
                    kind,
                    args_json,
                    actor.name,
                    actor.role.value,
                    place,
                    now_ms,
                    deadline_ms,
                ),
            )
            record_audit(
                db,
                AuditEntry(
                    actor,
                    "command.create",
                    f"gateway:{gateway}",
                    place,
                    {"command": command_id, "type": kind, "args": json.loads(args_json)},
                    "queued",
                ),
                now_ms=now_ms,
            )
            found = get_command(db.conn, gateway, command_id)
            assert found is not None
            return found

        created = self.store.call(insert)
        self._wake.set()
        return created

    # -- MQTT side -----------------------------------------------------------------------

    def on_result(self, gateway: str, result: wire.CommandResult) -> None:
        """A ``cmd-result`` from ``gateway`` (MQTT thread): move the command along."""
        now_ms = self.clock.wall_ms()

        def apply(db: Database) -> None:
            row = db.execute(
                "SELECT state, id FROM commands WHERE id = ? AND gateway = ?",
                (result.id, gateway),
            ).fetchone()
            if row is None:
                if result.id not in self._unknown_logged:
                    self._unknown_logged.add(result.id)
                    log.warning("gateway %s answered unknown command %s", gateway, result.id)
                return
            state = CommandState(row[0])
            if state in FINAL_STATES:
                return  # late (e.g. after expiry): the lifecycle does not go back
            if result.outcome == "accepted":
                db.execute(
                    "UPDATE commands SET state = 'delivered',"
                    " delivered_ms = coalesce(delivered_ms, ?) WHERE id = ?",
                    (now_ms, result.id),
                )
                return
            final = CommandState(result.outcome)
            db.execute(
                "UPDATE commands SET state = ?, detail = ?, finished_ms = ?,"
                " delivered_ms = coalesce(delivered_ms, ?) WHERE id = ?",
                (final.value, result.detail, now_ms, now_ms, result.id),
            )
            self._audit_final(db, result.id, final, result.detail, now_ms)

        self.store.submit(apply)

    @staticmethod
    def _audit_final(
        db: Database, command_id: str, state: CommandState, detail: str, now_ms: int
    ) -> None:
        """The command's outcome joins its creation in the audit log, under the same actor."""
        db.execute(
            "INSERT INTO audit (at_ms, actor, role, action, target, place, detail, outcome)"
            " SELECT ?, actor, actor_role, 'command.finish', 'gateway:' || gateway, place,"
            " json_object('command', id, 'type', type, 'detail', ?), ? FROM commands WHERE id = ?",
            (now_ms, detail[:512], state.value, command_id),
        )

    # -- the dispatcher thread -------------------------------------------------------------

    def gateway_alive(self, gateway: str) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="commands", daemon=False)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stopping.set()
        self._wake.set()
        if thread is not None:
            thread.join(5)

    def _run(self) -> None:
        failures = FailureLog(log, "command dispatch")
        while not self._stopping.is_set():
            self._wake.wait(self.tick_s)
            self._wake.clear()
            run_once(self.tick, failures)

    def tick(self) -> None:
        """Send what waits for an alive gateway, mark what the broker took, expire the late."""
        now_ms = self.clock.wall_ms()
        waiting = self.store.read(
            lambda conn: conn.execute(
                "SELECT id, gateway, type, args_json, deadline_ms FROM commands"
                " WHERE state = 'queued' AND published_ms IS NULL AND deadline_ms > ?",
                (now_ms,),
            ).fetchall()
        )
        for command_id, gateway, kind, args_json, deadline_ms in waiting:
            if self.tracker.state_of(gateway).alive:
                self._send(command_id, gateway, kind, args_json, deadline_ms)
        self._mark_delivered()
        self.store.call(lambda db: self._expire(db, now_ms))

    def _send(
        self, command_id: str, gateway: str, kind: str, args_json: str, deadline_ms: int
    ) -> None:
        request = wire.CommandRequest(
            id=command_id, type=kind, args=json.loads(args_json), deadline_ms=deadline_ms
        )
        topic = wire.topic_for(gateway, wire.TopicKind.CMD, command_id)
        info = self.publish(topic, wire.encode(request))
        if info is None or info.rc != mqtt.MQTT_ERR_SUCCESS:
            return  # not connected: the next tick tries again
        now_ms = self.clock.wall_ms()
        self.store.call(
            lambda db: db.execute(
                "UPDATE commands SET published_ms = ? WHERE id = ?", (now_ms, command_id)
            )
        )
        with self._lock:
            self._in_flight[command_id] = info

    def _mark_delivered(self) -> None:
        with self._lock:
            done = [cid for cid, info in self._in_flight.items() if info.is_published()]
            for cid in done:
                del self._in_flight[cid]
        if not done:
            return
        now_ms = self.clock.wall_ms()

        def mark(db: Database) -> None:
            db.conn.executemany(
                "UPDATE commands SET state = 'delivered', delivered_ms = coalesce(delivered_ms, ?)"
                " WHERE id = ? AND state = 'queued'",
                [(now_ms, cid) for cid in done],
            )

        self.store.call(mark)

    def _expire(self, db: Database, now_ms: int) -> None:
        late = db.execute(
            "SELECT id, state FROM commands"
            " WHERE state IN ('queued', 'delivered') AND deadline_ms <= ?",
            (now_ms,),
        ).fetchall()
        for command_id, state in late:
            detail = f"deadline passed while {state}"
            db.execute(
                "UPDATE commands SET state = 'expired', detail = ?, finished_ms = ? WHERE id = ?",
                (detail, now_ms, command_id),
            )
            self._audit_final(db, command_id, CommandState.EXPIRED, detail, now_ms)
            with self._lock:
                self._in_flight.pop(command_id, None)
