"""The risk rules a gateway judges its own readings by, for edge alerts (wire.risk).

Two sources, the controller's winning:

- the ``[risk]`` section of the running config (``rules`` or ``rules_file``): rules a
  technician gave the gateway, e.g. before the controller knew its points;
- the rules the controller pushes with a ``set-rules`` command, whenever the gateway's risk
  points change or a heartbeat shows the gateway running other rules than it should
  (``risk_rules_hash``, ``wire.risk.RuleSet.digest``). They are kept in
  ``data_dir/risk-rules-pushed.json``, so a restarted agent judges by them at once.

A change of rules keeps the state of every unchanged point (its readings and colour), so a
new push never re-raises an episode the gateway already reported.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.local_state import write_json_atomically
from wire.risk import Colour, Event, RiskEvaluator, RuleSet

log = logging.getLogger(__name__)

RULES_FILE = "risk-rules-pushed.json"


class PushedRules(BaseModel):
    """``risk-rules-pushed.json``: the controller's last push."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hash: str
    applied_ms: int
    rules: RuleSet


def load_pushed(data_dir: Path) -> PushedRules | None:
    path = data_dir / RULES_FILE
    try:
        return PushedRules.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        log.error("%s: unreadable, judging by the config's [risk] rules: %s", path, exc)
        return None


class EdgeRules:
    """The evaluator of the rules in force; thread-safe (port owner threads call in)."""

    def __init__(self, data_dir: Path, config_rules: RuleSet) -> None:
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._config_rules = config_rules
        self._pushed = load_pushed(data_dir)
        self._evaluator: RiskEvaluator | None = None
        self._apply(now_ms=0)

    @property
    def rules(self) -> RuleSet:
        """The rules in force: the controller's last push, else the config's."""
        return self._pushed.rules if self._pushed is not None else self._config_rules

    @property
    def digest(self) -> str:
        """What the heartbeat reports as ``risk_rules_hash``."""
        with self._lock:
            return self.rules.digest()

    @property
    def active(self) -> bool:
        return self._evaluator is not None

    def observe(
        self, device: str, metric: str, ts_ms: int, value: float | None, quality: str
    ) -> list[Event]:
        with self._lock:
            if self._evaluator is None:
                return []
            return self._evaluator.observe(device, metric, ts_ms, value, quality)

    def hold_at_least(self, device: str, metric: str, colour: Colour) -> list[tuple[str, Colour]]:
        """A station's own alarm on ``device``/``metric``: every risk point watching it is
        held at ``colour`` at least (``RiskEvaluator.hold_at_least``). Returns those points
        with their colour before; empty when no rule watches it."""
        with self._lock:
            if self._evaluator is None:
                return []
            found: list[tuple[str, Colour]] = []
            for point in self._evaluator.watching(device, metric):
                before = self._evaluator.hold_at_least(point, colour, cause=(device, metric))
                if before is not None:
                    found.append((point, before))
            return found

    def use_config(self, config_rules: RuleSet, *, now_ms: int) -> None:
        """A new config is running: its ``[risk]`` rules apply unless pushed ones do."""
        with self._lock:
            self._config_rules = config_rules
            self._apply(now_ms=now_ms)

    def push(self, rules: RuleSet, expected_hash: str, *, now_ms: int) -> tuple[bool, str]:
        """The controller's ``set-rules``: check, keep on disk, then judge by them at once."""
        digest = rules.digest()
        if digest != expected_hash:
            return False, f"rules {expected_hash[:12]}: their hash does not match: not applied"
        with self._lock:
            if self._pushed is not None and self._pushed.hash == digest:
                return True, f"unchanged: rules {digest[:12]} are already in force"
            pushed = PushedRules(hash=digest, applied_ms=now_ms, rules=rules)
            write_json_atomically(self._data_dir / RULES_FILE, pushed.model_dump(mode="json"))
            self._pushed = pushed
            self._apply(now_ms=now_ms)
        metrics = sum(len(p.metrics) for p in rules.points)
        log.info("risk rules %s: %d points, %d metrics", digest[:12], len(rules.points), metrics)
        return True, f"rules {digest[:12]} in force: {len(rules.points)} points, {metrics} metrics"

    def _apply(self, *, now_ms: int) -> None:
        points = self.rules.points
        if not points:
            self._evaluator = None
        elif self._evaluator is None:
            self._evaluator = RiskEvaluator(points)
        else:  # unchanged points keep their readings and colour
            self._evaluator.set_points(points, now_ms=now_ms)
