"""MQTT over TLS: the controller connects to a mosquitto TLS listener that requires a client
certificate, with a CA and certificates this test generates (openssl CLI)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import wire
from controller.config import ConfigError, parse_config
from controller.service import Controller
from edgewatch.broker import Mosquitto, free_port
from edgewatch.waiting import wait_until
from tests.controller.support import Publisher, api, batch, config_for, get_json

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    folder.mkdir()
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=edgewatch test CA",
        cwd=folder,
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}",
            cwd=folder,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *ext,
            cwd=folder,
        )  # fmt: skip


def test_controller_ingests_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    make_pki(pki)
    tls_port = free_port()
    broker = Mosquitto(
        tmp_path / "broker",
        extra_config=(
            "user root\n"  # as root, mosquitto would drop to a user who cannot read tmp_path
            f"listener {tls_port} 127.0.0.1\n"
            f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'server.pem'}\n"
            f"keyfile {pki / 'server.key'}\nrequire_certificate true\n"
        ),
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
