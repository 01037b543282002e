"""What the controller does with each decoded gateway message: health, storage, forwarding.

``Fleet`` is the sink the MQTT ingest hands decoded messages to. It asks the health tracker
what a message means for the gateway's state, stores the state and every transition (logged
once), and queues readings for the store writer together with the centers that receive them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping

from sqlite_utils import Database

import wire
from controller.fleet.devices import reevaluate_devices
from controller.fleet.health import (
    GatewayHealthState,
    HealthTracker,
    StatusVerdict,
    Transition,
    clock_skew_ms,
)
from controller.fleet.once import LoggedOnce
from controller.forwarding.routing import Router
from controller.risk.alerts import AlertEngine
from controller.store.sqlite import IncomingReadings, Lane, Store, StoreError
from wire.rows import reading_to_row

log = logging.getLogger(__name__)


class Fleet:
    def __init__(
        self,
        *,
        store: Store,
        tracker: HealthTracker,
        router: Router,
        alerts: AlertEngine | None = None,
        device_stale_after_s: float = 300.0,
    ) -> None:
        self.store = store
        self.tracker = tracker
        self.router = router
        self.alerts = alerts
        self.device_stale_after_s = device_stale_after_s
        self._stale_logged = LoggedOnce()
        self._listener_failed = LoggedOnce()
        self._maintenance: dict[str, frozenset[str]] = {}
        self._station_clocks: dict[str, dict[str, int]] = {}  # gateway -> station -> ms
        self._lock = threading.Lock()
        # Called (writer thread, after commit) when a gateway comes alive: queued commands go.
        self.on_gateway_alive: list[Callable[[str], None]] = []
        self.on_command_result: Callable[[str, wire.CommandResult], None] | None = None
        self.on_health_seen: list[Callable[[str, wire.Health], None]] = []  # MQTT thread
        # Called with every batch's seqs, live or backlog, as it is queued (the gap
        # detector), and again with the seqs of a batch the store could not write.
        self.on_seqs_seen: list[Callable[[str, list[int]], None]] = []  # MQTT thread
        self.on_seqs_lost: list[Callable[[str, list[int]], None]] = []  # writer thread

    def load(self, gateway_places: Mapping[str, str]) -> None:
        """Record the configured gateways' places and take up the states stored last time."""

        def register(db: Database) -> None:
            db.execute("UPDATE gateways SET place = NULL WHERE source = 'config'")
            db.conn.executemany(
                "INSERT INTO gateways (id, place, source) VALUES (?, ?, 'config')"
                " ON CONFLICT (id) DO UPDATE SET place = excluded.place, source = 'config'",
                list(gateway_places.items()),
            )

        self.store.call(register)
        rows = self.store.read(
            lambda conn: conn.execute(
                "SELECT id, place, state, session, heartbeat_interval_s FROM gateways"
            ).fetchall()
        )
        for row in rows:
            self.tracker.restore(
                row["id"],
                GatewayHealthState(row["state"]),
                row["session"],
                row["heartbeat_interval_s"],
            )
            if row["place"] is not None:
                self.router.set_place(row["id"], row["place"])
        for gateway, name in self.store.read(
            lambda conn: conn.execute(
                "SELECT gateway, name FROM devices WHERE maintenance = 1"
            ).fetchall()
        ):
            self._set_maintenance(gateway, name, on=True)

    def _set_maintenance(self, gateway: str, device: str, *, on: bool) -> None:
        with self._lock:
            names = set(self._maintenance.get(gateway, frozenset()))
            (names.add if on else names.discard)(device)
            self._maintenance[gateway] = frozenset(names)

    def set_maintenance(self, gateway: str, device: str, *, on: bool) -> bool:
        """An operator's admin state for a device; False if the device is not known."""
        self._set_maintenance(gateway, device, on=on)
        alive = self.tracker.state_of(gateway).alive
        now_ms = self.tracker.clock.wall_ms()

        def record(db: Database) -> bool:
            cursor = db.conn.execute(
                "UPDATE devices SET maintenance = ? WHERE gateway = ? AND name = ?",
                (int(on), gateway, device),
            )
            if not cursor.rowcount:
                return False
            reevaluate_devices(
                db.conn,
                gateway,
                gateway_alive=alive,
                reported=None,
                now_ms=now_ms,
                stale_after_s=self.device_stale_after_s,
                clock_offsets_ms=self._station_clocks.get(gateway),
                clock_skew_max_s=self.tracker.limits.clock_skew_max_s,
            )
            return True

        known = self.store.call(record)
        if not known:
            self._set_maintenance(gateway, device, on=False)
        elif self.alerts is not None:  # a device in maintenance raises nothing
            self.alerts.on_device_states(gateway, {device: "maintenance" if on else "ok"})
        return known

    @property
    def stale_remembered(self) -> int:
        """How many (gateway, session) stale statuses the logged-once memory holds."""
        return len(self._stale_logged)

    # -- the ingest sink ------------------------------------------------------------------

    def on_status(self, gateway: str, status: wire.Status) -> None:
        verdict, transition = self.tracker.on_status(gateway, status)
        if verdict is StatusVerdict.STALE:
            if self._stale_logged.first((gateway, status.session)):
                log.info(
                    "gateway %s: ignored %s status of older session %d",
                    gateway,
                    status.state.value,
                    status.session,
                )
            return
        now_ms = self.tracker.clock.wall_ms()
        online = status.state is wire.GatewayState.ONLINE

        def record(db: Database) -> None:
            _ensure_gateway(db, gateway)
            db.conn.execute(
                "UPDATE gateways SET session = ?,"
                " last_birth_ms = CASE WHEN ? THEN ? ELSE last_birth_ms END,"
                " agent_version = CASE WHEN ? THEN ? ELSE agent_version END,"
                " heartbeat_interval_s = CASE WHEN ? > 0 THEN ? ELSE heartbeat_interval_s END"
                " WHERE id = ?",
                (
                    status.session,
                    online,
                    now_ms,
                    online,
                    status.agent_version,
                    status.heartbeat_interval_s,
                    status.heartbeat_interval_s,
                    gateway,
                ),
            )
            if transition is not None:
                self._transition_op(transition)(db)

        self._submit(record, transition)

    def on_health(self, gateway: str, health: wire.Health) -> None:
        for listener in self.on_health_seen:
            listener(gateway, health)
        # Pushing stations' clocks as this heartbeat reports them (kept for the judgements
        # that come without a heartbeat: a gateway transition, a maintenance change).
        self._station_clocks[gateway] = dict(health.station_clock_offsets_ms)
        now_ms = self.tracker.clock.wall_ms()
        with self._lock:
            maintenance = self._maintenance.get(gateway, frozenset())
        transition = self.tracker.on_health(
            gateway, health, received_ms=now_ms, ignore_devices=maintenance
        )
        alive = self.tracker.state_of(gateway).alive
        degraded_reasons = self.tracker.reasons_of(gateway)
        reasons = json.dumps(degraded_reasons) if degraded_reasons else None
        health_json = health.model_dump_json()
        device_states = [
            (
                gateway,
                name,
                device.state,
                device.last_good_ms,
                json.dumps(device.registers) if device.registers else None,
                now_ms,
                now_ms,
            )
            for name, device in health.devices.items()
        ]
        if self.alerts is not None:  # the agent's maintenance or an operator's admin state
            self.alerts.on_device_states(
                gateway,
                {
                    name: "maintenance" if name in maintenance else device.state
                    for name, device in health.devices.items()
                },
            )

        def record(db: Database) -> None:
            _ensure_gateway(db, gateway)
            db.conn.execute(
                "UPDATE gateways SET last_heartbeat_ms = ?, heartbeat_interval_s = ?,"
                " health_json = ?, session = max(coalesce(session, 0), ?), clock_skew_ms = ?,"
                " reported_config_hash = ?, degraded_reasons = ? WHERE id = ?",
                (
                    now_ms,
                    health.heartbeat_interval_s,
                    health_json,
                    health.session,
                    clock_skew_ms(health, now_ms),
                    health.config_hash or None,
                    reasons,
                    gateway,
                ),
            )
            db.conn.executemany(
                "INSERT INTO devices (gateway, name, state, last_good_ms, health_registers,"
                " first_seen_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (gateway, name) DO UPDATE SET"
                " state = excluded.state, updated_ms = excluded.updated_ms,"
                " health_registers = excluded.health_registers,"
                # NULL while neither side has seen a good reading (0 read as 1970).
                " last_good_ms = nullif(max(coalesce(devices.last_good_ms, 0),"
                " coalesce(excluded.last_good_ms, 0)), 0)",
                device_states,
            )
            _record_transition(db, transition)
            reevaluate_devices(
                db.conn,
                gateway,
                gateway_alive=alive,
                reported=health.devices,
                now_ms=now_ms,
                stale_after_s=self.device_stale_after_s,
                clock_offsets_ms=self._station_clocks.get(gateway),
                clock_skew_max_s=self.tracker.limits.clock_skew_max_s,
            )

        self._submit(record, transition)

    def handle_command_result(self, gateway: str, result: wire.CommandResult) -> None:
        if self.on_command_result is not None:
            self.on_command_result(gateway, result)

    def on_readings(
        self,
        gateway: str,
        lane: Lane,
        batch: wire.ReadingBatch,
        on_stored: Callable[[], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
    ) -> None:
        """Judge live readings, then queue the batch for the store; exactly one of
        ``on_stored`` / ``on_failed(why)`` runs once the store is done with it."""
        transition = self.tracker.on_data(gateway, batch.session)
        # Judge live readings before queueing them: an alert jumps the store's queue, while
        # a replayed backlog is history and raises nothing by itself.
        if lane is Lane.LIVE and self.alerts is not None:
            self.alerts.on_live_readings(gateway, batch.readings)
        if transition is not None:
            self._submit(self._transition_op(transition), transition)
        seqs = [r.seq for r in batch.readings]
        # Seen before they are queued: if the store gives up on the batch, the same seqs go
        # back as lost, after they were seen, so the gap tracker asks for them again.
        self._tell(self.on_seqs_seen, gateway, seqs)

        def failed(why: str) -> None:
            self._tell(self.on_seqs_lost, gateway, seqs)
            if on_failed is not None:
                on_failed(why)

        try:
            self.store.put_readings(
                IncomingReadings(
                    gateway=gateway,
                    lane=lane,
                    session=batch.session,
                    rows=[reading_to_row(r) for r in batch.readings],
                    received_ms=self.tracker.clock.wall_ms(),
                    centers=self.router.centers_for(gateway),
                    on_stored=on_stored,
                    on_failed=failed,
                )
            )
        except StoreError:
            self._tell(self.on_seqs_lost, gateway, seqs)
            raise

    def _tell(
        self, listeners: list[Callable[[str, list[int]], None]], gateway: str, seqs: list[int]
    ) -> None:
        """The gap tracker's trouble is never the batch's: a listener that fails is logged
        (once per gateway) and the batch goes on to the store."""
        for listener in listeners:
            try:
                listener(gateway, seqs)
            except Exception:
                if self._listener_failed.first(gateway):
                    log.exception("gateway %s: a listener for readings seqs failed", gateway)

    def on_edge_alert(self, gateway: str, alert: wire.EdgeAlert) -> None:
        if self.alerts is not None:
            self.alerts.on_edge_alert(gateway, alert)

    def check_health(self) -> None:
        for transition in self.tracker.check():
            self._submit(self._transition_op(transition), transition)

    def _transition_op(self, transition: Transition) -> Callable[[Database], None]:
        def record(db: Database) -> None:
            _record_transition(db, transition)
            reevaluate_devices(
                db.conn,
                transition.gateway,
                gateway_alive=transition.to_state.alive,
                reported=None,
                now_ms=transition.at_ms,
                stale_after_s=self.device_stale_after_s,
                clock_offsets_ms=self._station_clocks.get(transition.gateway),
                clock_skew_max_s=self.tracker.limits.clock_skew_max_s,
            )

        return record

    def _submit(self, op: Callable[[Database], None], transition: Transition | None) -> None:
        if transition is not None:
            log.info(
                "gateway %s: %s -> %s (%s)",
                transition.gateway,
                transition.from_state.value,
                transition.to_state.value,
                transition.reason,
            )
        future = self.store.submit(op)
        if transition is not None and transition.to_state.alive and self.on_gateway_alive:
            gateway = transition.gateway
            future.add_done_callback(lambda _: self._alive(gateway))

    def _alive(self, gateway: str) -> None:
        for listener in self.on_gateway_alive:
            try:
                listener(gateway)
            except Exception:
                log.exception("gateway %s: a listener for 'alive' failed", gateway)


def _ensure_gateway(db: Database, gateway: str) -> None:
    db.conn.execute("INSERT OR IGNORE INTO gateways (id) VALUES (?)", (gateway,))


def _record_transition(db: Database, transition: Transition | None) -> None:
    if transition is None:
        return
    _ensure_gateway(db, transition.gateway)
    db.conn.execute(
        "UPDATE gateways SET state = ?, state_reason = ?, state_since_ms = ? WHERE id = ?",
        (transition.to_state.value, transition.reason, transition.at_ms, transition.gateway),
    )
    db.conn.execute(
        "INSERT INTO gateway_transitions (gateway, from_state, to_state, reason, at_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            transition.gateway,
            transition.from_state.value,
            transition.to_state.value,
            transition.reason,
            transition.at_ms,
        ),
    )


def health_of(row_json: str | None) -> dict[str, object] | None:
    """The stored last health message as a dict (None before the first heartbeat)."""
    if not row_json:
        return None
    value = json.loads(row_json)
    return value if isinstance(value, dict) else None
