"""sd_notify against a real unix datagram socket the test binds, as systemd's would be."""

from __future__ import annotations

import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.agent import Agent
from agent.config import parse_config
from agent.sd_notify import Notifier
from edgewatch.broker import Mosquitto
from firmware_sim.bus import SimulatedBus
from tests.agent.conftest import WAIT_S, agent_process, agent_toml

WATCHDOG_USEC = 400_000  # pings every 0.2 s


class NotifySocket:
    """What systemd listens on: a bound AF_UNIX datagram socket."""

    def __init__(self) -> None:
        # A short folder: a socket path must fit in 108 bytes (sun_path).
        self.folder = Path(tempfile.mkdtemp(prefix="ew-notify-"))
        self.path = self.folder / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def messages_until(self, deadline_s: float) -> Iterator[str]:
        """Each datagram as it arrives, until the monotonic deadline."""
        while (remaining_s := deadline_s - time.monotonic()) > 0:
            self.sock.settimeout(remaining_s)
            try:
                yield self.sock.recv(4096).decode()
            except TimeoutError:
                return

    def wait_for(self, message: str, timeout_s: float = WAIT_S) -> list[str]:
        """Everything received up to and including ``message``."""
        seen: list[str] = []
        for received in self.messages_until(time.monotonic() + timeout_s):
            seen.append(received)
            if received == message:
                return seen
        raise AssertionError(f"no {message} within {timeout_s} s; got {seen}")


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


def test_the_agent_says_ready_feeds_the_watchdog_and_says_stopping(
    tmp_path: Path,
    mosquitto: Mosquitto,
    gauge_bus: SimulatedBus,
    notify_socket: NotifySocket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_path = tmp_path / "agent.toml"
    config_path.write_text(agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))

    with agent_process(config_path) as process:
        notify_socket.wait_for("READY=1", timeout_s=20)
        for _ in range(3):
            notify_socket.wait_for("WATCHDOG=1", timeout_s=WATCHDOG_USEC / 1e6 + 0.3)
        process.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1")
        assert process.wait(timeout=WAIT_S) == 0


def test_the_watchdog_is_not_fed_once_a_loop_is_dead(
    tmp_path: Path, mosquitto: Mosquitto, gauge_bus: SimulatedBus, notify_socket: NotifySocket
) -> None:
    config = parse_config(agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path))
    notifier = Notifier(str(notify_socket.path), watchdog_interval_s=0.1)

    with Agent(config, notifier=notifier) as agent:
        notify_socket.wait_for("READY=1")
        notify_socket.wait_for("WATCHDOG=1")
        agent.ports[0].stop()  # the port owner's loop ends, as if it had hung for good
        assert agent.dead_loops() == ["port-bus1"]
        quiet_from_s = time.monotonic() + 0.2  # a ping already on its way may still land
        late = [
            m
            for m in notify_socket.messages_until(time.monotonic() + 1.0)
            if m == "WATCHDOG=1" and time.monotonic() > quiet_from_s
        ]
        assert late == []  # systemd would now kill the agent and start it again


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "1000000"})

    assert not notifier.enabled
    assert notifier.watchdog_interval_s == 0.5
    assert notifier.ready() is False


def test_a_watchdog_meant_for_another_process_is_ignored() -> None:
    notifier = Notifier.from_environment(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    )

    assert notifier.watchdog_interval_s is None
