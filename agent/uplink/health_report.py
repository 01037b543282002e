"""The heartbeat's health payload (``wire.Health``): what the running agent reports.

Built from the agent's parts on every heartbeat (``Agent.health``): buffer statistics and
drops, each device's health, versions, and the fields beyond the contract the controller
and ``edgewatch agent status`` read (memory queue, rules digest, overrides, disk, clock).
"""

from __future__ import annotations

import platform

import paho.mqtt

from agent.buffer.eviction import ACKED_EVICTED
from agent.running import RunningAgent
from agent.system_info import clock_synchronized, disk_free_bytes
from wire import Health


def build_health(agent: RunningAgent, *, now_ms: int) -> Health:
    """``agent``'s health at ``now_ms`` (wall clock)."""
    stats = agent.buffer.stats()
    dropped = agent.buffer.dropped()
    acked_evicted = dropped.pop(ACKED_EVICTED, 0)
    for reason, count in agent.intake.dropped().items():
        dropped[reason] = dropped.get(reason, 0) + count
    devices = {p.name: p.health() for owner in agent.ports for p in owner.pollers}
    devices.update(agent.station_book.heartbeat_health())
    return Health.model_validate(
        {
            "session": agent.session.session,
            "ts_ms": now_ms,
            "uptime_s": agent.uptime_s(),
            "heartbeat_interval_s": agent.config.gateway.heartbeat_interval_s,
            "buffer_rows": stats.rows,
            "buffer_bytes": stats.bytes,
            "oldest_unsent_age_s": stats.oldest_unsent_age_s,
            "last_seq": stats.last_seq,
            "dropped": dropped,
            "devices": devices,
            "station_clock_offsets_ms": agent.station_book.clock_offsets_ms(),
            "config_hash": agent.config.config_hash,
            "versions": {
                "agent": agent.version,
                "python": platform.python_version(),
                "paho-mqtt": paho.mqtt.__version__,
            },
            # Beyond the contract's fields (Health allows extras).
            "buffer_unsent_rows": stats.unsent_rows,
            "buffer_used_bytes": stats.used_bytes,
            "first_unsent_seq": stats.first_unsent_seq,
            "alerts_unsent": stats.alerts_unsent,
            "acked_evicted": acked_evicted,
            "buffer_error": agent.intake.error,
            "memory_queue_readings": agent.intake.held_readings,
            "controller_online": agent.session.controller_online,
            "poll_loop_crashes": sum(owner.crashes for owner in agent.ports),
            "config_version": agent.config_version,
            "risk_rules_hash": agent.edge_rules.digest,
            "disk_free_bytes": disk_free_bytes(agent.config.gateway.data_dir),
            "clock_synchronized": clock_synchronized(),
            "maintenance": sorted(agent.maintenance.devices),
            "local_overrides": agent.overrides.as_dict(),
            "local_overrides_error": agent.overrides.error,
            "listeners": agent.stations.stats() if agent.stations is not None else {},
            "station_alarms_unrouted": agent.station_alarms_unrouted,
        }
    )
