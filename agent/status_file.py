"""``data_dir/status.json``: what the running agent last knew, for ``edgewatch agent status``.

The heartbeat loop rewrites it (atomically: temporary file, fsync, rename) every
heartbeat, whether or not the broker is reachable, so a technician on site can see the
last contact with the broker and each device's state without any uplink. ``written_ms``
tells how fresh it is: a file much older than a few heartbeats means the agent is not
running (or is stuck).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.local_state import write_json_atomically
from agent.running import RunningAgent
from agent.uplink.replay_progress import ReplayProgress

STATUS_FILE = "status.json"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DeviceStatus(_Doc):
    state: str
    last_good_ms: int | None = None
    consecutive_failures: int = 0
    last_error: str | None = None


class BrokerContact(_Doc):
    broker: str  # host:port
    connected: bool
    last_connected_ms: int | None = None
    last_disconnected_ms: int | None = None
    last_puback_ms: int | None = None


class AgentStatus(_Doc):
    gateway_id: str
    agent_pid: int
    agent_version: str
    written_ms: int
    heartbeat_interval_s: float
    session: int
    config_hash: str
    config_version: int | None = None
    mqtt: BrokerContact
    devices: dict[str, DeviceStatus]
    replay: ReplayProgress | None = None  # the replay command running, else the last one


def write_status(data_dir: Path, status: AgentStatus) -> None:
    write_json_atomically(data_dir / STATUS_FILE, status.model_dump(mode="json"))


def read_status(data_dir: Path) -> AgentStatus | None:
    """The last status the agent wrote; None when there is none (or it is unreadable)."""
    try:
        return AgentStatus.model_validate_json((data_dir / STATUS_FILE).read_bytes())
    except (OSError, ValidationError):
        return None


def agent_status(agent: RunningAgent) -> AgentStatus:
    """What ``agent`` knows now, as status.json holds it."""
    session, mqtt = agent.session, agent.config.mqtt
    return AgentStatus(
        gateway_id=agent.config.gateway.id,
        agent_pid=os.getpid(),
        agent_version=agent.version,
        written_ms=time.time_ns() // 1_000_000,
        heartbeat_interval_s=agent.config.gateway.heartbeat_interval_s,
        session=session.session,
        config_hash=agent.config.config_hash,
        config_version=agent.config_version,
        mqtt=BrokerContact(
            broker=f"{mqtt.host}:{mqtt.port}",
            connected=session.connected,
            last_connected_ms=session.last_connected_ms,
            last_disconnected_ms=session.last_disconnected_ms,
            last_puback_ms=session.last_puback_ms,
        ),
        devices={
            poller.name: DeviceStatus(
                state=str(health.state),
                last_good_ms=health.last_good_ms,
                consecutive_failures=health.consecutive_failures,
                last_error=health.last_error,
            )
            for owner in agent.ports
            for poller in owner.pollers
            for health in [poller.health()]
        }
        | {
            name: DeviceStatus(
                state=str(health.state),
                last_good_ms=health.last_good_ms,
                consecutive_failures=health.consecutive_failures,
                last_error=health.last_error,
            )
            for name, health in agent.station_book.health().items()
        },
        replay=agent.publisher.replay_progress(),
    )
