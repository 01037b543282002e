"""Whether the controller is ready to serve: the rule ``/readyz`` answers with.

Ready means all of:

- the database answers a query and the store writer runs;
- both MQTT sessions are connected and subscribed (``Controller.mqtt_connected``);
- no received message has waited for its acknowledgement longer than
  ``[mqtt] unacked_max_age_s`` (default 5 s; 0 turns the check off). A message waits from
  its arrival until the store has committed (or given up on) its batch; in normal running
  that is a few milliseconds, and under a full replay well under a second (the broker lets
  only ``max_inflight_messages`` wait per session). Longer means the store has stalled and
  the broker is holding the gateways' data, alerts included: a controller in that state
  must not be sent traffic, and an orchestrator should know.

The rule lives here, not in the route, so whatever serves the probe asks the same question.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from controller.fleet.ingest import Unacked
from controller.store.sqlite import Store


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    database: bool
    broker: bool
    ingest: bool  # no message waits for its acknowledgement beyond the limit
    detail: str  # "ready", or every reason it is not, joined with "; "


def readiness(
    store: Store, *, broker_connected: bool, unacked: Unacked, unacked_max_age_s: float
) -> Readiness:
    problems: list[str] = []
    try:
        store.read(lambda conn: conn.execute("SELECT 1").fetchone())
        database = store.writer_alive
        if not database:
            problems.append("store writer is not running")
    except sqlite3.Error as exc:
        database = False
        problems.append(f"database: {exc}")
    if not broker_connected:
        problems.append("broker: not connected")
    waited_s = unacked.oldest_age_s()
    ingest = unacked_max_age_s <= 0 or waited_s <= unacked_max_age_s
    if not ingest:
        problems.append(
            f"ingest: a message has waited {waited_s:.1f} s for the store"
            f" (limit {unacked_max_age_s:g} s; {unacked.count()} waiting)"
        )
    ready = database and broker_connected and ingest
    return Readiness(ready, database, broker_connected, ingest, "; ".join(problems) or "ready")
