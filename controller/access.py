"""Who may do what: API tokens with a role and a place, and the audit log.

A token is shown once, when it is created (``edgewatch controller token create``); the
store keeps only its sha256. A token's place scopes it: a street operator sees and commands
only gateways at or below its street; everything else answers 404, as if it did not exist.
Roles are ordered: a viewer reads, an operator also commands and changes config and the
registry, an admin also provisions broker credentials. The audit log, like everything else,
shows a token only what happened at or below its place.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlite_utils import Database

from controller.forwarding.routing import place_contains

TOKEN_PREFIX = "ewt_"  # noqa: S105 (a prefix, not a secret)


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class AccessError(ValueError):
    """A token cannot be created or used as asked."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one API request: a token's name, role and place (None: everywhere), and
    the sha256 of the token itself (None for the demo and the controller's own actions):
    what a later check asks about, since a name can be revoked and given to a new token."""

    name: str
    role: Role
    place: str | None
    token_sha256: str | None = field(default=None, repr=False)

    def may(self, role: Role) -> bool:
        return self.role.rank >= role.rank

    def sees(self, place: str | None) -> bool:
        """A scoped token sees only things placed at or below its place (never unplaced)."""
        if self.place is None:
            return True
        return place is not None and place_contains(self.place, place)


DEMO_PRINCIPAL = Principal(name="demo", role=Role.ADMIN, place=None)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(db: Database, *, name: str, role: Role, place: str | None, now_ms: int) -> str:
    """Store a new token's digest and return the token (the only time it is seen)."""
    taken = db.execute(
        "SELECT 1 FROM api_tokens WHERE name = ? AND revoked_ms IS NULL", (name,)
    ).fetchone()
    if taken:
        raise AccessError(f"a token named {name!r} exists: revoke it first or pick another name")
    token = new_token()
    db.execute("DELETE FROM api_tokens WHERE name = ? AND revoked_ms IS NOT NULL", (name,))
    db.execute(
        "INSERT INTO api_tokens (name, token_sha256, role, place, created_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        (name, token_digest(token), role.value, place, now_ms),
    )
    return token


def revoke_token(db: Database, *, name: str, now_ms: int) -> bool:
    cursor = db.execute(
        "UPDATE api_tokens SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL",
        (now_ms, name),
    )
    return bool(cursor.rowcount)


def active_token_count(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM api_tokens WHERE revoked_ms IS NULL").fetchone()
    return int(row[0])


def list_tokens(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT name, role, place, created_ms, revoked_ms FROM api_tokens ORDER BY id"
    ).fetchall()
    names = ("name", "role", "place", "created_ms", "revoked_ms")
    return [dict(zip(names, row, strict=True)) for row in rows]


def principal_for(conn: sqlite3.Connection, token: str) -> Principal | None:
    digest = token_digest(token)
    row = conn.execute(
        "SELECT name, role, place FROM api_tokens WHERE token_sha256 = ? AND revoked_ms IS NULL",
        (digest,),
    ).fetchone()
    if row is None:
        return None
    return Principal(name=row[0], role=Role(row[1]), place=row[2], token_sha256=digest)


def token_still_grants(conn: sqlite3.Connection, principal: Principal) -> bool:
    """The principal's own token (by its digest, not its name) is active and still has the
    role and place it had: a revoked token whose name went to a new token grants nothing."""
    if principal.token_sha256 is None:
        return False
    row = conn.execute(
        "SELECT role, place FROM api_tokens WHERE token_sha256 = ? AND revoked_ms IS NULL",
        (principal.token_sha256,),
    ).fetchone()
    return row is not None and (row[0], row[1]) == (principal.role.value, principal.place)


# -- audit ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: Principal
    action: str  # e.g. "command.create", "config.set", "gateway.provision"
    target: str  # e.g. "gateway:gw-a"
    place: str | None
    detail: dict[str, Any]
    outcome: str  # "ok", "refused: ...", a command's final state


def record_audit(db: Database, entry: AuditEntry, *, now_ms: int) -> None:
    db.execute(
        "INSERT INTO audit (at_ms, actor, role, action, target, place, detail, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            now_ms,
            entry.actor.name,
            entry.actor.role.value,
            entry.action,
            entry.target,
            entry.place,
            json.dumps(entry.detail, sort_keys=True, default=str)[:4096],
            entry.outcome,
        ),
    )
