"""Helpers for controller tests: a contract publisher, config builders, message builders."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

import wire
from controller.cli import main as cli
from controller.config import ControllerConfig, parse_config
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until


class Publisher:
    """A paho client publishing as a gateway would (QoS 1, waits for the PUBACK)."""

    def __init__(
        self,
        broker: Mosquitto,
        *,
        client_id: str = "",
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.broker = broker

    def __enter__(self) -> Publisher:
        self.client.connect(self.broker.host, self.broker.port, keepalive=10)
        self.client.loop_start()
        wait_until(self.client.is_connected, timeout_s=5, message="test publisher connected")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes | BaseModel, *, retain: bool = False) -> None:
        data = wire.encode(payload) if isinstance(payload, BaseModel) else payload
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(5)

    def drop_connection(self) -> None:
        """Vanish without DISCONNECT, so the broker publishes the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


def config_for(
    tmp_path: Path,
    broker: Mosquitto,
    *,
    gateways: dict[str, str] | None = None,
    centers: list[dict[str, str]] | None = None,
    health: dict[str, Any] | None = None,
    auth: str = "demo",
    extra: dict[str, Any] | None = None,
) -> ControllerConfig:
    data: dict[str, Any] = {
        "api": {"auth": auth},
        "mqtt": {"host": broker.host, "port": broker.port, "keepalive_s": 5},
        "http": {"host": "127.0.0.1", "port": 0},
        "storage": {"path": str(tmp_path / "controller.db")},
        "health": {"check_interval_s": 0.05, **(health or {})},
        "forwarding": {"backoff_initial_s": 0.02, "backoff_max_s": 0.2, "request_timeout_s": 2},
        "gateways": [{"id": k, "place": v} for k, v in (gateways or {}).items()],
        "centers": centers or [],
        **(extra or {}),
    }
    return parse_config(data)


def river(gateway: str, place: str) -> dict[str, Any]:
    """A river risk point at ``place`` watching ``<gateway>.gauge-1``: red from 400 cm."""
    return {
        "id": f"river-{gateway}",
        "name": f"River by {gateway}",
        "category": "water_level",
        "place": place,
        "metrics": [
            {"device": f"{gateway}.gauge-1", "metric": "level_cm", "thresholds": {"red": 400}}
        ],
    }


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def batch(
    seqs: range | list[int], *, device: str = "gauge-1", session: int = 1, base_ts_ms: int = 0
) -> wire.ReadingBatch:
    base = base_ts_ms or 1_700_000_000_000
    return wire.ReadingBatch(
        session=session,
        readings=[
            wire.Reading(
                seq=seq,
                ts_ms=base + seq * 1000,
                device=device,
                metric="level_cm",
                value=100.0 + seq / 10,
                unit="cm",
            )
            for seq in seqs
        ],
    )


def birth(session: int, heartbeat_interval_s: float = 5.0) -> wire.Status:
    return wire.Status(
        state=wire.GatewayState.ONLINE,
        session=session,
        ts_ms=now_ms(),
        agent_version="test",
        heartbeat_interval_s=heartbeat_interval_s,
    )


def offline(session: int) -> wire.Status:
    return wire.Status(state=wire.GatewayState.OFFLINE, session=session, ts_ms=now_ms())


def health(
    session: int,
    heartbeat_interval_s: float,
    *,
    ts_ms: int | None = None,
    devices: dict[str, wire.DeviceHealth] | None = None,
    **extra: Any,
) -> wire.Health:
    return wire.Health(
        session=session,
        ts_ms=now_ms() if ts_ms is None else ts_ms,
        uptime_s=1.0,
        heartbeat_interval_s=heartbeat_interval_s,
        buffer_rows=0,
        buffer_bytes=0,
        oldest_unsent_age_s=0.0,
        last_seq=0,
        devices=(
            {"gauge-1": wire.DeviceHealth(state="ok", reads_ok=3)} if devices is None else devices
        ),
        **extra,
    )


def api(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, trust_env=False, timeout=5)


def get_json(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> Any:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


def make_token(db: Path, capsys: pytest.CaptureFixture[str], role: str, place: str = "") -> str:
    argv = ["token", "create", "--role", role, "--db", str(db)]
    if place:
        argv += ["--place", place, "--name", f"{role}-{place.rsplit('/', 1)[-1]}"]
    assert cli(argv) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("ewt_")
    return token


def as_(url: str, token: str) -> httpx.Client:
    client = api(url)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


class CommandListener:
    """A paho subscriber to one gateway's commands, as the agent would be."""

    def __init__(self, broker: Mosquitto, gateway: str) -> None:
        self.requests: list[wire.CommandRequest] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(f"edgewatch/v1/{gateway}/cmd/+", qos=1)
        subscribed.wait(5)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.requests.append(wire.decode(wire.CommandRequest, bytes(msg.payload)))

    def replays(self) -> list[tuple[int, int]]:
        """(from_seq, to_seq) of every replay asked for so far."""
        with self._lock:
            return [
                (r.args["from_seq"], r.args["to_seq"]) for r in self.requests if r.type == "replay"
            ]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
