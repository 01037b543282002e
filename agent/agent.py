"""The gateway agent: buffer, port owners, MQTT session, publisher and heartbeat, wired.

``Agent(config)`` is a context manager. Readings flow one way:

    port owner thread --append--> Buffer --take_unsent--> publisher thread --> MqttSession
                                    ^------------------ ack on PUBACK -----------------'

Stopping goes in the order that gets the offline status out first (the controller must
see a stopped gateway at once): publisher and heartbeat stop, the MQTT session publishes
its retained offline status and disconnects, the port owners stop, the buffer closes.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from types import TracebackType

import paho.mqtt
from pydantic import ValidationError

from agent.buffer import Buffer
from agent.clock import SYSTEM_CLOCK, Clock
from agent.config import AgentConfig
from agent.counter_state import SqliteCounterStore
from agent.mqtt import MqttSession
from agent.ports import PortOwner
from drivers.base import Measurement
from wire import Health

log = logging.getLogger(__name__)

BATCH_MAX_READINGS = 500
MAX_INFLIGHT_BATCHES = 10  # batches awaiting PUBACK before the publisher waits
PURGE_EVERY_S = 60.0
_IDLE_WAIT_S = 0.5


def agent_version() -> str:
    try:
        return importlib.metadata.version("edgewatch")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class Agent:
    """One gateway's agent, built from a validated config; start with ``with Agent(cfg):``."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        batch_max_readings: int = BATCH_MAX_READINGS,
    ) -> None:
        self.config = config
        self._clock = clock
        self._batch_max_readings = batch_max_readings
        self._config_hash = config.config_hash
        self._version = agent_version()
        self.buffer = Buffer(config.gateway.data_dir / "buffer.db", now_ms=clock.wall_ms)
        self.session = MqttSession(
            gateway_id=config.gateway.id,
            mqtt=config.mqtt,
            heartbeat_interval_s=config.gateway.heartbeat_interval_s,
            buffer=self.buffer,
            agent_version=self._version,
            now_ms=clock.wall_ms,
            on_online=self._on_online,
        )
        self.counters = SqliteCounterStore(config.gateway.data_dir / "counters.db")
        self.ports = [
            PortOwner(
                port, config.devices_on(port.name), self._store, clock, counters=self.counters
            )
            for port in config.ports
        ]
        self._dropped: Counter[str] = Counter()
        self._dropped_lock = threading.Lock()
        self._stopping = threading.Event()
        self._readings_waiting = threading.Event()
        self._heartbeat_due = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_s = clock.monotonic_s()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._started_s = self._clock.monotonic_s()
        self.buffer.open()
        log.info(
            "agent %s for gateway %s: %d ports, %d devices, config %s",
            self._version,
            self.config.gateway.id,
            len(self.config.ports),
            len(self.config.devices),
            self._config_hash[:12],
        )
        self.session.start()
        for owner in self.ports:
            owner.start()
        for name, target in (
            ("publisher", self._publish_loop),
            ("heartbeat", self._heartbeat_loop),
        ):
            thread = threading.Thread(target=self._supervised, args=(name, target), name=name)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        self._readings_waiting.set()
        self._heartbeat_due.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self.session.stop()
        for owner in self.ports:
            owner.stop()
        self.counters.close()
        self.buffer.close()

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- readings in ----------------------------------------------------------------------

    def _store(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        """The port owners' sink: write to the buffer before anything is published."""
        try:
            self.buffer.append(device, ts_ms, measurements)
        except ValidationError as exc:
            self._drop("invalid_reading", len(measurements), f"device {device!r}: {exc}")
        except (sqlite3.Error, OSError) as exc:
            self._drop("buffer_write", len(measurements), f"buffer write failed: {exc}")
        else:
            self._readings_waiting.set()

    def _drop(self, reason: str, count: int, detail: str) -> None:
        with self._dropped_lock:
            first = self._dropped[reason] == 0
            self._dropped[reason] += count
        if first:
            log.error("dropping readings (%s): %s", reason, detail)

    # -- loops ----------------------------------------------------------------------------

    def _supervised(self, name: str, loop: Callable[[], None]) -> None:
        """Run ``loop`` until stop; a crash is logged and the loop restarted (capped wait)."""
        delay_s = 0.1
        while not self._stopping.is_set():
            try:
                loop()
                return
            except Exception:
                log.exception("%s loop crashed; restarting in %.1f s", name, delay_s)
                self._stopping.wait(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    def _publish_loop(self) -> None:
        next_purge_s = self._clock.monotonic_s()
        while not self._stopping.is_set():
            if self._clock.monotonic_s() >= next_purge_s:
                self.buffer.purge_acked(self.config.buffer.acked_retention_s)
                next_purge_s = self._clock.monotonic_s() + PURGE_EVERY_S
            if not self.session.connected:
                self._readings_waiting.wait(_IDLE_WAIT_S)
                self._readings_waiting.clear()
                continue
            if not self.session.wait_for_capacity(MAX_INFLIGHT_BATCHES, _IDLE_WAIT_S):
                continue
            self._readings_waiting.clear()
            rows = self.buffer.take_unsent(self._batch_max_readings)
            if not rows:
                self._readings_waiting.wait(_IDLE_WAIT_S)
                continue
            if not self.session.publish_readings(rows):
                self.buffer.release(r.seq for r in rows)
                self._stopping.wait(0.1)

    def _heartbeat_loop(self) -> None:
        interval_s = self.config.gateway.heartbeat_interval_s
        while not self._stopping.is_set():
            self._heartbeat_due.clear()
            if self.session.connected:
                self.session.publish_health(self.health())
            self._heartbeat_due.wait(interval_s)

    def _on_online(self) -> None:
        """Right after a birth: send what waited, and a heartbeat without waiting."""
        self._readings_waiting.set()
        self._heartbeat_due.set()

    # -- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        stats = self.buffer.stats()
        with self._dropped_lock:
            dropped = dict(self._dropped)
        devices = {p.name: p.health() for owner in self.ports for p in owner.pollers}
        return Health.model_validate(
            {
                "session": self.session.session,
                "ts_ms": self._clock.wall_ms(),
                "uptime_s": max(0.0, self._clock.monotonic_s() - self._started_s),
                "heartbeat_interval_s": self.config.gateway.heartbeat_interval_s,
                "buffer_rows": stats.rows,
                "buffer_bytes": stats.bytes,
                "oldest_unsent_age_s": stats.oldest_unsent_age_s,
                "last_seq": stats.last_seq,
                "dropped": dropped,
                "devices": devices,
                "config_hash": self._config_hash,
                "versions": {
                    "agent": self._version,
                    "python": platform.python_version(),
                    "paho-mqtt": paho.mqtt.__version__,
                },
                # Beyond the contract's fields (Health allows extras).
                "buffer_unsent_rows": stats.unsent_rows,
                "poll_loop_crashes": sum(owner.crashes for owner in self.ports),
            }
        )
