"""TLS with a CA and certificates these tests generate (openssl CLI): the controller connects
to a mosquitto TLS listener that requires a client certificate, and serves its API over
HTTPS."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

import wire
from controller.config import ConfigError, parse_config
from controller.service import Controller
from edgewatch.broker import Mosquitto, free_port
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, api, batch, config_for, get_json, make_token
from tests.pki import make_pki, needs_openssl, tls_listener

pytestmark = needs_openssl


def test_controller_ingests_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
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


def test_the_api_serves_https_with_its_certificate_and_tokens_over_it(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = tmp_path / "pki"
    make_pki(pki)
    token = make_token(tmp_path / "controller.db", capsys, "viewer")
    config = config_for(tmp_path, mosquitto, auth="tokens")
    http = config.http.model_copy(
        update={"tls_cert_file": pki / "server.pem", "tls_key_file": pki / "server.key"}
    )
    with Controller(config.model_copy(update={"http": http})) as controller:
        assert controller.api_url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with httpx.Client(base_url=controller.api_url, verify=trusted, trust_env=False) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/api/v1/whoami").status_code == 401
            me = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
            assert me.json()["role"] == "viewer"
        with (
            httpx.Client(verify=True, trust_env=False) as untrusting,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            untrusting.get(f"{controller.api_url}/healthz")  # not signed by a public CA
        plain = controller.api_url.replace("https://", "http://")
        with httpx.Client(trust_env=False) as cleartext, pytest.raises(httpx.HTTPError):
            cleartext.get(f"{plain}/healthz")  # no plain HTTP on the TLS port


def test_an_api_certificate_that_cannot_be_loaded_stops_the_start_naming_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = config_for(tmp_path, mosquitto)
    (tmp_path / "api.pem").write_text("not a certificate\n")
    http = config.http.model_copy(
        update={"tls_cert_file": tmp_path / "api.pem", "tls_key_file": tmp_path / "api.key"}
    )
    with pytest.raises(OSError, match=r"http\.tls_cert_file / http\.tls_key_file: cannot load"):
        Controller(config.model_copy(update={"http": http})).start()


def test_an_api_certificate_needs_its_key() -> None:
    with pytest.raises(
        ConfigError, match=r"http\.tls_cert_file and http\.tls_key_file go together"
    ):
        parse_config({"http": {"tls_cert_file": "api.pem"}})
