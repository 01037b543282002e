"""Who is told of an alert, and when: the duty people of the layers a routing rule names,
at once; then, while nobody acknowledges, the next layer up at each deadline (grid ->
community -> street -> district -> city).

``DutyNotifier.on_step`` runs on the store's writer thread inside the transaction of the
alert step that caused it (``controller.risk.alerts.AlertEngine``), so an alert is never
raised without its notifications queued, and never queued twice: the outbox rows, the
recipients (one per person and step: their links) and the trail entry commit together.
``tick`` (about every second) escalates episodes past their deadline. Rosters are held in
memory, replaced whole by ``refresh`` when the config or the API changes one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from controller.config import AlertRoutingConfig
from controller.forwarding.routing import place_contains
from controller.notify.config import (
    LAYER_ORDER,
    Layer,
    NotifyConfig,
    NotifyRoute,
    RosterBody,
    RosterConfig,
)
from controller.notify.rosters import OnDuty, on_duty
from controller.store import notify as notify_store
from controller.store.sqlite import Store
from wire.clock import Clock
from wire.risk import Colour

log = logging.getLogger(__name__)

SYSTEM = "system"
MAX_NAMES_IN_TRAIL = 20


@dataclass(frozen=True, slots=True)
class Told:
    """What one step told: per layer, who (an empty list: nobody on duty there)."""

    layers: dict[Layer, list[OnDuty]]

    @property
    def anyone(self) -> bool:
        return any(self.layers.values())

    def note(self) -> str:
        parts, nobody = [], []
        for layer, people in self.layers.items():
            if not people:
                nobody.append(layer.value)
                continue
            names = ", ".join(p.person.name for p in people[:MAX_NAMES_IN_TRAIL])
            more = len(people) - MAX_NAMES_IN_TRAIL
            places = ", ".join(sorted({p.place for p in people}))
            parts.append(
                f"{layer.value} {places}: {names}" + (f" and {more} more" if more > 0 else "")
            )
        if nobody:
            parts.append(f"nobody on duty at {', '.join(nobody)}")
        return "; ".join(parts)


def parse_roster(row: Mapping[str, Any]) -> RosterConfig:
    body = RosterBody.model_validate_json(row["doc_json"])
    return RosterConfig(place=row["place"], **{**body.model_dump(), "layer": row["layer"]})


class DutyNotifier:
    def __init__(
        self,
        *,
        config: NotifyConfig,
        alert_routing: AlertRoutingConfig,
        store: Store,
        clock: Clock,
        wake: Callable[[], None],
    ) -> None:
        self.config = config
        self.alert_routing = alert_routing
        self.store = store
        self.clock = clock
        self._wake = wake
        self._lock = threading.Lock()
        self._rosters: dict[str, RosterConfig] = {}
        self._queued = False  # rows queued in the transaction being written

    # -- rosters ----------------------------------------------------------------------------

    def load(self) -> None:
        """Write the configured rosters to the store, then take up every stored one."""
        rows = [
            notify_store.RosterRow(
                r.place,
                r.resolved_layer.value,
                RosterBody.model_validate(r.model_dump(exclude={"place"})).model_dump_json(),
            )
            for r in self.config.rosters
        ]
        now_ms = self.clock.wall_ms()
        self.store.call(lambda db: notify_store.register_config_rosters(db.conn, rows, now_ms))
        self.refresh()

    def refresh(self) -> None:
        rosters: dict[str, RosterConfig] = {}
        for row in self.store.read(notify_store.all_rosters):
            try:
                rosters[row["place"]] = parse_roster(row)
            except ValueError:  # written by an older release under other rules
                log.exception("duty roster %s cannot be read; it is left out", row["place"])
        with self._lock:
            self._rosters = rosters

    def on_duty_at(self, place: str, layer: Layer, at_ms: int) -> list[OnDuty]:
        """The people on duty at ``layer`` for something at ``place``: every roster of that
        layer at or above the place."""
        with self._lock:
            rosters = [
                r
                for r in self._rosters.values()
                if r.resolved_layer is layer and place_contains(r.place, place)
            ]
        found: list[OnDuty] = []
        for roster in sorted(rosters, key=lambda r: r.place):
            found += on_duty(roster, at_ms)
        return found

    # -- routing ----------------------------------------------------------------------------

    def route(self, colour: Colour, category: str) -> tuple[list[Layer], float]:
        """The layers told at once and the seconds before the next layer is told."""
        rule: NotifyRoute | None = next(
            (r for r in self.config.routes if r.matches(colour, category)), None
        )
        deadline_s = self.alert_routing.route(colour).ack_deadline_s
        if rule is None:
            return [], deadline_s
        layers = sorted(set(rule.layers), key=lambda layer: layer.rank)
        return layers, rule.escalate_after_s or deadline_s

    # -- the alert engine's hook (writer thread, inside the step's transaction) -------------

    def on_step(
        self, conn: sqlite3.Connection, alert: Mapping[str, Any], action: str, category: str
    ) -> None:
        if action not in ("raised", "colour_raised") or not self._rosters:
            return  # nothing to do, or no duty rosters anywhere: people are not told
        colour = Colour(alert["colour"])
        if action == "colour_raised" and colour.value != alert["peak_colour"]:
            return  # not a new peak: nobody new to tell
        layers, after_s = self.route(colour, category)
        if not layers:
            return
        now_ms = self.clock.wall_ms()
        told = Told({layer: self.on_duty_at(alert["place"], layer, now_ms) for layer in layers})
        top = layers[-1]
        if not told.anyone:  # climb at once until somebody is on duty
            for layer in LAYER_ORDER[top.rank + 1 :]:
                told.layers[layer] = self.on_duty_at(alert["place"], layer, now_ms)
                top = layer
                if told.layers[layer]:
                    break
        step = f"raised:{colour.value}"
        added = self._tell(conn, alert["id"], step, told, now_ms + int(after_s * 1000), now_ms,
                           escalation=False)  # fmt: skip
        previous = notify_store.episode(conn, alert["id"])
        if previous is not None and Layer(previous["top_layer"]).rank > top.rank:
            top = Layer(previous["top_layer"])
        # Past the deadline the next layer is told, or the trail says nobody is left.
        deadline = now_ms + int(after_s * 1000)
        notify_store.open_episode(conn, alert["id"], top.value, after_s, deadline)
        if added or not told.anyone:
            notify_store.append_trail(
                conn, alert["id"], "duty_told", now_ms, SYSTEM, f"told {told.note()}"
            )

    def after_commit(self) -> None:
        """The step's transaction committed: wake the delivery for what it queued."""
        if self._queued:
            self._queued = False
            self._wake()

    def _tell(  # noqa: PLR0917
        self,
        conn: sqlite3.Connection,
        alert_id: int,
        step: str,
        told: Told,
        deadline_ms: int,
        now_ms: int,
        *,
        escalation: bool,
    ) -> int:
        people = [
            notify_store.RecipientIn(
                place=duty.place,
                layer=duty.layer.value,
                person=duty.person.id,
                person_name=duty.person.name,
                contacts=tuple(notify_store.Contact(c.channel, c.to) for c in duty.person.contacts),
            )
            for duty_list in told.layers.values()
            for duty in duty_list
        ]
        added = notify_store.add_recipients(
            conn, alert_id, step, people, deadline_ms, now_ms, escalation=escalation
        )
        if added:
            self._queued = True
        return len(added)

    # -- escalation -------------------------------------------------------------------------

    def tick(self) -> None:
        """Tell the next layer of every alert still unacknowledged at its deadline."""
        now_ms = self.clock.wall_ms()
        if not self.store.read(lambda conn: notify_store.any_episode_due(conn, now_ms)):
            return
        future = self.store.submit(lambda db: self._escalate(db, now_ms), urgent=True)
        future.result(timeout=30)
        self.after_commit()

    def _escalate(self, db: Database, now_ms: int) -> None:
        conn = db.conn
        for due in notify_store.due_episodes(conn, now_ms):
            alert_id, place = due["alert_id"], due["place"]
            after_s = float(due["escalate_after_s"])
            top = Layer(due["top_layer"])
            told = Told({})
            for layer in LAYER_ORDER[top.rank + 1 :]:
                told.layers[layer] = self.on_duty_at(place, layer, now_ms)
                top = layer
                if told.layers[layer]:
                    break
            waited_s = (now_ms - due["raised_ms"]) / 1000
            deadline_ms = now_ms + int(after_s * 1000)
            if told.anyone:
                step = f"escalated:{top.value}"
                self._tell(conn, alert_id, step, told, deadline_ms, now_ms, escalation=True)
                note = f"not acknowledged after {waited_s:.0f} s: told {told.note()}"
                action = "duty_escalated"
            else:
                skipped = f" ({told.note()})" if told.layers else ""
                note = f"not acknowledged after {waited_s:.0f} s: nobody higher to tell{skipped}"
                action = "duty_escalation_ended"
            notify_store.open_episode(
                conn, alert_id, top.value, after_s, deadline_ms if told.anyone else None
            )
            notify_store.append_trail(conn, alert_id, action, now_ms, SYSTEM, note)
