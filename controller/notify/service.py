"""The duty notifications of one controller, put together: the link signer, the Apprise
sender, the planner (who is told, escalation), the outbox delivery and the mobile page's
flow. ``Controller`` starts it after the store and stops it before."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from controller.config import AuthMode, ControllerConfig
from controller.metrics import Family
from controller.notify.acks import AckFlow, Transition
from controller.notify.channels import Message, Sender
from controller.notify.delivery import Delivery
from controller.notify.links import LinkProblem, LinkSigner
from controller.notify.messages import render
from controller.notify.planner import DutyNotifier
from controller.refusals import StartupRefusedError
from controller.store.sqlite import Store
from wire.clock import Clock
from wire.lifecycle import Lifecycle

log = logging.getLogger(__name__)


class NotifyError(StartupRefusedError):
    """The link secret cannot be read."""


def link_secret(config: ControllerConfig) -> bytes:
    """The configured secret; in demo mode without one, a fresh one for this run (links die
    with the process, which is what a first look needs)."""
    notify = config.notify
    if notify.link_secret is not None:
        return notify.link_secret.encode()
    if notify.link_secret_file is not None:
        try:
            secret = notify.link_secret_file.read_bytes().strip()
        except OSError as exc:
            raise NotifyError(
                f"notify.link_secret_file: cannot read {notify.link_secret_file}:"
                f" {exc.strerror or exc}"
            ) from None
        if len(secret) < 32:
            raise NotifyError(
                f"notify.link_secret_file: {notify.link_secret_file} holds fewer than 32 bytes"
            )
        return secret
    if config.api.auth is not AuthMode.DEMO and (notify.rosters or notify.channels):
        raise NotifyError("notify: set link_secret or link_secret_file")  # refusals say so first
    return secrets.token_bytes(32)


class Notify(Lifecycle):
    def __init__(
        self,
        config: ControllerConfig,
        *,
        store: Store,
        clock: Clock,
        transition: Transition,
        base_url: Callable[[], str],
    ) -> None:
        self.config = config.notify
        self.signer = LinkSigner(link_secret(config))
        self._base_url = base_url
        self.sender = Sender(
            {c.name: c.url for c in self.config.channels}, timeout_s=self.config.request_timeout_s
        )
        self.delivery = Delivery(
            store=store, sender=self.sender, config=self.config, render=self.render, clock=clock
        )
        self.planner = DutyNotifier(
            config=self.config,
            alert_routing=config.alert_routing,
            store=store,
            clock=clock,
            wake=self.delivery.wake,
        )
        self.acks = AckFlow(signer=self.signer, store=store, clock=clock, transition=transition)

    def link_base_url(self) -> str:
        return self.config.link_base_url or self._base_url()

    def render(self, row: dict[str, Any]) -> Message:
        return render(row, self.signer, self.link_base_url)

    def start(self) -> None:
        self.planner.load()
        self.delivery.start()

    def stop(self) -> None:
        self.delivery.stop()

    def tick(self) -> None:
        self.planner.tick()

    def metric_families(self) -> list[Family]:
        """Notifications by outcome, channels failing now, acknowledgement links used and
        refused by reason."""
        outcomes = Family(
            "edgewatch_notifications_total",
            "counter",
            "Duty notifications since start, by outcome.",
        )
        for outcome in ("sent", "failed_attempts", "given_up", "cancelled"):
            outcomes.add(self.delivery.counts[outcome], outcome=outcome)
        failing = Family("edgewatch_notify_channel_failing", "gauge", "1 while a channel fails.")
        for channel in self.config.channels:
            state = self.delivery.channels.get(channel.name)
            failing.add(1 if state is not None and state.failures else 0, channel=channel.name)
        refused = Family(
            "edgewatch_ack_links_refused_total", "counter", "Acknowledgement links refused."
        )
        for problem in LinkProblem:
            refused.add(self.acks.refused[problem.value], reason=problem.value)
        acted = Family(
            "edgewatch_ack_links_used_total", "counter", "Alert steps taken through a link."
        )
        for action in ("acknowledge", "ack_handling", "handling"):
            acted.add(self.acks.acted[action], action=action)
        return [outcomes, failing, refused, acted]
