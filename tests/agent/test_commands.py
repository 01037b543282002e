"""Each command end to end: the controller's API -> mosquitto -> a real agent reading a
simulated gauge on a pty -> cmd-result -> the command's lifecycle in the controller's API."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.agent.command_rig import Site, running_site
from tests.agent.conftest import GATEWAY_ID, WAIT_S, Recorder
from wire import (
    CommandRequest,
    CommandResult,
    Quality,
    ReadingBatch,
    TopicKind,
    decode,
    encode,
    topic_for,
)


@pytest.fixture
def site(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Site]:
    with running_site(tmp_path, mosquitto) as running:
        yield running


def test_ping_answers_version_session_and_uptime(site: Site) -> None:
    done = site.run({"type": "ping"})
    assert done["state"] == "succeeded", done
    answer = json.loads(done["detail"])
    assert answer["agent_version"] == site.agent.version
    assert answer["session"] == site.agent.session.session >= 1
    assert answer["uptime_s"] > 0
    assert answer["config_hash"] == site.agent.config.config_hash


def test_poll_now_reads_through_the_port_owner(site: Site) -> None:
    poller = site.agent.ports[0].pollers[0]
    site.agent.ports[0].set_interval("gauge-1", 3600)  # only a poll-now reads it now
    reads_before = poller.health().reads_ok
    done = site.run({"type": "poll-now", "args": {"device": "gauge-1"}})
    assert done["state"] == "succeeded", done
    assert done["detail"] == "read now: gauge-1"
    assert poller.health().reads_ok >= reads_before + 1

    unknown = site.run({"type": "poll-now", "args": {"device": "gauge-9"}})
    assert unknown["state"] == "failed"
    assert "no device 'gauge-9'" in unknown["detail"]


def test_set_interval_takes_effect_at_once_and_is_kept_as_a_shown_local_override(
    site: Site,
) -> None:
    done = site.run({"type": "set-interval", "args": {"device": "gauge-1", "interval_s": 2.5}})
    assert done["state"] == "succeeded", done
    assert "interval 2.5 s (was 0.1 s)" in done["detail"]
    assert "local override" in done["detail"]
    assert site.agent.ports[0].pollers[0].interval_s == 2.5
    saved = json.loads((site.data_dir / "overrides.json").read_text())
    assert saved == {"devices": {"gauge-1": {"interval_s": 2.5}}}
    site.wait_heartbeat(
        "the override", lambda h: h["local_overrides"] == {"gauge-1": {"interval_s": 2.5}}
    )

    # Back to the config's own value: nothing left to override.
    back = site.run({"type": "set-interval", "args": {"device": "gauge-1", "interval_s": 0.1}})
    assert "local override removed" in back["detail"]
    site.wait_heartbeat("no override", lambda h: h["local_overrides"] == {})


def test_a_technician_edit_of_the_overrides_file_is_applied_and_shown(site: Site) -> None:
    path = site.data_dir / "overrides.json"
    path.write_text('{"devices": {"gauge-1": {"interval_s": 4.0}}}')
    site.wait_heartbeat("the edited override", lambda h: h["local_overrides"].get("gauge-1"))
    assert site.agent.ports[0].pollers[0].interval_s == 4.0
    path.write_text('{"devices": {"gauge-1": {"interval_seconds": 4.0}}}')
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))  # a new mtime for sure
    health = site.wait_heartbeat("the file refused", lambda h: h["local_overrides_error"])
    assert "interval_seconds" in health["local_overrides_error"]
    assert health["local_overrides"] == {}


def test_maintenance_marks_readings_and_shows_in_the_heartbeat(
    site: Site, recorder: Recorder
) -> None:
    done = site.run({"type": "maintenance", "args": {"device": "gauge-1", "on": True}})
    assert done["state"] == "succeeded", done
    assert "in maintenance" in done["detail"]
    site.wait_heartbeat("gauge-1 in maintenance", lambda h: h["maintenance"] == ["gauge-1"])

    def maintenance_readings() -> list[Any]:
        batches = recorder.decoded(TopicKind.READINGS, ReadingBatch)
        return [r for b in batches for r in b.readings if r.quality is Quality.MAINTENANCE]

    marked = recorder.wait_for(maintenance_readings, "readings marked maintenance")
    assert all(r.value is not None for r in marked)  # the technician still sees values
    assert json.loads((site.data_dir / "maintenance.json").read_text()) == {"devices": ["gauge-1"]}

    off = site.run({"type": "maintenance", "args": {"device": "gauge-1", "on": False}})
    assert off["detail"] == "gauge-1: out of maintenance"
    site.wait_heartbeat("no maintenance", lambda h: h["maintenance"] == [])


def test_restart_answers_then_asks_the_supervisor(site: Site) -> None:
    done = site.run({"type": "restart"})
    assert done["state"] == "succeeded", done
    assert "exit 75" in done["detail"]
    assert site.restart_asked.is_set()


def test_heartbeat_reports_disk_clock_and_config(site: Site) -> None:
    health = site.wait_heartbeat("disk free", lambda h: h.get("disk_free_bytes"))
    assert health["disk_free_bytes"] > 0
    assert health["clock_synchronized"] in (True, False, None)
    assert health["config_hash"] == site.agent.config.config_hash
    assert health["maintenance"] == []


class RawController:
    """A paho client sending commands the controller's API would refuse to send."""

    def __init__(self, broker: Mosquitto) -> None:
        self.results: list[CommandResult] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        wait_until(self.client.is_connected, timeout_s=5, message="raw controller connected")
        any_result = topic_for(GATEWAY_ID, TopicKind.CMD_RESULT, "x")[:-1] + "+"
        self.client.subscribe(any_result, qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.results.append(decode(CommandResult, bytes(msg.payload)))

    def send(self, request: CommandRequest) -> CommandResult:
        """Send ``request``; return its final result (succeeded or failed)."""
        topic = topic_for(GATEWAY_ID, TopicKind.CMD, request.id)
        self.client.publish(topic, encode(request), qos=1).wait_for_publish(5)
        found = wait_until(
            lambda: next(
                (r for r in self.results if r.id == request.id and r.outcome != "accepted"), None
            ),
            timeout_s=WAIT_S,
            message=f"a result for {request.id}",
        )
        assert found is not None
        return found

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_expired_and_unknown_commands_fail_without_running(
    site: Site, mosquitto: Mosquitto
) -> None:
    raw = RawController(mosquitto)
    try:
        future_ms = time.time_ns() // 1_000_000 + 60_000
        expired = raw.send(
            CommandRequest(id="late-1", type="restart", deadline_ms=future_ms - 120_000)
        )
        shell = raw.send(CommandRequest(id="shell-1", type="shell", deadline_ms=future_ms))
        bad = raw.send(
            CommandRequest(
                id="bad-1", type="set-interval", args={"device": "gauge-1"}, deadline_ms=future_ms
            )
        )
    finally:
        raw.close()
    assert (expired.outcome, expired.detail) == ("failed", "deadline passed before the command ran")
    assert not site.restart_asked.is_set()
    assert (shell.outcome, shell.detail) == ("failed", "unknown command type 'shell'")
    assert bad.outcome == "failed"
    assert "args.interval_s: missing required key" in bad.detail
