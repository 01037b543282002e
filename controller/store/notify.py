"""Duty rosters, the people told of each alert step, the notification outbox and each
alert's escalation to people: every statement of ``controller/notify/`` lives here.

Functions take the connection they run on: the writer's (inside a store transaction:
``store.call``/``store.submit``) or a reader's (``store.read``). Rows come back as dicts.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# -- helpers --------------------------------------------------------------------------------


def _dicts(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return [dict(row) for row in cursor.execute(sql, params).fetchall()]


def _within(column: str, places: Iterable[str | None]) -> tuple[str, list[Any]]:
    """``column`` at or below every given place (None: no limit)."""
    sql, params = [], []
    for place in places:
        if place is not None:
            sql.append(f"({column} = ? OR substr({column}, 1, ?) = ?)")
            params += [place, len(place) + 1, place + "/"]
    return (" AND ".join(sql) or "1"), params


# -- rosters --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RosterRow:
    place: str
    layer: str
    doc_json: str


def register_config_rosters(
    conn: sqlite3.Connection, rosters: Sequence[RosterRow], now_ms: int
) -> None:
    """The configured rosters as the config says (the config owns a place it names); config
    rosters no longer configured go."""
    conn.executemany(
        "INSERT INTO duty_rosters (place, layer, source, doc_json, created_ms, updated_ms)"
        " VALUES (?, ?, 'config', ?, ?, ?) ON CONFLICT (place) DO UPDATE SET"
        " layer = excluded.layer, source = 'config', doc_json = excluded.doc_json,"
        " updated_ms = CASE WHEN duty_rosters.doc_json IS NOT excluded.doc_json"
        " OR duty_rosters.layer IS NOT excluded.layer OR duty_rosters.source <> 'config'"
        " THEN excluded.updated_ms ELSE duty_rosters.updated_ms END",
        [(r.place, r.layer, r.doc_json, now_ms, now_ms) for r in rosters],
    )
    configured = {r.place for r in rosters}
    stored = [
        row[0] for row in conn.execute("SELECT place FROM duty_rosters WHERE source = 'config'")
    ]
    conn.executemany(
        "DELETE FROM duty_rosters WHERE place = ?", [(p,) for p in stored if p not in configured]
    )


def all_rosters(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return _dicts(conn, "SELECT place, layer, source, doc_json, updated_ms FROM duty_rosters")


def list_rosters(
    conn: sqlite3.Connection, *, scope: str | None, under: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    where, params = _within("place", (scope, under))
    return _dicts(
        conn,
        "SELECT place, layer, source, doc_json, created_ms, updated_ms FROM duty_rosters"  # noqa: S608
        f" WHERE {where} ORDER BY place LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )


def get_roster(conn: sqlite3.Connection, place: str) -> dict[str, Any] | None:
    found = _dicts(
        conn,
        "SELECT place, layer, source, doc_json, created_ms, updated_ms FROM duty_rosters"
        " WHERE place = ?",
        (place,),
    )
    return found[0] if found else None


def roster_revision(row: Any) -> str:
    """A short digest of a stored roster (its layer, source and document): what a client saw,
    for ``If-Match``. A digest, not ``updated_ms``: two changes in one millisecond (or under
    an injected clock) would share a time."""
    text = f"{row['layer']}\n{row['source']}\n{row['doc_json']}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Precondition:
    """What a writer saw: ``revisions`` (``If-Match``; ``*``: any roster) or that there was
    none (``If-None-Match: *``). Checked in the writer's transaction, so two operators
    editing one roster at once cannot lose each other's change."""

    revisions: frozenset[str] | None = None
    absent: bool = False

    def refuses(self, found: Any) -> str | None:
        """'exists' or 'changed' when the stored roster is not what the writer saw."""
        if self.absent and found is not None:
            return "exists"
        if self.revisions is None:
            return None
        if found is None:
            return "changed"
        if "*" in self.revisions or roster_revision(found) in self.revisions:
            return None
        return "changed"


