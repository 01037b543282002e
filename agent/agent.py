"""The gateway agent: buffer, port owners, MQTT session, publisher, commands and heartbeat.

``Agent(config)`` is a context manager. Readings flow one way:

    port owner thread --Intake--> Buffer --take_unsent--> Publisher --> MqttSession
                        (memory queue     ^---------- ack on PUBACK ---------'
                         if the file fails)

Commands (``agent.uplink.commands``, ``agent.uplink.handlers``) act on the running agent: a
``reload-config`` swaps the port owners (``agent.uplink.reconfigure``), a ``set-interval`` keeps
a local override (``agent.local_state``), a ``maintenance`` marks a device, whose readings
are then stored with quality ``maintenance``.

Stopping goes in the order that gets the offline status out first (the controller must
see a stopped gateway at once): publisher, commands and heartbeat stop, the MQTT session
publishes its retained offline status and disconnects, the port owners stop, the buffer
closes.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.buffer.alerts import AlertQueue
from agent.buffer.intake import Intake
from agent.buffer.store import Buffer
from agent.bus.counter_state import SqliteCounterStore
from agent.bus.outlook import BusOutlook
from agent.bus.ports import PortOwner
from agent.config import AgentConfig, ConfigError
from agent.edge_rules import EdgeRules
from agent.local_state import Maintenance, Overrides
from agent.sd_notify import Notifier
from agent.stations.book import StationBook
from agent.stations.server import StationServer
from agent.status_file import agent_status, write_status
from agent.system_info import clock_synchronized
from agent.uplink.commands import CommandRunner
from agent.uplink.handlers import Handlers
from agent.uplink.health_report import build_health
from agent.uplink.publisher import BATCH_MAX_READINGS, Publisher
from agent.uplink.reconfigure import (
    controller_hash,
    merge_pushed,
    override_conflicts,
    probation,
    remember,
    startup_config,
)
from agent.uplink.session import MqttSession
from drivers.base import DeviceConfig, Measurement
from drivers.stations import Alarm, StationDeviceConfig
from wire import CommandRequest, EdgeAlert, Health, Quality, TopicKind, encode
from wire.clock import SYSTEM_CLOCK, Clock
from wire.lifecycle import Lifecycle
from wire.risk import Colour, ColourChange, RuleSet
from wire.supervision import Backoff, FailureLog, supervise
from wire.version import package_version

log = logging.getLogger(__name__)


class Agent(Lifecycle):
    """One gateway's agent, built from a validated config; start with ``with Agent(cfg):``.

    ``on_restart`` is called (on the commands thread; it must not block) when a ``restart``
    command asks the agent to stop so that its supervisor starts it again; ``config_dir``
    is the folder of agent.toml (relative paths of a pushed config are taken from it).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        batch_max_readings: int = BATCH_MAX_READINGS,
        on_restart: Callable[[], None] | None = None,
        config_dir: Path | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        # systemd (Type=notify, WatchdogSec=): READY, WATCHDOG, STOPPING; a no-op elsewhere.
        self._notifier = Notifier.from_environment() if notifier is None else notifier
        self._dead_loops_logged: frozenset[str] = frozenset()
        self._status_error_logged = False
        self._base_hash = config.config_hash  # agent.toml's, as the agent started
        self._config_dir = config_dir
        config, self.config_version = startup_config(config, base_dir=config_dir)
        self.config = config
        self._clock = clock
        self.version = self._version = package_version()
        self.overrides = Overrides(config.gateway.data_dir)
        self.maintenance = Maintenance(config.gateway.data_dir)
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
        # When the port owners expect their next readings: the live lane holds a batch
        # only while one is due before its deadline.
        self.outlook = BusOutlook()
        self.publisher = Publisher(
            buffer=self.buffer,
            alerts=self.alerts,
            session=self.session,
            config=config.buffer,
            clock=clock,
            batch_max_readings=batch_max_readings,
            housekeeping=self._retry_intake,
            outlook=self.outlook,
        )
        self.intake = Intake(
            self.buffer,
            memory_max_readings=config.buffer.memory_queue_max_readings,
            on_stored=self.publisher.readings_stored,
        )
        self.commands = CommandRunner(
            session=self.session, publisher=self.publisher, now_ms=clock.wall_ms
        )
        Handlers(self, on_restart=on_restart).register(self.commands.handlers)
        self.counters = SqliteCounterStore(config.gateway.data_dir / "counters.db")
        self.ports = self._build_ports(config)
        self.station_book, self.stations = self._build_stations(config)
        self.station_alarms_unrouted = 0  # 33H whose trigger no risk point watches
        self._stopping = threading.Event()
        self._heartbeat_due = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_s = clock.monotonic_s()
        # Edge alerts: the controller's rules, judged here on every reading as it is taken.
        self.edge_rules = EdgeRules(config.gateway.data_dir, config.risk.rules)
        self._alert_numbers = itertools.count(1)
        self.edge_alerts_unstored = 0  # alerts the buffer refused (disk full)
        self._unrouted_logged: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._started_s = self._clock.monotonic_s()
        self.buffer.open()
        log.info(
            "agent %s for gateway %s: %d ports, %d devices, config %s%s",
            self._version,
            self.config.gateway.id,
            len(self.config.ports),
            len(self.config.devices),
            self.config.config_hash[:12],
            f" (pushed v{self.config_version})" if self.config_version else "",
        )
        if self.config_version is None:
            remember(
                self.config, version=None, base_hash=self._base_hash, now_ms=self._clock.wall_ms()
            )
        self.commands.start()
        self.session.start()
        for owner in self.ports:
            owner.start()
        if self.stations is not None:
            self.stations.start()
        for name, target in (
            ("publisher", lambda: self.publisher.run(self._stopping)),
            ("heartbeat", self._heartbeat_loop),
        ):
            thread = threading.Thread(target=self._supervised, args=(name, target), name=name)
            thread.start()
            self._threads.append(thread)
        self._notifier.ready()

    def stop(self) -> None:
        self._notifier.stopping()
        self._stopping.set()
        self.publisher.wake.set()
        self._heartbeat_due.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self.commands.stop()
        self.session.stop()
        self._write_status()  # the last contact with the broker, for `agent status`
        if self.stations is not None:
            self.stations.stop()
        for owner in self.ports:
            owner.stop()
        self.counters.close()
        self.buffer.close()

    # -- readings in ----------------------------------------------------------------------

    def _edge_alerts(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        """Store a rising colour in the alerts lane: durable, never evicted for readings,
        and published ahead of any reading."""
        gateway = self.config.gateway.id
        events = [
            event
            for m in measurements
            for event in self.edge_rules.observe(
                f"{gateway}.{device}", m.metric, ts_ms, m.value, m.quality.value
            )
        ]
        raised = False
        for event in events:
            if not isinstance(event, ColourChange) or not event.rising:
                continue  # only the controller lowers and closes; blind spots are its too
            raised |= self._raise_alert(
                event.point,
                event.after,
                event.before,
                ts_ms=event.source_ts_ms or ts_ms,
                device=device,
                metric=event.metric,
                value=event.measure,
            )
        if raised:
            self.publisher.wake.set()

    def _raise_alert(
        self,
        point: str,
        colour: Colour,
        previous: Colour,
        *,
        ts_ms: int,
        device: str,
        metric: str,
        value: float | None,
    ) -> bool:
        """An edge alert into the alerts lane; False when the buffer refused it (the
        readings still carry the crossing: the controller judges them too)."""
        alert = EdgeAlert(
            session=self.session.session,
            id=f"{self.config.gateway.id}-{ts_ms}-{next(self._alert_numbers)}",
            point=point,
            colour=colour,
            previous=previous,
            ts_ms=ts_ms,
            device=device,
            metric=metric,
            value=value,
        )
        try:
            self.alerts.append(alert.ts_ms, encode(alert))
        except (sqlite3.Error, OSError) as exc:
            self.edge_alerts_unstored += 1
            log.error("edge alert %s could not be stored: %s", alert.id, exc)
            return False
        return True

    # -- loops ----------------------------------------------------------------------------

    def _supervised(self, name: str, loop: Callable[[], None]) -> None:
        """Run ``loop`` until stop; a crash is logged and the loop restarted (capped wait)."""
        supervise(
            loop,
            failures=FailureLog(log, f"{name} loop"),
            stopped=self._stopping.is_set,
            wait=self._stopping.wait,
            backoff=Backoff(0.1, 5.0),
        )

    def _heartbeat_loop(self) -> None:
        """Every heartbeat: overrides, health (when connected), status.json; between
        heartbeats, the systemd watchdog is fed at its own pace while the loops live."""
        while not self._stopping.is_set():
            self._heartbeat_due.clear()
            if self.overrides.refresh():  # a technician edited overrides.json
                self._apply_intervals()
            if self.session.connected:
                self.session.publish(self.session.topic(TopicKind.HEALTH), encode(self.health()))
            self._write_status()
            deadline_s = time.monotonic() + self.config.gateway.heartbeat_interval_s
            while not self._stopping.is_set():
                self._feed_watchdog()
                wait_s = deadline_s - time.monotonic()
                if self._notifier.watchdog_interval_s is not None:
                    wait_s = min(wait_s, self._notifier.watchdog_interval_s)
                if wait_s <= 0 or self._heartbeat_due.wait(wait_s):
                    break
                if time.monotonic() >= deadline_s:
                    break

    def dead_loops(self) -> list[str]:
        """The names of the agent's loops whose thread is not running."""
        dead = [t.name for t in self._threads if not t.is_alive()]
        dead += [f"port-{o.port.name}" for o in self.ports if not o.alive]
        if self.stations is not None and not self.stations.alive:
            dead.append("stations")
        return dead + ([] if self.session.alive else ["mqtt-session"])

    def _feed_watchdog(self) -> None:
        """WATCHDOG=1 only while every loop lives: systemd restarts an agent that hangs."""
        if self._notifier.watchdog_interval_s is None:
            return
        dead = frozenset(self.dead_loops())
        if dead != self._dead_loops_logged and dead:
            log.error("watchdog not fed: loops not running: %s", ", ".join(sorted(dead)))
        self._dead_loops_logged = dead
        if not dead:
            self._notifier.watchdog()

    def _write_status(self) -> None:
        try:
            write_status(self.config.gateway.data_dir, agent_status(self))
        except OSError as exc:
            if not self._status_error_logged:
                log.warning("cannot write status.json: %s", exc)
            self._status_error_logged = True
        else:
            self._status_error_logged = False

    def uptime_s(self) -> float:
        return max(0.0, self._clock.monotonic_s() - self._started_s)

    # -- ports, overrides and maintenance -------------------------------------------------

    def _build_ports(self, config: AgentConfig) -> list[PortOwner]:
        def effective(device: DeviceConfig) -> DeviceConfig:
            interval_s = self.overrides.interval_s(device.name)
            return (
                device
                if interval_s is None
                else device.model_copy(update={"interval_s": interval_s})
            )

        return [
            PortOwner(
                port,
                [effective(d) for d in config.devices_on(port.name)],
                self._store_reading,
                self._clock,
                counters=self.counters,
                outlook=self.outlook,
            )
            for port in config.ports
        ]

    def _build_stations(self, config: AgentConfig) -> tuple[StationBook, StationServer | None]:
        """The listeners of stations that push, and the book of what they said."""
        stations = [d for d in config.devices if isinstance(d, StationDeviceConfig)]
        book = StationBook(
            stations,
            sink=self._store_reading,
            alarm=self._station_alarm,
            clock=self._clock,
            counters=self.counters,
        )
        if not config.listeners:
            return book, None
        server = StationServer(
            config.listeners,
            stations,
            book,
            self._clock,
            clock_trusted=lambda: clock_synchronized() is True,
        )
        return book, server

    def _station_alarm(self, station: StationDeviceConfig, alarm: Alarm) -> None:
        """A station's own alarm (SL651 33H): an edge alert of the station's alarm colour at
        every risk point watching its trigger, stored in the alerts lane ahead of the
        report's readings. Without such a point it cannot be routed: counted, logged once."""
        colour = getattr(station, "alarm_colour", Colour.ORANGE)
        gateway = self.config.gateway.id
        watching = (
            self.edge_rules.hold_at_least(f"{gateway}.{station.name}", alarm.metric, colour)
            if alarm.metric is not None
            else []
        )
        if not watching:
            self.station_alarms_unrouted += 1
            if station.name not in self._unrouted_logged:
                self._unrouted_logged.add(station.name)
                log.warning(
                    "%s: an alarm report (trigger %s) that no risk point watches: its readings"
                    " go on as readings (logged once)",
                    station.describe(),
                    alarm.element,
                )
            return
        for point, before in watching:
            self._raise_alert(
                point,
                colour,
                before,
                ts_ms=alarm.ts_ms,
                device=station.name,
                metric=alarm.metric or "",
                value=alarm.value,
            )
        self.publisher.wake.set()

    def _store_reading(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        """The port owners' sink. A device in maintenance has its good values marked (they
        never raise an alert); edge alerts go into the alerts lane first, then the readings
        into the buffer (or the memory queue while the buffer cannot be written)."""
        if device in self.maintenance.devices:
            measurements = [
                dataclasses.replace(m, quality=Quality.MAINTENANCE)
                if m.quality is Quality.GOOD
                else m
                for m in measurements
            ]
        if self.edge_rules.active:
            self._edge_alerts(device, ts_ms, measurements)
        self.intake.store(device, ts_ms, measurements)

    def _apply_intervals(self) -> None:
        """Put every device on its override's interval, or back on its config's."""
        configured = {d.name: d.interval_s for d in self.config.devices}
        for owner in self.ports:
            for poller in owner.pollers:
                wanted_s = self.overrides.interval_s(poller.name) or configured[poller.name]
                if poller.interval_s != wanted_s:
                    log.info("device %r: interval %g s (local overrides)", poller.name, wanted_s)
                    owner.set_interval(poller.name, wanted_s)

    # -- reload-config --------------------------------------------------------------------

    def reload_config(
        self, document: Mapping[str, Any], *, version: int, expected_hash: str
    ) -> tuple[bool, str]:
        """Validate, apply and watch a pushed config; roll back if it does not work."""
        if controller_hash(document) != expected_hash:
            return False, f"config v{version}: its hash does not match its content: not applied"
        source = f"pushed config v{version}"
        running = self.config
        try:
            new = merge_pushed(running, document, source=source, base_dir=self._config_dir)
        except ConfigError as exc:
            return False, f"invalid config, not applied: {exc}"
        if new.config_hash == running.config_hash:
            self.config_version = version
            return True, f"unchanged: config {new.config_hash[:12]} is already running"
        kept = override_conflicts(new, self.overrides)
        log.info("applying %s (%s)", source, new.config_hash[:12])
        problem = self._swap_ports(new)
        if problem is not None:
            log.error(
                "%s failed, rolling back to %s: %s", source, running.config_hash[:12], problem
            )
            self._swap_ports(running, probation_s=0)
            return False, f"rolled back to config {running.config_hash[:12]}: {problem}"
        self.config, self.config_version = new, version
        # A pushed config may carry new [risk] rules (the controller's set-rules win).
        self.edge_rules.use_config(new.risk.rules, now_ms=self._clock.wall_ms())
        remember(new, version=version, base_hash=self._base_hash, now_ms=self._clock.wall_ms())
        self._heartbeat_due.set()
        detail = f"applied config v{version} ({new.config_hash[:12]}): {len(new.devices)} devices"
        return True, detail + "".join(f"; {k}" for k in kept)

    def set_rules(self, rules: RuleSet, *, expected_hash: str) -> tuple[bool, str]:
        """The controller's ``set-rules``: edge alerts follow them from the next reading."""
        done = self.edge_rules.push(rules, expected_hash, now_ms=self._clock.wall_ms())
        self._heartbeat_due.set()  # the controller sees the new risk_rules_hash at once
        return done

    def _swap_ports(self, config: AgentConfig, *, probation_s: float | None = None) -> str | None:
        """Stop the port owners, start ``config``'s; the buffer and the session go on.
        Returns why they did not work within the probation window (None: they did)."""
        old, self.ports = self.ports, []
        for owner in old:
            owner.stop()
        if self.stations is not None:
            self.stations.stop()
            self.stations = None
        try:
            owners = self._build_ports(config)
            for owner in owners:
                owner.start()
                self.ports.append(owner)
            self.station_book, self.stations = self._build_stations(config)
            if self.stations is not None:
                self.stations.start()
        except Exception as exc:
            log.exception("the new ports did not start")
            return f"failed to start: {exc!r}"
        window_s = config.gateway.reload_probation_s if probation_s is None else probation_s
        return probation(owners, window_s, self._stopping) if window_s > 0 else None

    # -- session callbacks ----------------------------------------------------------------

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
        return build_health(self, now_ms=self._clock.wall_ms())
