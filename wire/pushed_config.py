"""What a pushed config (``reload-config``) may not say: the keys that belong to the gateway.

An operator's push travels from the controller's API to a gateway in the field. Some keys
of an agent config reach beyond choosing what to read and how often: they name a file the
agent reads, a host it opens a socket to, or a value it writes to a field device. Those are
set in the gateway's own agent.toml, by whoever stands at the gateway, and never by a push:

| key | why it stays on the gateway |
| --- | --- |
| ``risk.rules_file`` | a path the agent reads (rules come from the controller's ``set-rules``) |
| ``ports[].url`` | a device path or a pyserial URL (``socket://host:port``, ``rfc2217://``) |
| ``devices[].trigger`` | a holding register the agent writes before every read |
| ``devices[].write_enable`` | a coil the agent sets to unlock writes |
| ``devices[].command`` | a line the agent sends to a serial device |

Both sides check (``gateway_owned_keys``): the controller refuses such a config (422 naming
the key) and the agent refuses it again when it arrives, since it must not trust the
controller's check. A pushed port takes the ``url`` of the gateway's port of the same name,
and a pushed device keeps its local ``trigger``, ``write_enable`` and ``command`` (agent
README, "Pushed config"). Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RISK_KEYS = ("rules_file",)
PORT_KEYS = ("url",)
DEVICE_KEYS = ("trigger", "write_enable", "command")


def gateway_owned_keys(config: Mapping[str, Any]) -> list[str]:
    """The gateway-owned keys present in a pushed ``config``, as paths that name them:
    ``risk.rules_file``, ``ports[0].url``, ``devices[2].trigger``; empty if there is none."""
    found: list[str] = []
    risk = config.get("risk")
    if isinstance(risk, Mapping):
        found += [f"risk.{key}" for key in RISK_KEYS if key in risk]
    for table, keys in (("ports", PORT_KEYS), ("devices", DEVICE_KEYS)):
        entries = config.get(table)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if isinstance(entry, Mapping):
                found += [f"{table}[{index}].{key}" for key in keys if key in entry]
    return found


def refusal(key: str) -> str:
    """One line naming ``key`` and why a push may not set it."""
    return (
        f"{key}: belongs to the gateway's own agent.toml: a pushed config may not set it"
        " (leave it out; the gateway keeps its local value)"
    )