def _found(conn: sqlite3.Connection, place: str) -> dict[str, Any] | None:
    rows = _dicts(
        conn, "SELECT layer, source, doc_json FROM duty_rosters WHERE place = ?", (place,)
    )
    return rows[0] if rows else None


def put_roster(
    conn: sqlite3.Connection,
    roster: RosterRow,
    now_ms: int,
    precondition: Precondition | None = None,
) -> str:
    """Create or replace an API roster: 'created', 'updated', 'config' (not changed: the
    config owns it), or, when ``precondition`` refuses, 'exists' or 'changed'."""
    found = _found(conn, roster.place)
    if found is not None and found["source"] == "config":
        return "config"
    refused = precondition.refuses(found) if precondition else None
    if refused is not None:
        return refused
    conn.execute(
        "INSERT INTO duty_rosters (place, layer, source, doc_json, created_ms, updated_ms)"
        " VALUES (?, ?, 'api', ?, ?, ?) ON CONFLICT (place) DO UPDATE SET"
        " layer = excluded.layer, doc_json = excluded.doc_json, updated_ms = excluded.updated_ms",
        (roster.place, roster.layer, roster.doc_json, now_ms, now_ms),
    )
    return "created" if found is None else "updated"


def delete_roster(
    conn: sqlite3.Connection, place: str, precondition: Precondition | None = None
) -> str:
    """'deleted', 'missing', 'config' (not deleted: the config owns it), or 'changed' (the
    roster is not the one ``precondition`` saw)."""
    found = _found(conn, place)
    if found is None:
        return "missing"
    if found["source"] == "config":
        return "config"
    if precondition is not None and precondition.refuses(found) is not None:
        return "changed"
    conn.execute("DELETE FROM duty_rosters WHERE place = ?", (place,))
    return "deleted"


# -- recipients, outbox, episodes -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contact:
    channel: str
    address: str | None


@dataclass(frozen=True, slots=True)
class RecipientIn:
    place: str
    layer: str
    person: str
    person_name: str
    contacts: tuple[Contact, ...]


def add_recipients(  # noqa: PLR0917
    conn: sqlite3.Connection,
    alert_id: int,
    step: str,
    people: Sequence[RecipientIn],
    deadline_ms: int,
    now_ms: int,
    *,
    escalation: bool,
) -> list[tuple[int, RecipientIn]]:
    """Tell ``people`` of ``step``: one recipient row each (a person already told of this
    step is not told again) and one queued outbox row per contact. Returns the new rows."""
    added: list[tuple[int, RecipientIn]] = []
    for person in people:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO notify_recipients (alert_id, step, place, layer, person,"
            " person_name, deadline_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (alert_id, step, person.place, person.layer, person.person, person.person_name,
             deadline_ms, now_ms),
        )  # fmt: skip
        if not cursor.rowcount:
            continue
        recipient_id = cursor.lastrowid
        assert recipient_id is not None
        conn.executemany(
            "INSERT INTO notify_outbox (recipient_id, channel, address, escalation, state,"
            " next_attempt_ms, enqueued_ms) VALUES (?, ?, ?, ?, 'queued', ?, ?)",
            [(recipient_id, c.channel, c.address, int(escalation), now_ms, now_ms)
             for c in person.contacts],
        )  # fmt: skip
        added.append((recipient_id, person))
    return added


def open_episode(
    conn: sqlite3.Connection,
    alert_id: int,
    top_layer: str,
    escalate_after_s: float,
    deadline_ms: int | None,
) -> None:
    conn.execute(
        "INSERT INTO notify_episodes (alert_id, top_layer, escalate_after_s, deadline_ms)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (alert_id) DO UPDATE SET"
        " top_layer = excluded.top_layer, escalate_after_s = excluded.escalate_after_s,"
        " deadline_ms = excluded.deadline_ms",
        (alert_id, top_layer, escalate_after_s, deadline_ms),
    )


