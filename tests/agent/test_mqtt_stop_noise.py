"""Regression: "ERROR ...paho: Client is not connected" on about one graceful stop in four."""

from __future__ import annotations

import logging
import threading

import pytest

from agent.config import MqttConfig
from agent.uplink.client import PAHO_LOGGER, WANTED_DISCONNECT_NOISE, new_client
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until


def test_a_wanted_disconnect_logs_no_error_even_when_paho_s_loop_goes_round_once_more(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Provokes the race every time: loop_stop() comes only after paho's network thread
    wrote the DISCONNECT, closed the socket and ran its loop once more without one."""
    connected, disconnected = threading.Event(), threading.Event()
    client = new_client(
        MqttConfig(host=mosquitto.host, port=mosquitto.port),
        gateway_id="gw-1",
        will_topic="edgewatch/v1/gw-1/status",
        session=1,
    )
    client.on_connect = lambda *args: connected.set()
    client.on_disconnect = lambda *args: disconnected.set()
    dropped_before = WANTED_DISCONNECT_NOISE.dropped
    caplog.set_level(logging.DEBUG, logger=PAHO_LOGGER)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        wait_until(connected.is_set, timeout_s=5, message="connected")
        client.disconnect()
        wait_until(disconnected.is_set, timeout_s=5, message="disconnected")
        # The extra round of paho's loop, which used to log the ERROR.
        wait_until(
            lambda: WANTED_DISCONNECT_NOISE.dropped > dropped_before,
            timeout_s=5,
            message="paho's loop to run once more without a socket",
        )
    finally:
        client.loop_stop()
    errors = [r for r in caplog.records if r.name == PAHO_LOGGER and r.levelno >= logging.ERROR]
    assert errors == []
