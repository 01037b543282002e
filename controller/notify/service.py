"""The duty notifications of one controller, put together: the link signer, the Apprise
sender, the planner (who is told, escalation), the outbox delivery and the mobile page's
flow. ``Controller`` starts it after the store and stops it before."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from controller.config import AuthMode, ControllerConfig
from controller.notify.acks import AckFlow, Transition
from controller.notify.channels import Message, Sender
from controller.notify.delivery import Delivery
from controller.notify.links import LinkSigner
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
