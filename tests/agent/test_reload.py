"""reload-config end to end: the controller's desired config pushed to a real agent, which
validates it, applies it without dropping buffered data, or rolls back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.agent import Agent
from agent.config import ConfigError, parse_config
from agent.uplink.reconfigure import controller_hash, merge_pushed
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from firmware_sim.bus import SimulatedBus
from tests.agent.command_rig import GATEWAY, Site, gauge, pushed_config, running_site
from tests.agent.conftest import WAIT_S, agent_toml
from tests.controller.support import get_json


@pytest.fixture
def site(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Site]:
    with running_site(tmp_path, mosquitto) as running:
        yield running


def good_reads(site: Site, device: str) -> int:
    return sum(p.health().reads_ok for o in site.agent.ports for p in o.pollers if p.name == device)


def test_a_good_config_is_applied_without_dropping_the_buffer(site: Site) -> None:
    wait_until(lambda: site.agent.buffer.last_seq >= 10, timeout_s=WAIT_S)
    seq_before = site.agent.buffer.last_seq
    document = pushed_config(gauge("gauge-1", 1), gauge("gauge-2", 2))

    done = site.push(document)

    assert done["state"] == "succeeded", done
    assert done["detail"].startswith("applied config v1")
    assert [p.name for o in site.agent.ports for p in o.pollers] == ["gauge-1", "gauge-2"]
    wait_until(lambda: good_reads(site, "gauge-2") > 0, timeout_s=WAIT_S, message="gauge-2 read")
    desired = get_json(site.client, f"{GATEWAY}/config")["desired"]
    site.wait_heartbeat("the pushed hash", lambda h: h["config_hash"] == desired["hash"])
    wait_until(
        lambda: get_json(site.client, f"{GATEWAY}/config")["drift"] == "in_sync",
        timeout_s=WAIT_S,
        message="the controller sees the gateway in sync",
    )
    # The buffer went on: numbering continues, nothing before the push was lost.
    assert site.agent.buffer.last_seq > seq_before
    assert len(site.agent.buffer.rows_between(1, seq_before, seq_before)) == seq_before
    last_good = json.loads((site.data_dir / "config-last-good.json").read_text())
    assert (last_good["version"], last_good["hash"]) == (1, desired["hash"])

    # The same config again (as after a reconnect): nothing changes.
    again = site.finished(site.client.post(f"{GATEWAY}/config/push", json={}).json()["id"])
    assert again["state"] == "succeeded", again["detail"]
    assert again["detail"].startswith("unchanged")


def test_a_pushed_config_keeps_a_local_override_and_says_so(site: Site) -> None:
    site.run({"type": "set-interval", "args": {"device": "gauge-1", "interval_s": 2.5}})
    document = pushed_config(gauge("gauge-1", 1, interval_s=0.2))

    done = site.push(document)

    assert done["state"] == "succeeded", done
    assert (
        "gauge-1.interval_s: kept the local override 2.5 s (the config says 0.2 s)"
        in (done["detail"])
    )
    assert site.agent.ports[0].pollers[0].interval_s == 2.5
    site.wait_heartbeat("the override", lambda h: h["local_overrides"]["gauge-1"])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"slavee": 3}, "devices[0] ('gauge-1').slavee: unknown key (did you mean 'slave'?)"),
        ({"port": "bus9"}, "devices[0] ('gauge-1').port: no [[ports]] entry named 'bus9'"),
    ],
)
def test_an_invalid_config_is_refused_naming_the_key(
    site: Site, change: dict[str, object], named: str
) -> None:
    running_hash = site.agent.config.config_hash
    document = pushed_config({**gauge("gauge-1", 1), **change})

    done = site.push(document)

    assert done["state"] == "failed"
    assert done["detail"].startswith("invalid config, not applied: pushed config v1: ")
    assert named in done["detail"]
    assert site.agent.config.config_hash == running_hash


def test_a_config_for_another_broker_is_refused(site: Site) -> None:
    document = {**pushed_config(), "mqtt": {"host": "10.0.0.9"}}
    done = site.push(document)
    assert done["state"] == "failed"
    assert "mqtt.host: differs from the running config" in done["detail"]


def test_a_config_whose_devices_all_fail_is_rolled_back(site: Site) -> None:
    running_hash = site.agent.config.config_hash
    document = pushed_config(gauge("gauge-1", 7))  # no slave 7

    done = site.push(document)

    assert done["state"] == "failed", done
    assert done["detail"].startswith(f"rolled back to config {running_hash[:12]}: ")
    assert "all 1 devices failed" in done["detail"]
    assert site.agent.config.config_hash == running_hash
    reads = good_reads(site, "gauge-1")
    wait_until(lambda: good_reads(site, "gauge-1") > reads, timeout_s=WAIT_S, message="reads again")
    site.wait_heartbeat("the old hash", lambda h: h["config_hash"] == running_hash)
    assert get_json(site.client, f"{GATEWAY}/config")["drift"] == "drift"


def test_the_applied_config_survives_a_restart_until_agent_toml_is_edited(
    tmp_path: Path, mosquitto: Mosquitto, gauge_bus: SimulatedBus
) -> None:
    toml = agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path)
    document = pushed_config(gauge("gauge-1", 1, interval_s=0.3))
    with Agent(parse_config(toml)) as agent:
        ok, detail = agent.reload_config(
            document, version=4, expected_hash=controller_hash(document)
        )
        assert ok, detail

    with Agent(parse_config(toml)) as agent:  # the same agent.toml: the pushed config runs
        assert (agent.config_version, agent.config.config_hash) == (4, controller_hash(document))
        assert agent.ports[0].pollers[0].interval_s == 0.3

    edited = toml.replace("interval_s = 0.1", "interval_s = 0.2")
    with Agent(parse_config(edited)) as agent:  # a technician edited it: the file wins
        assert agent.config_version is None
        assert agent.ports[0].pollers[0].interval_s == 0.2


def test_a_corrupted_config_is_not_applied(
    tmp_path: Path, mosquitto: Mosquitto, gauge_bus: SimulatedBus
) -> None:
    toml = agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path)
    document = pushed_config(gauge("gauge-1", 1))
    with Agent(parse_config(toml)) as agent:
        ok, detail = agent.reload_config(document, version=2, expected_hash="0" * 64)
    assert not ok
    assert detail == "config v2: its hash does not match its content: not applied"


SECRET_TEXT = "root:TOP-SECRET-HASH:19000:0:99999:7:::"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"risk": {"rules_file": "SECRET"}}, "risk.rules_file"),
        ({"ports": [{"name": "bus1", "url": "socket://10.9.8.7:502"}]}, "ports[0].url"),
        (
            {"devices": [gauge("gauge-1", 1, trigger={"address": 7, "value": 1, "settle_s": 1})]},
            "devices[0].trigger",
        ),
        ({"devices": [gauge("gauge-1", 1, write_enable={"coil": 4})]}, "devices[0].write_enable"),
        ({"devices": [gauge("gauge-1", 1, command="RESET")]}, "devices[0].command"),
    ],
)
def test_the_agent_refuses_a_pushed_file_host_or_device_write_whatever_the_controller_said(
    tmp_path: Path,
    mosquitto: Mosquitto,
    gauge_bus: SimulatedBus,
    change: dict[str, object],
    named: str,
) -> None:
    """Sent straight to the agent, as a controller that did not check (or an impostor on the
    broker) would: refused naming the key, nothing of the file in the answer, nothing run."""
    secret = tmp_path / "shadow"
    secret.write_text(SECRET_TEXT)
    if "risk" in change:
        change = {"risk": {"rules_file": str(secret)}}
    toml = agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path)
    document = {**pushed_config(gauge("gauge-1", 1)), **change}
    with Agent(parse_config(toml)) as agent:
        running = agent.config.config_hash
        ok, detail = agent.reload_config(
            document, version=2, expected_hash=controller_hash(document)
        )
        assert not ok
        assert detail.startswith(f"invalid config, not applied: pushed config v2: {named}: ")
        assert "belongs to the gateway's own agent.toml" in detail
        assert "TOP-SECRET" not in detail
        assert agent.config.config_hash == running
        assert agent.ports[0].port.url == gauge_bus.port_path


def test_a_pushed_config_keeps_the_gateways_own_url_and_device_writes(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Left out of the push, they come from agent.toml: the port's url by its name, a
    device's write-enable coil and trigger by the device (same name, driver, port, slave)."""
    toml = agent_toml(tmp_path / "data", mosquitto, port_url="/dev/ttyLOCAL0")
    toml = toml.replace("slave = 1\n", "slave = 1\nwrite_enable = {coil = 4}\n", 1)
    running = parse_config(toml)
    merged = merge_pushed(
        running,
        pushed_config(gauge("gauge-1", 1, interval_s=2.0)),
        source="pushed config v5",
        base_dir=None,
    )
    assert merged.ports[0].url == "/dev/ttyLOCAL0"
    assert merged.devices[0].interval_s == 2.0
    assert merged.devices[0].write_enable == running.devices[0].write_enable  # type: ignore[attr-defined]
    assert merged.devices[0].write_enable is not None  # type: ignore[attr-defined]
    assert merged.document == pushed_config(gauge("gauge-1", 1, interval_s=2.0))  # as sent

    moved = pushed_config(gauge("gauge-1", 2))  # the coil is slave 1's, not slave 2's
    with pytest.raises(ConfigError, match=r"devices\[0\] \('gauge-1'\)\.slave: differs"):
        merge_pushed(running, moved, source="pushed config v6", base_dir=None)
    new_port = {**pushed_config(), "ports": [{"name": "bus9"}]}
    with pytest.raises(ConfigError, match=r"ports\[0\] \('bus9'\)\.url: this gateway's agent"):
        merge_pushed(running, new_port, source="pushed config v7", base_dir=None)


def test_a_rules_file_that_is_not_rules_is_refused_without_quoting_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    secret = tmp_path / "shadow"
    for content in (SECRET_TEXT, '{"TOP-SECRET-KEY": "TOP-SECRET-VALUE"}'):
        secret.write_text(content)
        toml = agent_toml(tmp_path / "data", mosquitto) + f'\n[risk]\nrules_file = "{secret}"\n'
        with pytest.raises(ConfigError) as refused:
            parse_config(toml)
        assert f"risk.rules_file: {secret} is not a rule set" in str(refused.value)
        assert "TOP-SECRET" not in str(refused.value)