def episode(conn: sqlite3.Connection, alert_id: int) -> dict[str, Any] | None:
    found = _dicts(conn, "SELECT * FROM notify_episodes WHERE alert_id = ?", (alert_id,))
    return found[0] if found else None


def any_episode_due(conn: sqlite3.Connection, now_ms: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM notify_episodes WHERE deadline_ms <= ? LIMIT 1", (now_ms,)
        ).fetchone()
        is not None
    )


def due_episodes(conn: sqlite3.Connection, now_ms: int, limit: int = 500) -> list[dict[str, Any]]:
    """Episodes past their deadline, with their alert; an alert no longer waiting for an
    acknowledgement ends its episode here."""
    conn.execute(
        "UPDATE notify_episodes SET deadline_ms = NULL WHERE deadline_ms <= ? AND alert_id IN"
        " (SELECT id FROM alerts WHERE open = 0 OR state <> 'raised')",
        (now_ms,),
    )
    return _dicts(
        conn,
        "SELECT e.alert_id, e.top_layer, e.escalate_after_s, e.deadline_ms, a.place, a.colour,"
        " a.peak_colour, a.point, a.raised_ms FROM notify_episodes e"
        " JOIN alerts a ON a.id = e.alert_id WHERE e.deadline_ms <= ?"
        " ORDER BY e.deadline_ms LIMIT ?",
        (now_ms, limit),
    )


def append_trail(  # noqa: PLR0917
    conn: sqlite3.Connection, alert_id: int, action: str, at_ms: int, by: str, note: str
) -> None:
    """A trail entry about people (who was told, what came of it), with the alert's state
    and colour as they are; not forwarded to the centers."""
    conn.execute(
        "INSERT INTO alert_trail (alert_id, action, state, colour, at_ms, by, note)"
        " SELECT id, ?, state, colour, ?, ?, ? FROM alerts WHERE id = ?",
        (action, at_ms, by, note, alert_id),
    )


_CLAIMABLE = """
SELECT o.id, o.recipient_id, o.channel, o.address, o.escalation, o.attempts, o.enqueued_ms,
       r.alert_id, r.step, r.place, r.layer, r.person, r.person_name, r.deadline_ms,
       a.state AS alert_state, a.open AS alert_open, a.colour, a.point,
       a.place AS alert_place, a.raised_ms, a.metric, a.value, a.device, a.kind
FROM (
    SELECT *, row_number() OVER (PARTITION BY channel ORDER BY next_attempt_ms, id) AS nth
    FROM notify_outbox
    WHERE state = 'queued' AND next_attempt_ms <= ? AND coalesce(claimed_until_ms, 0) <= ?
      AND channel NOT IN (SELECT value FROM json_each(?))
) o
JOIN notify_recipients r ON r.id = o.recipient_id
JOIN alerts a ON a.id = r.alert_id
WHERE o.nth <= ?
ORDER BY o.next_attempt_ms, o.id
LIMIT ?
"""


