"""The running controller: store writer, MQTT ingest, health ticker, outboxes and the API.

``with Controller(config) as controller:`` starts everything (the HTTP API on
``controller.api_url``; with ``[http] port = 0`` the bound port is ``controller.api_port``)
and leaving the block stops everything within seconds, in reverse order.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from contextlib import ExitStack

import uvicorn
from fastapi import FastAPI

from controller.access import active_token_count
from controller.api.app import create_app
from controller.config import ControllerConfig, HttpConfig
from controller.fleet.commands import Commands
from controller.fleet.gaps import GapDetector
from controller.fleet.health import DegradationLimits, HealthTracker
from controller.fleet.ingest import IngestRole, MqttIngest, Rejections
from controller.fleet.messages import Fleet
from controller.fleet.provisioning import Provisioner, ProvisioningError
from controller.forwarding.outbox import Outboxes
from controller.forwarding.routing import Router
from controller.map.state import MapState
from controller.metrics import Metrics
from controller.notify.service import Notify
from controller.refusals import StartupRefusedError, refusal
from controller.risk.alerts import AlertEngine
from controller.risk.edge_rules import RulesPusher
from controller.store.sqlite import Store
from wire.clock import SYSTEM_CLOCK, Clock
from wire.lifecycle import Lifecycle
from wire.supervision import FailureLog, run_once

log = logging.getLogger(__name__)


__all__ = ["ApiServer", "Controller", "StartupRefusedError"]


class ApiServer:
    """uvicorn on its own thread, on a socket bound before start (so port 0 works); HTTPS
    when the config names a certificate and key."""

    def __init__(self, app: FastAPI, http: HttpConfig) -> None:
        self.app = app
        self.host = http.host
        self.requested_port = http.port
        self.tls_files = (http.tls_cert_file, http.tls_key_file) if http.tls else None
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def listener(self) -> socket.socket | None:
        """The bound listening socket while running (its options pass to each connection)."""
        return self._socket

    def start(self, timeout_s: float = 10.0) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
        # proto says TCP, and with proto 0 every answer on a kept-alive connection waited
        # ~40 ms for the client's delayed ACK (headers and body go out in two writes).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {self.host}:{self.requested_port}: {exc}") from exc
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        cert, key = self.tls_files or (None, None)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            log_level="warning",
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
        try:
            config.load()  # here, not on the server thread: a bad certificate says so at once
        except (OSError, ssl.SSLError) as exc:
            self._socket = None
            sock.close()
            raise OSError(f"http.tls_cert_file / http.tls_key_file: cannot load: {exc}") from exc
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="api-server", daemon=False
        )
        self._thread.start()
        deadline_s = time.monotonic() + timeout_s
        while not server.started and self._thread_alive() and time.monotonic() < deadline_s:
            time.sleep(0.01)
        if not server.started:
            self.stop()
            raise RuntimeError(f"the API server did not start on {self.host}:{self.port}")

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        server, thread, sock = self._server, self._thread, self._socket
        self._server = self._thread = self._socket = None
        # Long-lived responses (the alert stream) end when they see this, so uvicorn's
        # graceful shutdown does not wait for them.
        stopping = getattr(self.app.state, "stopping", None)
        if isinstance(stopping, threading.Event):
            stopping.set()
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout_s)
        if sock is not None:
            sock.close()


class Controller(Lifecycle):
    """The whole controller for one config; a context manager."""

    def __init__(self, config: ControllerConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.store = Store(config.storage.path)
        health = config.health
        self.tracker = HealthTracker(
            heartbeat_misses=health.heartbeat_misses,
            default_heartbeat_interval_s=health.default_heartbeat_interval_s,
            limits=DegradationLimits(
                clock_skew_max_s=health.clock_skew_max_s,
                backlog_max_age_s=health.backlog_max_age_s,
                disk_low_bytes=health.disk_low_bytes,
            ),
            clock=self.clock,
        )
        self.router = Router(config.centers, config.gateway_places())
        self.outboxes = Outboxes(config.centers, self.store, config.forwarding)
        self.alerts = AlertEngine(
            config=config, store=self.store, clock=self.clock, notify=self.outboxes.notify_priority
        )
        # Duty people: told inside each alert step's transaction, escalated by the ticker.
        self.notify = Notify(
            config,
            store=self.store,
            clock=self.clock,
            transition=self.alerts.transition,
            base_url=lambda: self.api_url,
        )
        self.alerts.step_listener = self.notify.planner
        # The console's map: risk points' colours follow the engine's committed changes.
        self.map = MapState(config, self.store)
        self.alerts.on_colours.append(self.map.on_colours)
        self.fleet = Fleet(
            store=self.store,
            tracker=self.tracker,
            router=self.router,
            alerts=self.alerts,
            device_stale_after_s=health.device_stale_after_s,
        )
        self.rejections = Rejections()
        self.metrics = Metrics()
        self.provisioner = Provisioner(config.broker, config.mqtt)
        self.gaps = GapDetector(self.store, self._publish, self.clock, config.gaps)
        # Both sessions' readings reach the gap detector: replays (backlog) fill gaps.
        self.fleet.on_health_seen.append(self.gaps.on_health)
        self.fleet.on_seqs_seen.append(self.gaps.observe)
        # While the controller itself is cut off from the broker it cannot judge gateways:
        # the health check pauses, and every gateway gets a fresh timeout on reconnect.
        self.ingest = MqttIngest(
            config.mqtt,
            self.fleet,
            rejections=self.rejections,
            on_subscribed=self.tracker.grace,
            counter=self.metrics,
        )
        self.backlog_ingest = MqttIngest(
            config.mqtt,
            self.fleet,
            rejections=self.rejections,
            role=IngestRole.BACKLOG,
            counter=self.metrics,
        )
        self.commands = Commands(
            store=self.store,
            tracker=self.tracker,
            publish=self.ingest.publish,
            clock=self.clock,
            tick_s=min(0.2, health.check_interval_s),
        )
        self.fleet.on_gateway_alive.append(self.commands.gateway_alive)
        self.fleet.on_command_result = self.commands.on_result
        # Each agent judges its readings by the rules of its devices' risk points.
        self.edge_rules = RulesPusher(
            points=lambda: self.alerts.points,
            commands=self.commands,
            router=self.router,
            clock=self.clock,
        )
        self.fleet.on_health_seen.append(self.edge_rules.on_health)
        self.api = ApiServer(create_app(self), config.http)
        self._ticker_stop = threading.Event()
        self.health_ticks = 0  # health-ticker rounds so far, checked or paused
        self._stack: ExitStack | None = None

    def _publish(self, topic: str, payload: bytes) -> bool:
        """Publish for the gap detector: True when the message went to the broker."""
        info = self.ingest.publish(topic, payload)
        return info is not None and info.rc == 0

    @property
    def mqtt_connected(self) -> bool:
        return self.ingest.subscribed and self.backlog_ingest.subscribed

    @property
    def api_port(self) -> int:
        if self.api.port is None:
            raise RuntimeError("the controller is not running")
        return self.api.port

    @property
    def api_url(self) -> str:
        scheme = "https" if self.config.http.tls else "http"
        host = self.config.http.host
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.api_port}"

    def start(self) -> None:
        with ExitStack() as stack:
            self.store.start()
            stack.callback(self.store.stop)
            problem = refusal(self.config, self.store.read(active_token_count))
            if problem is not None:
                raise StartupRefusedError(f"edgewatch controller refuses to start: {problem}")
            self.fleet.load(self.config.gateway_places())
            self.notify.start()  # rosters before the first alert step
            stack.callback(self.notify.stop)
            self.alerts.load()
            self.map.load()
            if self.provisioner.enabled:
                try:
                    self.store.read(self.provisioner.sync)
                except ProvisioningError as exc:
                    raise StartupRefusedError(
                        f"edgewatch controller refuses to start: broker files: {exc}"
                    ) from None
            self.outboxes.start()
            stack.callback(self.outboxes.stop)
            self.gaps.start()
            stack.callback(self.gaps.stop)
            self._start_ticker()
            stack.callback(self._stop_ticker)
            self.backlog_ingest.start()
            stack.callback(self.backlog_ingest.stop)
            self.ingest.start()
            stack.callback(self.ingest.stop)
            self.commands.start()
            stack.callback(self.commands.stop)
            self.api.start()
            stack.callback(self.api.stop)
            self._stack = stack.pop_all()
        log.info(
            "controller: API at %s/api/v1 (docs at %s/docs); MQTT %s:%d; store %s",
            self.api_url,
            self.api_url,
            self.config.mqtt.host,
            self.config.mqtt.port,
            self.config.storage.path,
        )

    def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    # -- health ticker --------------------------------------------------------------------

    def _start_ticker(self) -> None:
        self._ticker_stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="health-ticker", daemon=False)
        self._ticker.start()

    def _stop_ticker(self) -> None:
        self._ticker_stop.set()
        self._ticker.join(5)

    def _tick(self) -> None:
        interval_s = self.config.health.check_interval_s
        alert_failures = FailureLog(log, "alert tick")
        health_failures = FailureLog(log, "health check")

        def alert_tick() -> None:
            self.alerts.tick()
            self.notify.tick()
            self.edge_rules.tick()

        while not self._ticker_stop.wait(interval_s):
            self.health_ticks += 1
            # Hold times and escalation deadlines run even while MQTT is away.
            run_once(alert_tick, alert_failures)
            if self.ingest.subscribed:
                run_once(self.fleet.check_health, health_failures)
