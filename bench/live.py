"""Live-lane latency: from the agent's read of a device to a subscriber on the broker.

"Read" is a reading's ``ts_ms``: the agent stamps it (wall clock, ms) on the port owner's
thread the moment the device's answer is in (``agent.bus.poller``). A subscriber here, on
the same host and so the same clock, stamps each message on the live topic as paho hands
it over and counts ``receipt - ts_ms`` for every reading in it. ``ts_ms`` is truncated to
the millisecond, so a figure may read up to 1 ms high. Only readings that arrive while
``recording`` is on are counted.
"""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from bench.common import percentile
from edgewatch.waiting import wait_until


class LiveLatency:
    """A subscriber to one gateway's live readings; a context manager."""

    def __init__(self, broker_port: int, gateway: str) -> None:
        self.topic = f"edgewatch/v1/{gateway}/readings"
        self.latencies_ms: list[float] = []
        self.messages = 0
        self.recording = False
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-live-{gateway}")
        self._client.on_connect = lambda client, *_: client.subscribe(self.topic, qos=1)
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._port = broker_port

    def __enter__(self) -> LiveLatency:
        self._client.connect("127.0.0.1", self._port)
        self._client.loop_start()
        wait_until(self._subscribed.is_set, timeout_s=10, message=f"subscribed to {self.topic}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      codes: list[ReasonCode], properties: object) -> None:  # fmt: skip
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        received_ms = time.time_ns() / 1e6
        if not self.recording:
            return
        readings = json.loads(msg.payload)["readings"]
        with self._lock:
            self.messages += 1
            self.latencies_ms.extend(received_ms - r["ts_ms"] for r in readings)

    def figures(self, name: str) -> dict[str, float]:
        """``live_<name>_p50_ms``, ``_p99_ms`` and how many readings a message carried."""
        with self._lock:
            latencies, messages = list(self.latencies_ms), self.messages
        if not latencies:
            raise RuntimeError(f"no live reading arrived on {self.topic}")
        return {
            f"live_{name}_p50_ms": round(percentile(latencies, 50), 1),
            f"live_{name}_p99_ms": round(percentile(latencies, 99), 1),
            f"live_{name}_readings": len(latencies),
            f"live_{name}_readings_per_message": round(len(latencies) / messages, 2),
        }
