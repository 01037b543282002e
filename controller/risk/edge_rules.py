"""The controller pushes each gateway the risk rules of its devices (agent.edge_rules).

A gateway's rules are those of every risk point with a metric on one of its devices, cut to
those metrics and ordered by point id: exactly what ``GET /api/v1/risk-rules?gateway=ID``
answers. They travel as a ``set-rules`` command (``{"rules": RuleSet, "hash": digest}``)
through the ordinary command lifecycle: stored, sent once the gateway is online, answered.

When: an agent's heartbeat reports the digest of the rules it runs (``risk_rules_hash``).
Whenever that differs from what the gateway should run, because its risk points changed
(config at start, or the registry API) or because it comes online with stale rules, one
``set-rules`` goes out; another only after it finished and ``RETRY_S`` passed, so an agent
that refuses rules is not flooded. A heartbeat without the field (an older agent) pushes
nothing. The agent's config, its hash and the config drift are not touched: the rules are a
part of the agent's config of their own, with their own digest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import wire
from controller.access import Principal, Role
from controller.fleet.commands import Commands, _Command
from controller.forwarding.routing import Router
from wire import SetRulesArgs
from wire.clock import Clock
from wire.risk import RiskPointRules, RuleSet

log = logging.getLogger(__name__)

SYSTEM = Principal(name="system", role=Role.ADMIN, place=None)
RETRY_S = 60.0
DEADLINE_S = 300.0


class SetRulesCommand(_Command):
    """Sent by the controller itself; the API does not take it."""

    type: Literal["set-rules"] = "set-rules"
    args: SetRulesArgs
    deadline_s: float = DEADLINE_S


def gateway_of(device: str) -> str:
    return device.split(".", 1)[0]


def gateway_rules(
    points: Iterable[RiskPointRules], gateway: str, sees: Callable[[str], bool] | None = None
) -> RuleSet:
    """The rules of ``gateway``'s devices (of the points ``sees`` lets through)."""
    mine = []
    for rules in sorted(points, key=lambda p: p.id):
        metrics = [m for m in rules.metrics if gateway_of(m.device) == gateway]
        if metrics and (sees is None or sees(rules.place)):
            mine.append(rules.model_copy(update={"metrics": metrics}))
    return RuleSet(points=mine)


def rules_by_gateway(points: Iterable[RiskPointRules]) -> dict[str, RuleSet]:
    """Every gateway's rules, in one pass over the points."""
    by_gateway: dict[str, list[RiskPointRules]] = {}
    for rules in sorted(points, key=lambda p: p.id):
        for gateway in dict.fromkeys(gateway_of(m.device) for m in rules.metrics):
            metrics = [m for m in rules.metrics if gateway_of(m.device) == gateway]
            by_gateway.setdefault(gateway, []).append(rules.model_copy(update={"metrics": metrics}))
    return {gateway: RuleSet(points=mine) for gateway, mine in by_gateway.items()}


EMPTY_DIGEST = RuleSet().digest()


class RulesPusher:
    """Compares what each gateway reports with what it should run, and sends the rules.

    ``on_health`` (MQTT thread) only compares digests; ``tick`` (the health ticker) takes up
    changed points and creates the commands.
    """

    def __init__(
        self,
        *,
        points: Callable[[], Mapping[str, RiskPointRules]],
        commands: Commands,
        router: Router,
        clock: Clock,
    ) -> None:
        self._points = points
        self._commands = commands
        self._router = router
        self._clock = clock
        self._lock = threading.Lock()
        self._indexed: Mapping[str, RiskPointRules] | None = None
        self._wanted: dict[str, RuleSet] = {}
        self._digests: dict[str, str] = {}
        self._reported: dict[str, str] = {}
        self._stale: set[str] = set()
        self.pushed = 0

    def on_health(self, gateway: str, health: wire.Health) -> None:
        reported = (health.model_extra or {}).get("risk_rules_hash")
        if not isinstance(reported, str):
            return  # an agent that does not take set-rules
        with self._lock:
            self._reported[gateway] = reported
            if reported != self._digests.get(gateway, EMPTY_DIGEST):
                self._stale.add(gateway)

    def tick(self) -> None:
        points = self._points()
        with self._lock:
            if points is not self._indexed:  # the engine replaces the mapping on a change
                self._indexed, self._wanted = points, rules_by_gateway(points.values())
                self._digests = {g: rules.digest() for g, rules in self._wanted.items()}
                self._stale |= {
                    g for g, d in self._reported.items() if d != self._digests.get(g, EMPTY_DIGEST)
                }
            stale, self._stale = self._stale, set()
            wanted = {g: (self._wanted.get(g, RuleSet()), self._reported[g]) for g in stale}
        for gateway, (rules, reported) in sorted(wanted.items()):
            try:
                self._push(gateway, rules, reported)
            except Exception:
                log.exception("gateway %s: could not queue its risk rules", gateway)

    def _push(self, gateway: str, rules: RuleSet, reported: str) -> None:
        digest = rules.digest()
        if reported == digest or self._recent(gateway, digest):
            return
        log.info(
            "gateway %s runs risk rules %s, should run %s (%d points): sending them",
            gateway, reported[:12], digest[:12], len(rules.points),
        )  # fmt: skip
        command = SetRulesCommand(args=SetRulesArgs(rules=rules, hash=digest))
        self._commands.create(gateway, self._router.place_of(gateway), command, SYSTEM)
        self.pushed += 1

    def _recent(self, gateway: str, digest: str) -> bool:
        """A set-rules with these rules still under way, or finished within RETRY_S."""
        since_ms = self._clock.wall_ms() - int(RETRY_S * 1000)
        found = self._commands.store.read(
            lambda conn: conn.execute(
                "SELECT 1 FROM commands WHERE gateway = ? AND type = 'set-rules'"
                " AND json_extract(args_json, '$.hash') = ?"
                " AND (state IN ('queued', 'delivered') OR finished_ms >= ?) LIMIT 1",
                (gateway, digest, since_ms),
            ).fetchone()
        )
        return found is not None
