"""Agent test helpers: a recording MQTT subscriber, config files, a simulated gauge bus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from firmware_sim.bus import SimulatedBus
from firmware_sim.models import WaterLevelGauge
from tests.clock import FakeClock
from wire import TopicKind, decode, gateway_subscription, topic_for

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

GATEWAY_ID = "gw-test-1"
WAIT_S = 10.0
REPO = Path(__file__).parents[2]


@pytest.fixture
def held_clock() -> FakeClock:
    """A clock that moves only when the test says: a schedule or a live batch's deadline
    never runs out by itself; its wall clock starts at the real time."""
    return FakeClock.from_now()


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


class Recorder:
    """A paho subscriber to one gateway's topics; resubscribes after a reconnect."""

    def __init__(self, broker: Mosquitto, gateway_id: str = GATEWAY_ID) -> None:
        self.gateway_id = gateway_id
        self._messages: list[Message] = []
        self._lock = threading.Lock()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, clean_session=True)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(broker.host, broker.port, keepalive=5)
        self._client.loop_start()
        self._subscribed.wait(WAIT_S)

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(gateway_subscription(self.gateway_id), qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self._messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def messages(self, kind: TopicKind) -> list[Message]:
        topic = topic_for(self.gateway_id, kind)
        with self._lock:
            return [m for m in self._messages if m.topic == topic]

    def all_messages(self) -> list[Message]:
        """Every message received, in order, whatever its topic."""
        with self._lock:
            return list(self._messages)

    def decoded(self, kind: TopicKind, model: type[M]) -> list[M]:
        return [decode(model, m.payload) for m in self.messages(kind)]

    def wait_for(self, condition: Callable[[], T], what: str, timeout_s: float = WAIT_S) -> T:
        return wait_until(condition, timeout_s=timeout_s, message=what)


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    rec = Recorder(mosquitto)
    yield rec
    rec.close()


@pytest.fixture
def gauge_bus() -> Iterator[SimulatedBus]:
    """A real pty serving one water-level gauge at slave 1."""
    with SimulatedBus([WaterLevelGauge(slave=1)]) as bus:
        yield bus


def agent_toml(
    data_dir: Path,
    broker: Mosquitto,
    *,
    port_url: str | None = None,
    interval_s: float = 0.1,
    heartbeat_interval_s: float = 0.5,
    gateway_id: str = GATEWAY_ID,
    buffer: str = "hold_while_controller_offline = false",
) -> str:
    """A working agent config; with ``port_url``, one gauge on one port. ``buffer`` is the
    body of the [buffer] table (by default: publish without a controller listening)."""
    text = f"""
[gateway]
id = "{gateway_id}"
data_dir = "{data_dir}"
heartbeat_interval_s = {heartbeat_interval_s}

[buffer]
{buffer}

[mqtt]
host = "{broker.host}"
port = {broker.port}
keepalive_s = 2
reconnect_min_s = 0.2
reconnect_max_s = 1.0
"""
    if port_url is not None:
        text += f"""
[[ports]]
name = "bus1"
url = "{port_url}"
baud = 9600
timeout_s = 0.2

[[devices]]
name = "gauge-1"
driver = "modbus_rtu"
port = "bus1"
interval_s = {interval_s}
slave = 1

[[devices.registers]]
metric = "level_cm"
address = 0
type = "u16"
scale = 0.1
unit = "cm"

[[devices.registers]]
metric = "status"
address = 1
"""
    return text


def child_env() -> dict[str, str]:
    """The environment for a Python child process that imports the repository's code."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "firmware-sim")])}


def fresh_python(code: str, result: str, *, cwd: Path = REPO) -> tuple[Any, str]:
    """Run ``code`` in a fresh interpreter, then print the expression ``result`` as JSON;
    returns its value and what the child wrote on stderr. Fails on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json\nprint(json.dumps({result}))"],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


@contextmanager
def agent_process(config_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m agent.cli run --config config_path`` as a process (stderr piped),
    killed on the way out if it is still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=WAIT_S)
        if process.stderr:
            process.stderr.close()


def openssl_libraries(pid: int) -> set[str]:
    """The OpenSSL libraries (libcrypto, libssl) mapped into process ``pid``."""
    paths = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()}
    names = {Path(path).name for path in paths if path.startswith("/")}
    return {name for name in names if name.startswith(("libcrypto", "libssl"))}
