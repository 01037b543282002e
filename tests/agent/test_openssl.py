"""agent.uplink.openssl: an agent without TLS never loads OpenSSL; one with TLS does.

What blocks imports runs in a fresh interpreter (``python -c``): pytest's own process has
hashlib and ssl imported already, where the module must change nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho_client

from agent.buffer.view import BUFFER_FILE
from agent.config import parse_config
from agent.uplink.openssl import leave_out_ssl, use_builtin_hashes
from bench.fill import fill_buffer
from edgewatch.broker import Mosquitto
from firmware_sim.bus import SimulatedBus
from tests.agent.conftest import (
    WAIT_S,
    Recorder,
    agent_process,
    agent_toml,
    fresh_python,
    openssl_libraries,
)
from tests.agent.test_agent import seqs_seen, unacked_up_to
from wire import Reading, ReadingBatch, TopicKind

CONFIG = '[gateway]\nid = "gw-a"\ndata_dir = "d"\n[mqtt]\nhost = "broker.example"\n'


def run_python(code: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it binds ``result`` (a JSON-shaped dict)."""
    result, stderr = fresh_python(code, "result", cwd=tmp_path)
    assert stderr == "", stderr  # e.g. hashlib's "code for hash ... was not found"
    return dict(result)


MAPPED = (
    "maps = open('/proc/self/maps').read()\n"
    "mapped = {'libcrypto': 'libcrypto' in maps, 'libssl': 'libssl' in maps}\n"
)


def test_nothing_changes_where_hashlib_and_ssl_are_already_imported() -> None:
    hashlib_backend = sys.modules["_hashlib"]

    assert not use_builtin_hashes()
    assert not leave_out_ssl(parse_config(CONFIG).mqtt)

    assert sys.modules["_hashlib"] is hashlib_backend
    assert sys.modules["ssl"] is ssl
    assert vars(paho_client)["ssl"] is ssl


def test_hashlib_uses_its_built_in_hashes_and_the_config_hash_is_the_same(
    tmp_path: Path,
) -> None:
    with_openssl = parse_config(CONFIG).config_hash

    result = run_python(
        "from agent.uplink.openssl import use_builtin_hashes\n"
        "blocked = use_builtin_hashes()\n"
        "import hashlib, hmac\n"
        "from agent.config import parse_config\n"
        f"config_hash = parse_config({CONFIG!r}).config_hash\n"
        "try:\n    import _hashlib\n    backend = 'openssl'\n"
        "except ImportError:\n    backend = 'built-in'\n"
        f"{MAPPED}"
        "result = {'blocked': blocked, 'backend': backend, 'config_hash': config_hash,\n"
        "    'sha256': hashlib.sha256(b'abc').hexdigest(),\n"
        "    'hmac': hmac.new(b'key', b'abc', 'sha256').hexdigest(), 'mapped': mapped}\n",
        tmp_path,
    )

    assert result["blocked"]
    assert result["backend"] == "built-in"
    assert result["config_hash"] == with_openssl
    assert result["sha256"] == hashlib.sha256(b"abc").hexdigest()  # OpenSSL's, here
    assert result["hmac"] == hmac.new(b"key", b"abc", "sha256").hexdigest()
    assert result["mapped"] == {"libcrypto": False, "libssl": False}


def test_hashlib_keeps_openssl_where_a_built_in_hash_module_is_missing(tmp_path: Path) -> None:
    result = run_python(
        "import agent.uplink.openssl\n"
        "agent.uplink.openssl.BUILTIN_HASH_MODULES = ('_sha256', '_no_such_hash_module')\n"
        "blocked = agent.uplink.openssl.use_builtin_hashes()\n"
        "import hashlib\n"
        "result = {'blocked': blocked, 'sha256': hashlib.sha256(b'abc').hexdigest()[:8]}\n",
        tmp_path,
    )

    assert result == {"blocked": False, "sha256": hashlib.sha256(b"abc").hexdigest()[:8]}


def leave_out_ssl_code(mqtt_lines: str) -> str:
    config = CONFIG + mqtt_lines
    return (
        "from agent.uplink.openssl import leave_out_ssl, use_builtin_hashes\n"
        "use_builtin_hashes()\n"
        "from agent.config import parse_config\n"
        "from pathlib import Path\n"
        f"left_out = leave_out_ssl(parse_config({config!r}, base_dir=Path.cwd()).mqtt)\n"
        "import paho.mqtt.client\n"
        "try:\n    import ssl\n    ssl_loaded = True\n"
        "except ImportError:\n    ssl_loaded = False\n"
        f"{MAPPED}"
        "result = {'left_out': left_out, 'ssl': ssl_loaded, 'mapped': mapped,\n"
        "    'paho_ssl': repr(vars(paho.mqtt.client)['ssl'])}\n"
    )


def test_without_tls_ssl_is_left_out_and_paho_gets_its_two_exceptions(tmp_path: Path) -> None:
    result = run_python(leave_out_ssl_code(""), tmp_path)

    assert result["left_out"]
    assert not result["ssl"]
    assert result["mapped"] == {"libcrypto": False, "libssl": False}
    assert result["paho_ssl"] == "<class 'agent.uplink.openssl.PlainSocketSsl'>"


def test_with_tls_ssl_loads(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("only its existence is checked here")

    result = run_python(leave_out_ssl_code('tls_ca_file = "ca.pem"\n'), tmp_path)

    assert not result["left_out"]
    assert result["ssl"]
    assert result["mapped"] == {"libcrypto": True, "libssl": True}
    assert result["paho_ssl"].startswith("<module 'ssl'")


BACKLOG = 20_000  # ~40 messages of 500 readings: many in flight at once


def test_an_agent_without_tls_drains_its_buffer_and_polls_without_openssl_loaded(
    tmp_path: Path, mosquitto: Mosquitto, recorder: Recorder, gauge_bus: SimulatedBus
) -> None:
    fill_buffer(tmp_path / "data" / BUFFER_FILE, BACKLOG)
    config_path = tmp_path / "agent.toml"
    unlimited = "hold_while_controller_offline = false\nbacklog_max_readings_per_s = 0"
    config_path.write_text(
        agent_toml(tmp_path / "data", mosquitto, port_url=gauge_bus.port_path, buffer=unlimited)
    )

    with agent_process(config_path) as process:
        # With many QoS 1 messages in flight, paho's reads and writes on the plain socket
        # run into BlockingIOError, where paho names ssl's exceptions (agent.uplink.openssl): the
        # whole backlog acked means paho's network thread lived through them.
        recorder.wait_for(
            lambda: set(range(1, BACKLOG + 1)) <= set(seqs_seen(recorder)),
            "the backlog",
            timeout_s=60,
        )
        recorder.wait_for(
            lambda: unacked_up_to(tmp_path / "data" / BUFFER_FILE, BACKLOG) == 0,
            "the backlog acked",
        )
        recorder.wait_for(
            lambda: any(r.seq > BACKLOG for r in readings(recorder, TopicKind.READINGS)),
            "a polled reading",
        )
        libraries = openssl_libraries(process.pid)
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=WAIT_S)
        stderr = process.stderr.read().decode() if process.stderr else ""

    assert libraries == set()
    assert exit_code == 0, stderr
    assert "OpenSSL is not loaded: the uplink does not use TLS" in stderr
    assert "Traceback" not in stderr


def readings(recorder: Recorder, kind: TopicKind) -> list[Reading]:
    return [r for batch in recorder.decoded(kind, ReadingBatch) for r in batch.readings]
