"""Risk points: one table for the config's ``[[risk_points]]`` and the registry's API.

A row keeps the registry's fields (id, name, place, category, devices, created/updated
times), the point's rules as resolved ``wire.risk.MetricRule`` objects (``rules_json``: a
point registered without rules of its own gets its category's preset on each device,
``wire.risk_presets.default_rules``), and the risk engine's state (colour and since when,
blind devices). ``source`` says who owns the row: ``config`` rows are rewritten from the
config at every start (and removed with it); ``api`` rows are the registry's.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError
from sqlite_utils import Database

from controller.config import RiskMetricConfig, RiskPointConfig
from wire.risk import Category, Colour, MetricRule, RiskPointRules, worst
from wire.risk_presets import PresetError, default_rules

log = logging.getLogger(__name__)

CONFIG = "config"
API = "api"

_RULES = TypeAdapter(list[MetricRule])
_CHANGED = " OR ".join(
    f"risk_points.{column} IS NOT excluded.{column}"
    for column in (
        "name",
        "category",
        "place",
        "devices_json",
        "rules_json",
        "stale_after_s",
        "lon",
        "lat",
    )
)
_UPSERT_CONFIG_POINT = (
    "INSERT INTO risk_points (id, name, category, place, devices_json, rules_json,"  # noqa: S608
    " stale_after_s, created_ms, updated_ms, source, lon, lat)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'config', ?, ?) ON CONFLICT (id) DO UPDATE SET"
    " name = excluded.name, category = excluded.category, place = excluded.place,"
    " devices_json = excluded.devices_json, rules_json = excluded.rules_json,"
    " stale_after_s = excluded.stale_after_s, source = 'config', lon = excluded.lon,"
    " lat = excluded.lat,"
    f" updated_ms = CASE WHEN {_CHANGED} OR risk_points.source IS NOT 'config'"
    " THEN excluded.updated_ms ELSE risk_points.updated_ms END"
)


class RulesError(ValueError):
    """A risk point's rules cannot be built as asked; the message says what to give."""


def dump_rules(rules: Sequence[MetricRule]) -> str:
    return _RULES.dump_json(list(rules)).decode()


def load_rules(text: str) -> list[MetricRule]:
    return _RULES.validate_json(text)


def resolve_rules(
    category: Category, devices: Sequence[str], metrics: Sequence[RiskMetricConfig] | None
) -> list[MetricRule]:
    """``metrics`` as rules (presets filled in), or the category's defaults for ``devices``."""
    try:
        if metrics is None:
            return default_rules(category, list(devices))
        return [m.rule(category) for m in metrics]
    except (PresetError, ValidationError) as exc:
        raise RulesError(str(exc)) from None


def devices_of(devices: Sequence[str], rules: Sequence[MetricRule]) -> list[str]:
    """The point's devices: those given, then any other a rule watches."""
    out = list(dict.fromkeys(devices))
    out += [d for d in dict.fromkeys(m.device for m in rules) if d not in out]
    return out


def register_config_points(db: Database, points: Sequence[RiskPointConfig], now_ms: int) -> None:
    """Write the configured points (their colours stay); drop config points no longer there.

    A registered point with the same id becomes the config's: the config is the owner.
    """
    rows = []
    for point in points:
        rules = point.rules().metrics
        devices = devices_of([], rules)
        rows.append(
            (point.id, point.name or point.id, point.category.value, point.place,
             json.dumps(devices), dump_rules(rules), point.stale_after_s, now_ms, now_ms,
             point.lon, point.lat)
        )  # fmt: skip
    db.conn.executemany(_UPSERT_CONFIG_POINT, rows)
    configured = {p.id for p in points}
    stored = [r[0] for r in db.conn.execute("SELECT id FROM risk_points WHERE source = 'config'")]
    db.conn.executemany(
        "DELETE FROM risk_points WHERE id = ?", [(pid,) for pid in stored if pid not in configured]
    )


@dataclass(frozen=True, slots=True)
class StoredPoints:
    """What the risk engine needs of every stored point."""

    rules: dict[str, RiskPointRules]  # the points with at least one rule (judged)
    names: dict[str, str]  # every point's name, for the messages to the centers


def load_points(conn: sqlite3.Connection) -> StoredPoints:
    rules: dict[str, RiskPointRules] = {}
    names: dict[str, str] = {}
    for pid, name, category, place, rules_json, stale_after_s in conn.execute(
        "SELECT id, name, category, place, rules_json, stale_after_s FROM risk_points"
    ):
        names[pid] = name
        try:
            kind = Category(category)
        except ValueError:  # registered before categories were checked
            kind = Category.OTHER
        try:
            metrics = load_rules(rules_json)
            if metrics:
                rules[pid] = RiskPointRules(
                    id=pid,
                    category=kind,
                    place=place,
                    name=name,
                    stale_after_s=stale_after_s,
                    metrics=metrics,
                )
        except ValidationError as exc:  # one bad row must not stop the others being judged
            log.error("risk point %r: stored rules are not valid, not judged: %s", pid, exc)
    return StoredPoints(rules=rules, names=names)


@dataclass(frozen=True, slots=True)
class JudgedState:
    """A point's state as the risk engine left it: what a restarted engine takes up."""

    point: str
    colour: Colour  # the worse of the point's stored colour and its open episode's
    cause: tuple[str, str] | None  # (device, metric) that raised the open episode
    blind: list[str]


def load_judged(conn: sqlite3.Connection) -> list[JudgedState]:
    """Every point that is not plain green: coloured, blind, or with an open episode."""
    found = []
    for pid, colour, blind_json, alert_colour, device, metric in conn.execute(
        "SELECT p.id, p.colour, p.blind_devices, a.colour, a.device, a.metric"
        " FROM risk_points p LEFT JOIN alerts a"
        " ON a.point = p.id AND a.open = 1 AND a.kind = 'risk'"
        " WHERE p.colour != 'green' OR p.blind_devices != '[]' OR a.id IS NOT NULL"
    ):
        colours = [Colour(c) for c in (colour, alert_colour) if c in set(Colour)]
        cause = (device, metric) if device and metric else None
        found.append(JudgedState(pid, worst(colours), cause, sorted(json.loads(blind_json))))
    return found
