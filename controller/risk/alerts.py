"""Risk evaluation on the controller and the alert chain, routed graded and progressive.

``AlertEngine`` runs the shared rules (wire.risk) over live readings (never the backlog
lane: a replayed reading is history and raises nothing by itself) and over the gateways'
edge alerts, and turns colour changes into alert episodes, one open episode per risk point:
raised on the first crossing, updated when its colour rises, auto-resolved when the point
is back to green for its hold time. Every step is written to the alert's trail.

All alert writes are *urgent* store operations (they jump the readings queue) and put one
message per center in that center's priority outbox in the same transaction; the outbox's
priority thread is woken when it commits. Routing: the colour's tiers at once (config
``[alert_routing]``); an alert still ``raised`` (unacknowledged) at its colour's deadline
climbs one tier, street -> district -> city, and the trail says so.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from sqlite_utils import Database

import wire
from controller.config import TIER_ORDER, ControllerConfig, Tier
from controller.forwarding.routing import place_contains
from controller.risk.chain import (
    BLIND_SPOT_COLOUR,
    NEXT_STATES,
    SYSTEM,
    AlertKind,
    AlertState,
    Step,
    TransitionRefused,
    alert_row,
    merge_tiers,
    message,
    open_alert,
    rows,
)
from controller.risk.points import load_judged, load_points, register_config_points
from controller.store.sqlite import Store
from wire.clock import Clock
from wire.readable import measured
from wire.risk import BlindSpot, Colour, ColourChange, Event, RiskEvaluator, RiskPointRules

log = logging.getLogger(__name__)


def _show_cause(conn: sqlite3.Connection, alert_id: int, event: ColourChange) -> None:
    """The alert shows what made it its current colour (not what opened the episode)."""
    if event.measure is None:
        return
    conn.execute(
        "UPDATE alerts SET device = ?, metric = ?, value = ? WHERE id = ?",
        (event.device, event.metric, measured(event.measure), alert_id),
    )


@dataclass(frozen=True, slots=True)
class _Change:
    """A colour change with where it came from (the controller's evaluation or a gateway)."""

    event: ColourChange
    source: str  # "controller" or "edge:<gateway>"


class StepListener(Protocol):
    """Told of every step inside the step's own transaction (on the writer thread), and once
    that transaction committed: duty people are notified this way (controller.notify)."""

    def on_step(self, conn: sqlite3.Connection, alert: Any, action: str, category: str) -> None:
        """``alert``: the alert's row as it now is, by column name."""

    def after_commit(self) -> None: ...


Guard = Callable[[sqlite3.Connection], TransitionRefused | None]


class AlertEngine:
    def __init__(
        self,
        *,
        config: ControllerConfig,
        store: Store,
        clock: Clock,
        notify: Callable[[Iterable[str]], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.routing = config.alert_routing
        self.centers = tuple(config.centers)
        self.configured = tuple(config.risk_points)
        # The judged points (config and registry alike), replaced whole on every refresh.
        self.points: dict[str, RiskPointRules] = {}
        self._names: dict[str, str] = {}
        self.evaluator = RiskEvaluator([])
        self._notify = notify
        # Called (writer thread, after commit) with the risk points whose colour changed.
        self.on_colours: list[Callable[[dict[str, Colour]], None]] = []
        self._lock = threading.Lock()
        self._next_health_ms = 0
        self.edge_alerts_ignored = 0
        self.step_listener: StepListener | None = None

    def load(self) -> None:
        """Register the configured risk points and take up every stored one with the state
        judged before a restart: an open episode goes on, and closes by the rules."""
        now_ms = self.clock.wall_ms()
        self._next_health_ms = now_ms + int(self.routing.health_summary_interval_s * 1000)
        self.store.call(lambda db: register_config_points(db, self.configured, now_ms))
        self.refresh()
        judged = self.store.read(load_judged)
        with self._lock:  # devices are judged for blind spots from now on
            for s in judged:
                self.evaluator.restore(s.point, s.colour, cause=s.cause, blind=s.blind)
            self.evaluator.tick(now_ms)

    def refresh(self) -> None:
        """Take up the risk points as stored now: the registry API calls this after it
        created or changed one. Unchanged rules keep their state."""
        stored = self.store.read(load_points)
        now_ms = self.clock.wall_ms()
        with self._lock:
            ended = self.evaluator.set_points(stored.rules.values(), now_ms=now_ms)
            self.points, self._names = stored.rules, stored.names
        if ended:
            self._submit(list(ended), "controller")

    # -- inputs ---------------------------------------------------------------------------

    def on_live_readings(self, gateway: str, readings: Sequence[wire.Reading]) -> None:
        with self._lock:
            events: list[Event] = []
            for r in readings:
                events += self.evaluator.observe(
                    f"{gateway}.{r.device}", r.metric, r.ts_ms, r.value, r.quality.value
                )
        if events:
            self._submit(events, "controller")

    def on_edge_alert(self, gateway: str, alert: wire.EdgeAlert) -> None:
        """An alert the gateway raised with the same rules; de-duplicated by episode."""
        point = self.points.get(alert.point)
        if point is None or alert.kind != "risk" or alert.colour.rank <= alert.previous.rank:
            self.edge_alerts_ignored += 1
            return
        device = f"{gateway}.{alert.device}"
        with self._lock:  # our evaluation holds the colour too, and lowers it by the rules
            self.evaluator.hold_at_least(alert.point, alert.colour, cause=(device, alert.metric))
        change = ColourChange(
            alert.point,
            alert.previous,
            alert.colour,
            alert.ts_ms,
            device,
            alert.metric,
            alert.value,
            alert.ts_ms,
        )
        self._submit([change], f"edge:{gateway}")

    def on_device_states(self, gateway: str, states: dict[str, str]) -> None:
        with self._lock:
            for name, state in states.items():
                self.evaluator.set_maintenance(f"{gateway}.{name}", state == "maintenance")

    def tick(self) -> None:
        """Hold times, blind spots, escalation deadlines and health summaries; ~every second."""
        now_ms = self.clock.wall_ms()
        with self._lock:
            events = self.evaluator.tick(now_ms)
        due = self.store.read(
            lambda conn: conn.execute(
                "SELECT 1 FROM alerts WHERE open = 1 AND ack_deadline_ms <= ? LIMIT 1", (now_ms,)
            ).fetchone()
        )
        health = now_ms >= self._next_health_ms and any(c.tier is Tier.CITY for c in self.centers)
        if health:
            self._next_health_ms = now_ms + int(self.routing.health_summary_interval_s * 1000)
        if events or due or health:
            self._submit(events, "controller", escalate=bool(due), health=health)

    def transition(
        self, alert_id: int, to: AlertState, by: str, note: str, *, guard: Guard | None = None
    ) -> TransitionRefused | None:
        """Move an alert one step along the chain as ``by``; None when done. ``guard`` runs
        in the same transaction once the step is allowed, and may still refuse it."""
        now_ms = self.clock.wall_ms()

        def op(db: Database) -> tuple[TransitionRefused | None, set[str]]:
            row = alert_row(db.conn, alert_id)
            if row is None:
                return TransitionRefused(404, f"alert {alert_id} does not exist"), set()
            state = AlertState(row["state"])
            if to not in NEXT_STATES[state]:
                allowed = " or ".join(s.value for s in NEXT_STATES[state]) or "nothing (closed)"
                return TransitionRefused(
                    409,
                    f"alert {alert_id} is {state.value}: it can go to {allowed} next,"
                    f" not {to.value}",
                ), set()
            refused = guard(db.conn) if guard is not None else None
            if refused is not None:
                return refused, set()
            closing = to is AlertState.RESOLVED
            db.conn.execute(
                "UPDATE alerts SET state = ?, updated_ms = ?, ack_deadline_ms = NULL,"
                " open = CASE WHEN ? THEN 0 ELSE open END,"
                " closed_ms = CASE WHEN ? THEN ? ELSE closed_ms END WHERE id = ?",
                (to.value, now_ms, closing, closing, now_ms, alert_id),
            )
            return None, self._record(db.conn, alert_id, Step(to.value, now_ms, by, note))

        future = self.store.submit(op, urgent=True)
        refused, centers = future.result(timeout=10)
        self._notify(centers)
        if self.step_listener is not None:
            self.step_listener.after_commit()
        return refused

    # -- the writer side ------------------------------------------------------------------

    def _submit(
        self, events: list[Event], source: str, *, escalate: bool = False, health: bool = False
    ) -> None:
        now_ms = self.clock.wall_ms()

        def op(db: Database) -> tuple[set[str], dict[str, Colour]]:
            touched: set[str] = set()
            colours: dict[str, Colour] = {}
            for event in events:
                if isinstance(event, ColourChange):
                    touched |= self._on_change(db.conn, _Change(event, source), now_ms, colours)
                else:
                    touched |= self._on_blind_spot(db.conn, event, now_ms)
            if escalate:
                touched |= self._escalate(db.conn, now_ms)
            if health:
                touched |= self._health_summary(db.conn, now_ms)
            return touched, colours

        future = self.store.submit(op, urgent=True)
        future.add_done_callback(self._committed)

    def _committed(self, future: Future[tuple[set[str], dict[str, Colour]]]) -> None:
        if future.exception() is not None:
            return
        touched, colours = future.result()
        self._notify(touched)
        if self.step_listener is not None:
            self.step_listener.after_commit()
        if colours:
            for listener in self.on_colours:
                try:
                    listener(colours)
                except Exception:
                    log.exception("colour listener %r failed", listener)

    def _on_change(
        self, conn: sqlite3.Connection, change: _Change, now_ms: int, colours: dict[str, Colour]
    ) -> set[str]:
        event, edge = change.event, change.source != "controller"
        point = self.points.get(event.point)
        if point is None:  # its rules went away meanwhile
            return set()
        current = conn.execute("SELECT colour FROM risk_points WHERE id = ?", (point.id,))
        stored = Colour(current.fetchone()[0])
        if edge:  # a gateway raises; only the controller's own evaluation lowers
            closed = conn.execute(
                "SELECT max(closed_ms) FROM alerts WHERE point = ? AND kind = 'risk'", (point.id,)
            ).fetchone()[0]
            if closed is not None and closed >= event.at_ms:
                self.edge_alerts_ignored += 1
                return set()  # a late copy of an episode already over
        if not edge or event.after.rank > stored.rank:
            conn.execute(
                "UPDATE risk_points SET colour = ?, colour_since_ms = ? WHERE id = ?",
                (event.after.value, event.at_ms, point.id),
            )
            colours[point.id] = event.after
        cause = f"{event.device}/{event.metric}"
        if event.measure is not None:
            cause += f" = {event.measure:g}"
        by = SYSTEM if not edge else change.source
        row = open_alert(conn, point.id, AlertKind.RISK, "")
        if row is None:
            if not event.rising or event.after is Colour.GREEN:
                return set()
            alert_id = self._raise(conn, change, AlertKind.RISK, event.after, now_ms)
            return self._record(conn, alert_id, Step("raised", now_ms, by, cause))
        alert_id, peak = row["id"], Colour(row["peak_colour"])
        if event.after is Colour.GREEN:
            conn.execute(
                "UPDATE alerts SET state = 'resolved', open = 0, colour = 'green', updated_ms = ?,"
                " closed_ms = ?, ack_deadline_ms = NULL WHERE id = ?",
                (now_ms, now_ms, alert_id),
            )
            note = "back below every threshold for its hold time"
            return self._record(conn, alert_id, Step("resolved", now_ms, SYSTEM, note))
        if event.rising and event.after.rank <= Colour(row["colour"]).rank:
            return set()  # already told (by the gateway or by us): the same episode
        if event.after.rank > peak.rank:
            tiers = merge_tiers(json.loads(row["tiers"]), self.routing.route(event.after).tiers)
            deadline = now_ms + int(self.routing.route(event.after).ack_deadline_s * 1000)
            conn.execute(
                "UPDATE alerts SET colour = ?, peak_colour = ?, tiers = ?, updated_ms = ?,"
                " ack_deadline_ms = CASE WHEN state = 'raised'"
                " THEN min(coalesce(ack_deadline_ms, ?), ?) END WHERE id = ?",
                (event.after.value, event.after.value, json.dumps(tiers), now_ms, deadline,
                 deadline, alert_id),
            )  # fmt: skip
            _show_cause(conn, alert_id, event)
            return self._record(conn, alert_id, Step("colour_raised", now_ms, by, cause))
        conn.execute(
            "UPDATE alerts SET colour = ?, updated_ms = ? WHERE id = ?",
            (event.after.value, now_ms, alert_id),
        )
        _show_cause(conn, alert_id, event)
        action = "colour_raised" if event.rising else "colour_lowered"
        return self._record(conn, alert_id, Step(action, now_ms, by, cause))

    def _on_blind_spot(self, conn: sqlite3.Connection, event: BlindSpot, now_ms: int) -> set[str]:
        row = conn.execute(
            "SELECT blind_devices FROM risk_points WHERE id = ?", (event.point,)
        ).fetchone()
        if row is None or (event.blind and event.point not in self.points):
            return set()  # the point went away meanwhile
        blind = set(json.loads(row[0]))
        blind = blind | {event.device} if event.blind else blind - {event.device}
        conn.execute(
            "UPDATE risk_points SET blind_devices = ? WHERE id = ?",
            (json.dumps(sorted(blind)), event.point),
        )
        open_row = open_alert(conn, event.point, AlertKind.BLIND_SPOT, event.device)
        quiet_s = (event.at_ms - (event.last_good_ms or event.at_ms)) / 1000
        if event.blind and open_row is None:
            change = _Change(
                ColourChange(event.point, Colour.GREEN, BLIND_SPOT_COLOUR, event.at_ms,
                             event.device, "", None, event.last_good_ms),
                "controller",
            )  # fmt: skip
            alert_id = self._raise(conn, change, AlertKind.BLIND_SPOT, BLIND_SPOT_COLOUR, now_ms)
            note = f"blind spot: {event.device} has sent no good reading for {quiet_s:.0f} s"
            return self._record(conn, alert_id, Step("raised", now_ms, SYSTEM, note))
        if not event.blind and open_row is not None:
            conn.execute(
                "UPDATE alerts SET state = 'resolved', open = 0, updated_ms = ?, closed_ms = ?,"
                " ack_deadline_ms = NULL WHERE id = ?",
                (now_ms, now_ms, open_row["id"]),
            )
            note = f"{event.device} reports again"
            return self._record(conn, open_row["id"], Step("resolved", now_ms, SYSTEM, note))
        return set()

    def _raise(
        self,
        conn: sqlite3.Connection,
        change: _Change,
        kind: AlertKind,
        colour: Colour,
        now_ms: int,
    ) -> int:
        event, point = change.event, self.points[change.event.point]  # checked by callers
        route = self.routing.route(colour)
        cursor = conn.execute(
            "INSERT INTO alerts (point, kind, device, metric, value, place, colour, peak_colour,"
            " state, open, source, source_ts_ms, raised_ms, updated_ms, tiers, ack_deadline_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'raised', 1, ?, ?, ?, ?, ?, ?)",
            (
                point.id,
                kind.value,
                event.device,
                event.metric,
                None if event.measure is None else measured(event.measure),
                point.place,
                colour.value,
                colour.value,
                change.source,
                event.source_ts_ms,
                now_ms,
                now_ms,
                json.dumps(merge_tiers([], route.tiers)),
                now_ms + int(route.ack_deadline_s * 1000),
            ),
        )
        alert_id = cursor.lastrowid
        assert alert_id is not None
        return alert_id

    def _escalate(self, conn: sqlite3.Connection, now_ms: int) -> set[str]:
        touched: set[str] = set()
        due = rows(
            conn,
            "SELECT * FROM alerts WHERE open = 1 AND state = 'raised' AND ack_deadline_ms <= ?",
            (now_ms,),
        )
        for row in due:
            tiers = [Tier(t) for t in json.loads(row["tiers"])]
            top = max(TIER_ORDER.index(t) for t in tiers)
            waited_s = (now_ms - row["raised_ms"]) / 1000
            if top + 1 >= len(TIER_ORDER):
                conn.execute("UPDATE alerts SET ack_deadline_ms = NULL WHERE id = ?", (row["id"],))
                note = f"not acknowledged after {waited_s:.0f} s; the city tier already has it"
                touched |= self._record(
                    conn, row["id"], Step("deadline_missed", now_ms, SYSTEM, note)
                )
                continue
            higher = TIER_ORDER[top + 1]
            route = self.routing.route(Colour(row["peak_colour"]))
            conn.execute(
                "UPDATE alerts SET tiers = ?, ack_deadline_ms = ?, updated_ms = ? WHERE id = ?",
                (
                    json.dumps(merge_tiers(tiers, [higher])),
                    now_ms + int(route.ack_deadline_s * 1000),
                    now_ms,
                    row["id"],
                ),
            )
            note = f"not acknowledged after {waited_s:.0f} s: escalated to {higher.value}"
            touched |= self._record(conn, row["id"], Step("escalated", now_ms, SYSTEM, note))
        return touched

    def _health_summary(self, conn: sqlite3.Connection, now_ms: int) -> set[str]:
        gateways = [dict(r) for r in rows(conn, "SELECT id, place, state FROM gateways")]
        colours = dict(conn.execute("SELECT id, colour FROM risk_points").fetchall())
        body = json.dumps({"at_ms": now_ms, "gateways": gateways, "risk_points": colours})
        centers = {c.name for c in self.centers if c.tier is Tier.CITY}
        conn.executemany(
            "INSERT INTO priority_outbox (center, kind, body, enqueued_ms)"
            " VALUES (?, 'health', ?, ?)",
            [(name, body, now_ms) for name in sorted(centers)],
        )
        return centers

    def _record(self, conn: sqlite3.Connection, alert_id: int, step: Step) -> set[str]:
        """Append to the trail and queue the alert, as it now is, to every center told."""
        row = alert_row(conn, alert_id)
        assert row is not None
        action, now_ms, by, note = step.action, step.at_ms, step.by, step.note
        conn.execute(
            "INSERT INTO alert_trail (alert_id, action, state, colour, at_ms, by, note)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (alert_id, action, row["state"], row["colour"], now_ms, by, note),
        )
        if self.step_listener is not None:
            point = self.points.get(row["point"])
            category = point.category.value if point is not None else ""
            self.step_listener.on_step(conn, row, action, category)
        tiers = set(json.loads(row["tiers"]))
        centers = [
            c.name
            for c in self.centers
            if c.tier.value in tiers and place_contains(c.place, row["place"])
        ]
        body_fields = message(row, self._names.get(row["point"], row["point"]), step)
        body = json.dumps(body_fields, separators=(",", ":"))
        conn.executemany(
            "INSERT INTO priority_outbox (center, kind, body, enqueued_ms)"
            " VALUES (?, 'alerts', ?, ?)",
            [(name, body, now_ms) for name in centers],
        )
        return set(centers)
