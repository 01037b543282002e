"""The command handlers beside ``replay``: each validates its arguments (the argument
models the controller validates with too, ``wire.commands``) and returns (succeeded, detail).

| type | args | does |
| --- | --- | --- |
| ``ping`` | none | detail: JSON ``{"agent_version", "session", "uptime_s", "config_hash"}`` |
| ``poll-now`` | ``device`` (optional: all) | reads now through the port's owner thread |
| ``set-interval`` | ``device``, ``interval_s`` | at once, kept as a local override |
| ``maintenance`` | ``device``, ``on`` | marks the device; its readings carry it |
| ``reload-config`` | ``config``, ``version``, ``hash`` | ``agent.uplink.reconfigure`` |
| ``set-rules`` | ``rules`` (wire.risk.RuleSet), ``hash`` | edge alert rules, ``agent.edge_rules`` |
| ``restart`` | none | graceful stop, then exit 75 (``agent.cli``) |

There is no remote shell: nothing else runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from agent.bus.ports import PortOwner, PortUnavailableError
from agent.running import RunningAgent
from wire import (
    CommandRequest,
    CommandType,
    MaintenanceArgs,
    NoArgs,
    PollNowArgs,
    ReloadConfigArgs,
    SetIntervalArgs,
    SetRulesArgs,
)

log = logging.getLogger(__name__)

Result = tuple[bool, str]


class Handlers:
    """Bound to one Agent; ``register`` puts them in its CommandRunner."""

    def __init__(self, agent: RunningAgent, *, on_restart: Callable[[], None] | None) -> None:
        self._agent = agent
        self._on_restart = on_restart

    def register(self, handlers: dict[str, Callable[[CommandRequest], Result]]) -> None:
        handlers.update(
            {
                CommandType.PING: self.ping,
                CommandType.POLL_NOW: self.poll_now,
                CommandType.SET_INTERVAL: self.set_interval,
                CommandType.MAINTENANCE: self.maintenance,
                CommandType.RELOAD_CONFIG: self.reload_config,
                CommandType.SET_RULES: self.set_rules,
                CommandType.RESTART: self.restart,
            }
        )

    def _owner_of(self, device: str) -> PortOwner:
        for owner in self._agent.ports:
            if any(p.name == device for p in owner.pollers):
                return owner
        self._known(device)
        raise ValueError(
            f"args.device: {device!r} is a station that pushes its reports: it is not polled"
        )

    def _known(self, device: str) -> None:
        if not any(d.name == device for d in self._agent.config.devices):
            known = ", ".join(d.name for d in self._agent.config.devices) or "none"
            raise ValueError(
                f"args.device: no device {device!r} on this gateway (devices: {known})"
            )

    # -- handlers -------------------------------------------------------------------------

    def ping(self, request: CommandRequest) -> Result:
        NoArgs.model_validate(request.args)
        agent = self._agent
        answer = {
            "agent_version": agent.version,
            "session": agent.session.session,
            "uptime_s": round(agent.uptime_s(), 3),
            "config_hash": agent.config.config_hash,
        }
        return True, json.dumps(answer)

    def poll_now(self, request: CommandRequest) -> Result:
        args = PollNowArgs.model_validate(request.args)
        if args.device is not None:
            targets = [(self._owner_of(args.device), args.device)]
        else:
            targets = [(o, p.name) for o in self._agent.ports for p in o.pollers]
        if not targets:
            return False, "no device configured"
        outcomes = []
        for owner, device in targets:
            try:
                failure = owner.poll_now(device)
            except (PortUnavailableError, TimeoutError) as exc:
                failure = str(exc)
            outcomes.append((device, failure))
        failed = [f"{d}: {f}" for d, f in outcomes if f is not None]
        answered = [d for d, f in outcomes if f is None]
        detail = f"read now: {', '.join(answered) or 'none'}"
        if failed:
            detail += f"; failed: {'; '.join(failed)}"
        return not failed, detail

    def set_interval(self, request: CommandRequest) -> Result:
        args = SetIntervalArgs.model_validate(request.args)
        owner = self._owner_of(args.device)
        configured_s = next(
            d.interval_s for d in self._agent.config.devices if d.name == args.device
        )
        poller = next(p for p in owner.pollers if p.name == args.device)
        before_s = poller.interval_s
        overrides = self._agent.overrides
        if args.interval_s == configured_s:
            overrides.set_interval(args.device, None)
            note = "the config's own value: local override removed"
        else:
            overrides.set_interval(args.device, args.interval_s)
            note = (
                f"kept as a local override in {overrides.path.name}"
                f" (the config says {configured_s:g} s)"
            )
        owner.set_interval(args.device, args.interval_s)
        log.info("device %r: interval %g s (was %g s)", args.device, args.interval_s, before_s)
        return True, f"{args.device}: interval {args.interval_s:g} s (was {before_s:g} s), {note}"

    def maintenance(self, request: CommandRequest) -> Result:
        args = MaintenanceArgs.model_validate(request.args)
        self._known(args.device)  # polled devices and stations alike
        changed = self._agent.maintenance.set(args.device, on=args.on)
        log.info("device %r: maintenance %s", args.device, "on" if args.on else "off")
        if args.on:
            state = "in maintenance: its readings carry quality 'maintenance' (no alerts)"
        else:
            state = "out of maintenance"
        return True, f"{args.device}: {state}" + ("" if changed else " (already)")

    def reload_config(self, request: CommandRequest) -> Result:
        args = ReloadConfigArgs.model_validate(request.args)
        return self._agent.reload_config(args.config, version=args.version, expected_hash=args.hash)

    def set_rules(self, request: CommandRequest) -> Result:
        args = SetRulesArgs.model_validate(request.args)
        return self._agent.set_rules(args.rules, expected_hash=args.hash)

    def restart(self, request: CommandRequest) -> Result:
        NoArgs.model_validate(request.args)
        if self._on_restart is None:
            return False, "cannot restart: this agent runs without a supervisor (not agent run)"
        log.warning("restart asked for by command %s: stopping gracefully", request.id)
        self._on_restart()
        return True, "restarting: graceful stop, then exit 75 for systemd to start the agent again"
