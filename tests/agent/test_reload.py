"""reload-config end to end: the controller's desired config pushed to a real agent, which
validates it, applies it without dropping buffered data, or rolls back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.agent import Agent
from agent.config import parse_config
from agent.uplink.reconfigure import controller_hash
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
    document = pushed_config(gauge("gauge-1", 1), gauge("gauge-2", 2), port_url=site.bus.port_path)

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
    document = pushed_config(gauge("gauge-1", 1, interval_s=0.2), port_url=site.bus.port_path)

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
    document = pushed_config({**gauge("gauge-1", 1), **change}, port_url=site.bus.port_path)

    done = site.push(document)

    assert done["state"] == "failed"
    assert done["detail"].startswith("invalid config, not applied: pushed config v1: ")
    assert named in done["detail"]
    assert site.agent.config.config_hash == running_hash


def test_a_config_for_another_broker_is_refused(site: Site) -> None:
    document = {**pushed_config(port_url=site.bus.port_path), "mqtt": {"host": "10.0.0.9"}}
    done = site.push(document)
    assert done["state"] == "failed"
    assert "mqtt.host: differs from the running config" in done["detail"]


def test_a_config_whose_devices_all_fail_is_rolled_back(site: Site) -> None:
    running_hash = site.agent.config.config_hash
    document = pushed_config(gauge("gauge-1", 7), port_url=site.bus.port_path)  # no slave 7

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
    document = pushed_config(gauge("gauge-1", 1, interval_s=0.3), port_url=gauge_bus.port_path)
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
    document = pushed_config(gauge("gauge-1", 1), port_url=gauge_bus.port_path)
    with Agent(parse_config(toml)) as agent:
        ok, detail = agent.reload_config(document, version=2, expected_hash="0" * 64)
    assert not ok
    assert detail == "config v2: its hash does not match its content: not applied"
