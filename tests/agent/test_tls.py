"""MQTT over TLS on the agent: a mosquitto TLS listener with certificates the test makes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.agent import Agent
from agent.config import ConfigError, parse_config
from edgewatch.broker import Mosquitto, free_port
from edgewatch.waiting import wait_until
from tests.agent.conftest import WAIT_S, Recorder, agent_process, agent_toml, openssl_libraries
from tests.pki import make_pki, needs_openssl, tls_listener
from wire import GatewayState, Status, TopicKind


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    folder = tmp_path / "pki"
    make_pki(folder)
    return folder


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Path, mosquitto_cli: str) -> Iterator[tuple[Mosquitto, int]]:
    """A broker with a plain listener (for the test's recorder) and a TLS one that
    requires a client certificate."""
    tls_port = free_port()
    extra = tls_listener(pki, tls_port, require_certificate=True)
    with Mosquitto(tmp_path / "broker", extra_config=extra) as broker:
        yield broker, tls_port


def tls_toml(tmp_path: Path, broker: Mosquitto, tls_port: int, tls_keys: str) -> str:
    toml = agent_toml(tmp_path / "data", broker)
    return toml.replace(f"port = {broker.port}", f"port = {tls_port}\n{tls_keys}")


def client_certificate_keys(pki: Path) -> str:
    """The [mqtt] keys of a TLS uplink with the test PKI's client certificate."""
    return (
        f'tls_ca_file = "{pki / "ca.pem"}"\n'
        f'tls_cert_file = "{pki / "client.pem"}"\ntls_key_file = "{pki / "client.key"}"'
    )


@needs_openssl
def test_the_agent_connects_over_tls_with_a_client_certificate(
    tmp_path: Path, pki: Path, tls_broker: tuple[Mosquitto, int]
) -> None:
    broker, tls_port = tls_broker
    keys = client_certificate_keys(pki)
    recorder = Recorder(broker)
    try:
        with Agent(parse_config(tls_toml(tmp_path, broker, tls_port, keys))) as agent:
            wait_until(lambda: agent.session.connected, timeout_s=WAIT_S, message="TLS session")
            births = recorder.wait_for(
                lambda: recorder.decoded(TopicKind.STATUS, Status), "the birth over TLS"
            )
    finally:
        recorder.close()
    assert births[0].state is GatewayState.ONLINE


@needs_openssl
def test_an_agent_process_with_tls_loads_openssl_and_publishes(
    tmp_path: Path, pki: Path, tls_broker: tuple[Mosquitto, int]
) -> None:
    # agent.uplink.openssl leaves OpenSSL out only without TLS.
    broker, tls_port = tls_broker
    keys = client_certificate_keys(pki)
    config_path = tmp_path / "agent.toml"
    config_path.write_text(tls_toml(tmp_path, broker, tls_port, keys))
    recorder = Recorder(broker)
    try:
        with agent_process(config_path) as process:
            births = recorder.wait_for(
                lambda: recorder.decoded(TopicKind.STATUS, Status), "the birth over TLS"
            )
            recorder.wait_for(lambda: recorder.messages(TopicKind.HEALTH), "a heartbeat")
            libraries = openssl_libraries(process.pid)
    finally:
        recorder.close()
    assert births[0].state is GatewayState.ONLINE
    assert any(name.startswith("libssl") for name in libraries), libraries


@needs_openssl
def test_without_the_ca_or_the_client_certificate_the_agent_never_connects(
    tmp_path: Path, pki: Path, tls_broker: tuple[Mosquitto, int]
) -> None:
    broker, tls_port = tls_broker
    no_cert = f'tls_ca_file = "{pki / "ca.pem"}"'
    for keys in ("", no_cert):  # plain MQTT to a TLS port; TLS without a client certificate
        with Agent(parse_config(tls_toml(tmp_path, broker, tls_port, keys))) as agent:
            # The session tries, fails and retries: a new session number for each try.
            retried = agent.buffer.session + 2
            wait_until(lambda: agent.buffer.session >= retried, timeout_s=WAIT_S)  # noqa: B023
            assert not agent.session.connected


def mqtt_table(lines: str) -> str:
    return f'[gateway]\nid = "gw-a"\ndata_dir = "d"\n[mqtt]\nhost = "broker.example"\n{lines}\n'


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('tls_ca_file = "nope.pem"', r"mqtt\.tls_ca_file: no such file .*nope\.pem"),
        (
            'tls_ca_file = "ca.pem"\ntls_cert_file = "c.pem"',
            "tls_cert_file and mqtt.tls_key_file go together",
        ),
        ('tls_cert_file = "c.pem"\ntls_key_file = "c.key"', r"needs mqtt\.tls_ca_file"),
        ('tls_ca_file = "ca.pem"\ntls_insecure = true', "refused for 'broker.example'"),
    ],
)
def test_tls_keys_are_checked_at_start(tmp_path: Path, lines: str, message: str) -> None:
    (tmp_path / "ca.pem").write_text("not checked here: the file exists")
    with pytest.raises(ConfigError, match=message):
        parse_config(mqtt_table(lines), base_dir=tmp_path)


def test_relative_tls_files_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-")
    config = parse_config(mqtt_table('tls_ca_file = "ca.pem"'), base_dir=tmp_path)
    assert config.mqtt.tls_ca_file == tmp_path / "ca.pem"
