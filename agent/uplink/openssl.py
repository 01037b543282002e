"""Keep OpenSSL (libcrypto, libssl) out of an agent whose uplink does not use TLS.

Why: issue 4 holds the agent process (``agent run``) to 40 MB RSS with 1,000,000 buffered
readings and 10 devices polled, and OpenSSL's shared libraries and Python's ``ssl`` module
are ~4.6 MB of it (the agent measured ~42.5 MB with them; see docs/benchmarks.md). Two
modules load OpenSSL: ``_hashlib``, hashlib's OpenSSL backend (imported by ``hashlib``
itself, so by agent.config, ``hmac`` and paho's ``urllib.request``), and ``_ssl``, which
paho imports (``import ssl`` at its top) whether the uplink uses TLS or not.

What ``agent run`` (``agent.cli.run_command``) does, in this order:

1. ``use_builtin_hashes()``, before the config is loaded: hashlib is made to use CPython's
   built-in hash modules (``_sha256`` and the others, ``BUILTIN_HASH_MODULES``) by
   blocking ``_hashlib`` (``sys.modules["_hashlib"] = None``: the documented way to make an
   import fail). hashlib, ``hmac`` and ``random`` then use their built-in fallbacks.
2. The config is loaded.
3. ``leave_out_ssl(config.mqtt)``: without ``mqtt.tls_ca_file``, ``ssl`` and ``_ssl`` are
   blocked the same way and the agent logs that OpenSSL is not loaded and why. With TLS it
   does nothing: ``ssl`` loads when paho imports it (with libcrypto, for the TLS session),
   and hashlib keeps the built-in hashes chosen in step 1 (the same digests).

What it costs: nothing the agent uses. The agent hashes with SHA-256 only (the config's
hash in agent.config and agent.uplink.reconfigure, the risk rule set's in wire.risk_rules); the
built-in SHA-256 gives the same digests. What is gone without OpenSSL (TLS, https,
``hashlib.scrypt``) the agent uses only with TLS configured, and then it is not blocked.

paho 2.2 cannot do without ``ssl`` as it expects to: with ``ssl = None`` its plain-socket
read and write (``Client._sock_recv`` / ``_sock_send``) still name ``ssl.SSLWantReadError``
and ``ssl.SSLWantWriteError`` in their ``except`` clauses, so the first ``BlockingIOError``
(a read with nothing left, a full send buffer) turns into an ``AttributeError`` that kills
paho's network thread. ``leave_out_ssl`` therefore gives paho's ``ssl`` name the two
exception classes (``PlainSocketSsl``), which a plain socket never raises.

The decision is per process: ``[mqtt]`` changes only with agent.toml and a restart (a
pushed config must leave it as it is: agent.uplink.reconfigure), so whether the uplink uses TLS
cannot change while the agent runs. Each step is a no-op when the modules are already
imported (inside pytest, or when anything imported them first): blocking then would unload
nothing and only make later imports fail. Only ``agent run`` calls this module; doctor,
status, the tests and the controller keep OpenSSL.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import MqttConfig

log = logging.getLogger(__name__)

# What hashlib builds its always-available algorithms from when _hashlib cannot be
# imported (hashlib.__get_builtin_constructor); without one of them it logs an error per
# missing algorithm, so hashlib keeps OpenSSL unless all are there.
BUILTIN_HASH_MODULES: tuple[str, ...] = (
    ("_md5", "_sha1", "_sha256", "_sha512", "_blake2", "_sha3")
    if sys.version_info < (3, 12)
    else ("_md5", "_sha1", "_sha2", "_blake2", "_sha3")  # 3.12 merged _sha256 and _sha512
)


def use_builtin_hashes() -> bool:
    """Make hashlib use CPython's built-in hash modules instead of OpenSSL; True when it
    did, False (and nothing changed) when hashlib is already imported or a built-in module
    is missing on this Python."""
    if "hashlib" in sys.modules or "_hashlib" in sys.modules:
        return False
    if any(importlib.util.find_spec(name) is None for name in BUILTIN_HASH_MODULES):
        return False
    sys.modules["_hashlib"] = None  # type: ignore[assignment]
    return True


class PlainSocketSsl:
    """What paho's plain-socket path reads from ``ssl``: the two exceptions it catches
    around every socket read and write. A plain socket never raises them."""

    class SSLWantReadError(OSError):
        pass

    class SSLWantWriteError(OSError):
        pass


def leave_out_ssl(mqtt: MqttConfig) -> bool:
    """Without TLS on the uplink, keep ``ssl`` (and so libssl) from loading; True when it
    did, False when the uplink uses TLS or ``ssl`` is already imported."""
    if mqtt.tls_ca_file is not None:
        return False
    if "ssl" in sys.modules or "_ssl" in sys.modules:
        return False
    sys.modules["ssl"] = None  # type: ignore[assignment]
    sys.modules["_ssl"] = None  # type: ignore[assignment]
    import paho.mqtt.client as paho_client  # noqa: PLC0415 (it must see ssl blocked)

    paho_globals = vars(paho_client)  # its ``ssl`` is not part of paho's typed interface
    if paho_globals.get("ssl", False) is None:
        paho_globals["ssl"] = PlainSocketSsl
    if sys.modules.get("_hashlib", False) is None:
        log.info(
            "OpenSSL is not loaded: the uplink does not use TLS (no mqtt.tls_ca_file);"
            " hashes use Python's built-in code"
        )
    else:
        log.info("ssl is not loaded: the uplink does not use TLS (no mqtt.tls_ca_file)")
    return True
