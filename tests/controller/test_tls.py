"""MQTT over TLS: the controller connects to a mosquitto TLS listener that requires a client
certificate, with a CA and certificates this test generates (openssl CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

import wire
from controller.config import ConfigError, parse_config
from controller.service import Controller
from edgewatch.broker import Mosquitto, free_port
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, api, batch, config_for, get_json
from tests.pki import make_pki, needs_openssl, tls_listener


@needs_openssl
def test_controller_ingests_over_tls_with_a_client_certificate(
    tmp_path: Path, mosquitto_cli: str
) -> None:
    pki = tmp_path / "pki"
    make_pki(pki)
    tls_port = free_port()
    broker = Mosquitto(
        tmp_path / "broker",
        extra_config=tls_listener(pki, tls_port, require_certificate=True),
    )
    with broker:
        config = config_for(tmp_path, broker)
        mqtt = config.mqtt.model_copy(
            update={
                "port": tls_port,
                "tls_ca_file": pki / "ca.pem",
                "tls_cert_file": pki / "client.pem",
                "tls_key_file": pki / "client.key",
            }
        )
        with Controller(config.model_copy(update={"mqtt": mqtt})) as controller:
            wait_until(lambda: controller.mqtt_connected, timeout_s=10, message="TLS session")
            with Publisher(broker) as plain, api(controller.api_url) as client:
                plain.publish(wire.topic_for("gw-t", wire.TopicKind.READINGS), batch(range(1, 3)))
                wait_until(
                    lambda: get_json(client, "/api/v1/summary")["readings_stored"] == 2,
                    timeout_s=5,
                )


def test_a_client_certificate_needs_its_key_and_a_ca() -> None:
    with pytest.raises(ConfigError, match="tls_key_file go together"):
        parse_config({"mqtt": {"tls_ca_file": "ca.pem", "tls_cert_file": "c.pem"}})
    with pytest.raises(ConfigError, match=r"needs mqtt\.tls_ca_file"):
        parse_config({"mqtt": {"tls_cert_file": "c.pem", "tls_key_file": "c.key"}})
