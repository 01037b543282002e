"""Acknowledgement from a phone: what opening a link shows, and what its buttons do.

``GET`` never changes anything (chat apps open links to preview them). The page offers what
the alert allows next: *Acknowledge*, *Acknowledge and start handling*, or *Start
handling* once someone acknowledged. ``POST`` carries the action and how many times the
link had been used when the page was shown; the use is counted in the same transaction as
the alert's step, only if that count still holds, so a form sent twice (a reload, a
replay) is refused. A link is used up once it started handling or its alert is closed.
Refusals are pages that say what happened and what to do, and are counted by reason.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.notify.links import Link, LinkProblem, LinkSigner
from controller.risk.chain import AlertState, TransitionRefused
from controller.store import notify as notify_store
from controller.store.sqlite import Store
from wire.clock import Clock

ACTIONS = {"acknowledge": AlertState.ACKNOWLEDGED, "handling": AlertState.HANDLING}
MAX_FORM_BYTES = 1024


class Transition(Protocol):
    def __call__(
        self,
        alert_id: int,
        to: AlertState,
        by: str,
        note: str,
        *,
        guard: Callable[[sqlite3.Connection], TransitionRefused | None] | None = None,
    ) -> TransitionRefused | None: ...


@dataclass(frozen=True, slots=True)
class AckPage:
    """What the mobile page shows."""

    status: int
    heading: str
    lines: tuple[str, ...] = ()
    alert: Mapping[str, Any] | None = None
    actions: tuple[str, ...] = ()  # "acknowledge", "ack_handling", "handling"
    seen: int = 0
    done: str | None = None  # what this request just did
    problem: LinkProblem | None = None
    history: tuple[str, ...] = field(default=())


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


REFUSALS = {
    LinkProblem.FORGED: (
        400,
        "This link is not valid",
        "It was not made by edgewatch, or it was changed or cut short. Open the link from"
        " the message again, or call your duty desk.",
    ),
    LinkProblem.EXPIRED: (
        410,
        "This link has expired",
        "Its deadline passed and the alert went on to the next layer on duty. Call your"
        " duty desk if you are handling it.",
    ),
    LinkProblem.USED: (410, "This link has been used", "There is nothing more it can do."),
    LinkProblem.REPLAYED: (
        409,
        "This form was already sent",
        "The same request came twice (a reload or a copy). Nothing was changed by it;"
        " open the link again to see where the alert is now.",
    ),
}


class AckFlow:
    def __init__(
        self,
        *,
        signer: LinkSigner,
        store: Store,
        clock: Clock,
        transition: Transition,
    ) -> None:
        self.signer = signer
        self.store = store
        self.clock = clock
        self.transition = transition
        self.refused: Counter[str] = Counter()
        self.acted: Counter[str] = Counter()

    def refuse(self, problem: LinkProblem, extra: str = "") -> AckPage:
        self.refused[problem.value] += 1
        status, heading, text = REFUSALS[problem]
        lines = (text,) if not extra else (extra, text)
        return AckPage(status=status, heading=heading, lines=lines, problem=problem)

    def _load(self, token: str) -> tuple[Link, dict[str, Any]] | AckPage:
        found = self.signer.verify(token, now_ms=self.clock.wall_ms())
        if isinstance(found, LinkProblem):
            return self.refuse(found)
        row = self.store.read(lambda conn: notify_store.recipient(conn, found.recipient_id))
        if row is None:  # signed by us, but nobody was told by it: a key shared by mistake
            return self.refuse(LinkProblem.FORGED)
        return found, row

    def _history(self, alert_id: int) -> tuple[str, ...]:
        acts = self.store.read(lambda conn: notify_store.last_acts(conn, alert_id))
        return tuple(f"{a['action']} by {a['by']} at {_time(a['at_ms'])}" for a in acts[:5])

    def view(self, token: str) -> AckPage:
        loaded = self._load(token)
        if isinstance(loaded, AckPage):
            return loaded
        link, row = loaded
        return self._page(link, row, done=None)

    def _page(self, link: Link, row: dict[str, Any], *, done: str | None) -> AckPage:
        state = AlertState(row["alert_state"])
        history = self._history(row["alert_id"])
        used_up = not row["alert_open"] or row["last_action"] == "handling"
        if used_up and done is None:
            closed = "" if row["alert_open"] else f"The alert is {state.value}."
            page = self.refuse(LinkProblem.USED, closed)
            return AckPage(**{**_fields(page), "alert": row, "history": history})
        actions: tuple[str, ...] = ()
        if not used_up:
            if state is AlertState.RAISED:
                actions = ("acknowledge", "ack_handling")
            elif state is AlertState.ACKNOWLEDGED:
                actions = ("handling",)
        lines = (
            f"For {row['person_name']} ({row['layer']} {row['place']}),"
            f" valid until {_time(link.expires_ms)}.",
        )
        return AckPage(
            status=200,
            heading=f"{str(row['colour']).upper()} alert: {row['point_name'] or row['point']}",
            lines=lines,
            alert=row,
            actions=actions,
            seen=row["link_uses"],
            done=done,
            history=history,
        )

    def act(self, token: str, form: Mapping[str, str]) -> AckPage:
        loaded = self._load(token)
        if isinstance(loaded, AckPage):
            return loaded
        link, row = loaded
        action = form.get("action", "")
        try:
            seen = int(form.get("seen", ""))
        except ValueError:
            seen = -1
        if action not in ("acknowledge", "ack_handling", "handling") or seen < 0:
            return AckPage(status=400, heading="This form is not one edgewatch sent",
                           lines=("Open the link from the message again.",))  # fmt: skip
        if not row["alert_open"] or row["last_action"] == "handling":
            return self._page(link, row, done=None)
        if seen != row["link_uses"]:  # shown before a use that happened since: sent again
            return self.refuse(LinkProblem.REPLAYED)
        by = f"{row['person_name']} ({row['layer']} {row['place']})"
        note = "by acknowledgement link"
        alert_id, recipient_id = row["alert_id"], row["id"]
        replayed: list[bool] = []

        def guard(conn: sqlite3.Connection) -> TransitionRefused | None:
            if notify_store.use_link(conn, recipient_id, seen, action):
                return None
            replayed.append(True)
            return TransitionRefused(409, "replayed")

        steps = {
            "acknowledge": [AlertState.ACKNOWLEDGED],
            "ack_handling": [AlertState.ACKNOWLEDGED, AlertState.HANDLING],
            "handling": [AlertState.HANDLING],
        }[action]
        refused = self.transition(alert_id, steps[0], by, note, guard=guard)
        if replayed:
            return self.refuse(LinkProblem.REPLAYED)
        if refused is None and len(steps) > 1:
            refused = self.transition(alert_id, steps[1], by, note)
            if refused is None:  # the link's last use: it started handling
                self.store.call(
                    lambda db: notify_store.use_link(db.conn, recipient_id, seen + 1, "handling")
                )
        fresh = self.store.read(lambda conn: notify_store.recipient(conn, recipient_id))
        assert fresh is not None
        if refused is not None:
            page = self._page(link, fresh, done=None)
            return AckPage(**{**_fields(page), "lines": (*page.lines, refused.detail)})
        self.acted[action] += 1
        done = {
            "acknowledge": "Acknowledged",
            "ack_handling": "Acknowledged, and handling",
            "handling": "Handling",
        }[action]
        return self._page(link, fresh, done=f"{done}: thank you, {row['person_name']}.")


def _fields(page: AckPage) -> dict[str, Any]:
    return {name: getattr(page, name) for name in AckPage.__dataclass_fields__}
