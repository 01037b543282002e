"""What a person reads: the message of one notification, with its acknowledgement link."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.notify.channels import Message
from controller.notify.links import Link, LinkSigner, link_url

COLOUR_WORDS = {
    "red": "RED (extraordinarily serious)",
    "orange": "ORANGE (serious)",
    "yellow": "YELLOW (relatively serious)",
    "blue": "BLUE (general)",
    "green": "GREEN",
}


def link_for(signer: LinkSigner, recipient_id: int, deadline_ms: int) -> str:
    return signer.token(Link(recipient_id, deadline_ms // 1000))


def render(row: dict[str, Any], signer: LinkSigner, base_url: Callable[[], str]) -> Message:
    """One claimed outbox row (``controller.store.notify.claim_due``) as a message."""
    token = link_for(signer, row["recipient_id"], row["deadline_ms"])
    colour = str(row["colour"])
    title = f"[{colour.upper()}] alert #{row['alert_id']}: {row['point']}"
    lines = []
    if row["escalation"]:
        lines.append(
            f"Not acknowledged in time: now told to you, {row['person_name']}"
            f" ({row['layer']} {row['place']})."
        )
    else:
        lines.append(f"{row['person_name']}, you are on duty ({row['layer']} {row['place']}).")
    lines.append(f"Risk point {row['point']} at {row['alert_place']} is {COLOUR_WORDS[colour]}.")
    if row["kind"] == "blind_spot":
        lines.append(f"Blind spot: {row['device']} has gone quiet.")
    elif row["metric"]:
        value = "" if row["value"] is None else f" = {row['value']:g}"
        lines.append(f"{row['device']} {row['metric']}{value}")
    minutes = max(1, round((row["deadline_ms"] - row["enqueued_ms"]) / 60_000))
    lines.append(f"Acknowledge within {minutes} min: {link_url(base_url(), token)}")
    lines.append(f"ref: alert {row['alert_id']} {row['step']} {row['person']}")
    return Message(title=title, body="\n".join(lines))