def claim_due(  # noqa: PLR0917
    conn: sqlite3.Connection,
    now_ms: int,
    lease_ms: int,
    limit: int,
    per_channel: int,
    skip_channels: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Queued rows whose time has come and that nobody holds, at most ``per_channel`` of each
    channel (so one channel's backlog never fills the batch), none of ``skip_channels``;
    held for ``lease_ms``: a sender that dies leaves them to be taken again."""
    skip = json.dumps(sorted(skip_channels))
    found = _dicts(conn, _CLAIMABLE, (now_ms, now_ms, skip, per_channel, limit))
    conn.executemany(
        "UPDATE notify_outbox SET claimed_until_ms = ? WHERE id = ?",
        [(now_ms + lease_ms, row["id"]) for row in found],
    )
    return found


def release(conn: sqlite3.Connection, outbox_ids: Iterable[int]) -> None:
    """Give back rows claimed but not tried (their channel is backing off)."""
    conn.executemany(
        "UPDATE notify_outbox SET claimed_until_ms = NULL WHERE id = ?",
        [(i,) for i in outbox_ids],
    )


def mark_sent(conn: sqlite3.Connection, outbox_id: int, now_ms: int) -> None:
    conn.execute(
        "UPDATE notify_outbox SET state = 'sent', sent_ms = ?, attempts = attempts + 1,"
        " claimed_until_ms = NULL, last_error = NULL WHERE id = ?",
        (now_ms, outbox_id),
    )


def mark_failed(
    conn: sqlite3.Connection, outbox_id: int, error: str, retry_at_ms: int | None
) -> None:
    """One failed attempt: queued again for ``retry_at_ms``, or given up (None)."""
    conn.execute(
        "UPDATE notify_outbox SET attempts = attempts + 1, last_error = ?,"
        " claimed_until_ms = NULL, next_attempt_ms = coalesce(?, next_attempt_ms),"
        " state = CASE WHEN ? IS NULL THEN 'failed' ELSE 'queued' END WHERE id = ?",
        (error[:300], retry_at_ms, retry_at_ms, outbox_id),
    )


def mark_cancelled(conn: sqlite3.Connection, outbox_id: int, why: str) -> None:
    conn.execute(
        "UPDATE notify_outbox SET state = 'cancelled', claimed_until_ms = NULL, last_error = ?"
        " WHERE id = ?",
        (why[:300], outbox_id),
    )


# -- links ------------------------------------------------------------------------------------


def recipient(conn: sqlite3.Connection, recipient_id: int) -> dict[str, Any] | None:
    found = _dicts(
        conn,
        "SELECT r.*, a.state AS alert_state, a.open AS alert_open, a.colour, a.peak_colour,"
        " a.point, a.place AS alert_place, a.raised_ms, a.metric, a.value, a.device, a.kind,"
        " p.name AS point_name, p.category FROM notify_recipients r"
        " JOIN alerts a ON a.id = r.alert_id LEFT JOIN risk_points p ON p.id = a.point"
        " WHERE r.id = ?",
        (recipient_id,),
    )
    return found[0] if found else None


def use_link(conn: sqlite3.Connection, recipient_id: int, seen_uses: int, action: str) -> bool:
    """Count one use of a link, if it has been used ``seen_uses`` times so far: False means
    the form was sent before (a replay)."""
    return bool(
        conn.execute(
            "UPDATE notify_recipients SET link_uses = link_uses + 1, last_action = ?"
            " WHERE id = ? AND link_uses = ?",
            (action, recipient_id, seen_uses),
        ).rowcount
    )


def last_acts(conn: sqlite3.Connection, alert_id: int) -> list[dict[str, Any]]:
    """Who moved the alert, newest first (for the mobile page)."""
    return _dicts(
        conn,
        "SELECT action, by, at_ms FROM alert_trail WHERE alert_id = ?"
        " AND action IN ('acknowledged', 'handling', 'resolved', 'reviewed') ORDER BY id DESC",
        (alert_id,),
    )


# -- read side --------------------------------------------------------------------------------


def notifications(conn: sqlite3.Connection, alert_id: int, limit: int) -> list[dict[str, Any]]:
    return _dicts(
        conn,
        "SELECT o.id, r.step, r.place, r.layer, r.person, r.person_name, o.channel, o.state,"
        " o.attempts, o.enqueued_ms, o.sent_ms, o.last_error, r.deadline_ms, r.last_action"
        " FROM notify_outbox o JOIN notify_recipients r ON r.id = o.recipient_id"
        " WHERE r.alert_id = ? ORDER BY o.id LIMIT ?",
        (alert_id, limit),
    )


def channel_counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Per channel: rows by state, and the oldest queued row's enqueue time."""
    counts: dict[str, dict[str, int]] = {}
    for channel, state, count, oldest in conn.execute(
        "SELECT channel, state, count(*), min(enqueued_ms) FROM notify_outbox"
        " GROUP BY channel, state"
    ):
        entry = counts.setdefault(channel, {})
        entry[state] = count
        if state == "queued":
            entry["oldest_queued_ms"] = oldest
    return counts
