"""The gateway agent: buffer, port owners, MQTT session, publisher, commands and heartbeat.

``Agent(config)`` is a context manager. Readings flow one way:

    port owner thread --Intake--> Buffer --take_unsent--> Publisher --> MqttSession
                        (memory queue     ^---------- ack on PUBACK ---------'
                         if the file fails)

Stopping goes in the order that gets the offline status out first (the controller must
see a stopped gateway at once): publisher, commands and heartbeat stop, the MQTT session
publishes its retained offline status and disconnects, the port owners stop, the buffer
closes.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import logging
import platform
import sqlite3
import threading
from collections.abc import Callable, Sequence
from types import TracebackType

import paho.mqtt

from agent.alerts import AlertQueue
from agent.buffer import Buffer
from agent.clock import SYSTEM_CLOCK, Clock
from agent.commands import CommandRunner
from agent.config import AgentConfig
from agent.counter_state import SqliteCounterStore
from agent.eviction import ACKED_EVICTED
from agent.intake import Intake
from agent.mqtt import MqttSession
from agent.ports import PortOwner
from agent.publisher import BATCH_MAX_READINGS, Publisher
from drivers.base import Measurement
from wire import CommandRequest, EdgeAlert, Health, TopicKind, encode
from wire.risk import ColourChange, RiskEvaluator

log = logging.getLogger(__name__)


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
        self._config_hash = config.config_hash
        self._version = agent_version()
        self.buffer = Buffer(
            config.gateway.data_dir / "buffer.db",
            now_ms=clock.wall_ms,
            monotonic_s=clock.monotonic_s,
            live_window_s=config.buffer.live_window_s,
        )
        self.alerts = AlertQueue(self.buffer)
        self.session = MqttSession(
            gateway_id=config.gateway.id,
            mqtt=config.mqtt,
            heartbeat_interval_s=config.gateway.heartbeat_interval_s,
            buffer=self.buffer,
            agent_version=self._version,
            now_ms=clock.wall_ms,
            on_online=self._on_online,
            on_command=self._on_command,
            on_connection_closed=self._on_connection_closed,
        )
        self.publisher = Publisher(
            buffer=self.buffer,
            alerts=self.alerts,
            session=self.session,
            config=config.buffer,
            clock=clock,
            batch_max_readings=batch_max_readings,
            housekeeping=self._retry_intake,
        )
        self.intake = Intake(
            self.buffer,
            memory_max_readings=config.buffer.memory_queue_max_readings,
            on_stored=self.publisher.wake.set,
        )
        self.commands = CommandRunner(
            session=self.session, publisher=self.publisher, now_ms=clock.wall_ms
        )
        self.counters = SqliteCounterStore(config.gateway.data_dir / "counters.db")
        self.ports = [
            PortOwner(
                port,
                config.devices_on(port.name),
                self._take_readings,
                clock,
                counters=self.counters,
            )
            for port in config.ports
        ]
        self._stopping = threading.Event()
        self._heartbeat_due = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_s = clock.monotonic_s()
        # Edge alerts: the controller's rules, judged here on every reading as it is taken.
        self._risk = RiskEvaluator(config.risk.rules) if config.risk.rules.points else None
        self._risk_lock = threading.Lock()  # port owner threads call in concurrently
        self._alert_numbers = itertools.count(1)
        self.edge_alerts_unstored = 0  # alerts the buffer refused (disk full)

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
        self.commands.start()
        self.session.start()
        for owner in self.ports:
            owner.start()
        for name, target in (
            ("publisher", lambda: self.publisher.run(self._stopping)),
            ("heartbeat", self._heartbeat_loop),
        ):
            thread = threading.Thread(target=self._supervised, args=(name, target), name=name)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        self.publisher.wake.set()
        self._heartbeat_due.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self.commands.stop()
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

    def _take_readings(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        """The port owners' sink: edge alerts first (into the alerts lane), then the
        readings into the buffer (or the memory queue while the buffer cannot be written)."""
        if self._risk is not None:
            self._edge_alerts(device, ts_ms, measurements)
        self.intake.store(device, ts_ms, measurements)

    def _edge_alerts(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        """Store a rising colour in the alerts lane: durable, never evicted for readings,
        and published ahead of any reading."""
        assert self._risk is not None
        gateway = self.config.gateway.id
        with self._risk_lock:
            events = [
                event
                for m in measurements
                for event in self._risk.observe(
                    f"{gateway}.{device}", m.metric, ts_ms, m.value, m.quality.value
                )
            ]
        raised = False
        for event in events:
            if not isinstance(event, ColourChange) or not event.rising:
                continue  # only the controller lowers and closes; blind spots are its too
            alert = EdgeAlert(
                session=self.session.session,
                id=f"{gateway}-{ts_ms}-{next(self._alert_numbers)}",
                point=event.point,
                colour=event.after,
                previous=event.before,
                ts_ms=event.source_ts_ms or ts_ms,
                device=device,
                metric=event.metric,
                value=event.measure,
            )
            try:
                self.alerts.append(alert.ts_ms, encode(alert))
            except (sqlite3.Error, OSError) as exc:
                # The readings still carry the crossing: the controller judges them too.
                self.edge_alerts_unstored += 1
                log.error("edge alert %s could not be stored: %s", alert.id, exc)
            else:
                raised = True
        if raised:
            self.publisher.wake.set()

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

    def _heartbeat_loop(self) -> None:
        interval_s = self.config.gateway.heartbeat_interval_s
        while not self._stopping.is_set():
            self._heartbeat_due.clear()
            if self.session.connected:
                self.session.publish(self.session.topic(TopicKind.HEALTH), encode(self.health()))
            self._heartbeat_due.wait(interval_s)

    def _retry_intake(self) -> None:
        self.intake.retry()

    def _on_online(self) -> None:
        """Right after a birth (or the controller's return): send what waited, and a
        heartbeat without waiting."""
        self.publisher.wake.set()
        self._heartbeat_due.set()

    def _on_command(self, request: CommandRequest) -> None:
        self.commands.submit(request)

    def _on_connection_closed(self) -> None:
        self.buffer.release_all()
        self.alerts.release_all()
        self.publisher.connection_closed()
        self.publisher.wake.set()

    # -- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        stats = self.buffer.stats()
        dropped = self.buffer.dropped()
        acked_evicted = dropped.pop(ACKED_EVICTED, 0)
        for reason, count in self.intake.dropped().items():
            dropped[reason] = dropped.get(reason, 0) + count
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
                "buffer_used_bytes": stats.used_bytes,
                "first_unsent_seq": stats.first_unsent_seq,
                "alerts_unsent": stats.alerts_unsent,
                "acked_evicted": acked_evicted,
                "buffer_error": self.intake.error,
                "memory_queue_readings": self.intake.held_readings,
                "controller_online": self.session.controller_online,
                "poll_loop_crashes": sum(owner.crashes for owner in self.ports),
            }
        )
