"""A pushed config may not make a gateway read a file, dial a host or write to a field device:
the controller refuses such a config on every way in (422 naming the key), and queues
nothing. The agent's own refusal is in tests/agent/test_reload.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from controller.fleet import configs
from controller.service import Controller
from tests.controller.support import get_json

GATEWAY = "/api/v1/gateways/gw-a"
DEVICE = {
    "name": "incl-1",
    "driver": "modbus_rtu",
    "port": "bus1",
    "slave": 3,
    "registers": [{"metric": "tilt_x", "address": 0}],
}
# What an operator could have pushed before: a file to read, a host to dial, writes.
OWNED = [
    ({"risk": {"rules_file": "/etc/shadow"}}, "risk.rules_file"),
    ({"ports": [{"name": "bus1", "url": "socket://10.9.8.7:502"}]}, "ports[0].url"),
    ({"devices": [{**DEVICE, "trigger": {"address": 40, "value": 1, "settle_s": 1}}]}, "trigger"),
    ({"devices": [{**DEVICE, "write_enable": {"coil": 0}}]}, "devices[0].write_enable"),
    ({"devices": [DEVICE, {**DEVICE, "name": "gas-1", "command": "RESET"}]}, "devices[1].command"),
]


def with_ports(config: dict[str, Any]) -> dict[str, Any]:
    return {"gateway": {"id": "gw-a"}, "ports": [{"name": "bus1"}], **config}


def refusal_of(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return error["field"], error["msg"]


@pytest.mark.parametrize(("config", "key"), OWNED, ids=[key for _, key in OWNED])
def test_a_config_with_a_gateway_owned_key_is_refused_naming_it(
    client: httpx.Client, config: dict[str, Any], key: str
) -> None:
    document = with_ports(config)
    field, message = refusal_of(client.put(f"{GATEWAY}/config", json={"config": document}))
    assert field == "body.config"
    assert key in message
    assert "belongs to the gateway's own agent.toml" in message
    assert get_json(client, f"{GATEWAY}/config")["desired"] is None

    command = {
        "type": "reload-config",
        "args": {"config": document, "version": 1, "hash": configs.config_hash(document)},
    }
    field, message = refusal_of(client.post(f"{GATEWAY}/commands", json=command))
    assert field == "body.args.config"
    assert key in message
    assert get_json(client, f"{GATEWAY}/commands") == []


def test_a_stored_version_with_a_gateway_owned_key_is_not_pushed(
    controller: Controller, client: httpx.Client
) -> None:
    """A version stored before the rule existed stays readable but is never sent."""
    document = with_ports({"devices": [{**DEVICE, "write_enable": {"coil": 0}}]})
    controller.store.call(
        lambda db: configs.set_desired(db, "gw-a", document, actor="older", now_ms=1)
    )
    field, message = refusal_of(client.post(f"{GATEWAY}/config/push", json={}))
    assert field == "body.version"
    assert "devices[0].write_enable" in message
    assert get_json(client, f"{GATEWAY}/commands") == []
    allowed = with_ports({"devices": [DEVICE]})
    assert client.put(f"{GATEWAY}/config", json={"config": allowed}).status_code == 200
    pushed = client.post(f"{GATEWAY}/config/push", json={})
    assert pushed.status_code == 201, pushed.text
