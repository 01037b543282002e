"""Start a private MQTT broker for the demo and the tests: free loopback port, generated config.

Never assumes 1883 is ours. ``Mosquitto`` is a context manager; leaving it stops the broker
with SIGTERM (SIGKILL after a grace period). ``stop()`` / ``start()`` let fault tests take the
broker away and bring it back on the same port. Where mosquitto is not installed, the demo
(never the tests) falls back to amqtt, an embedded MQTT 3.1.1 broker from PyPI:
``demo_broker`` picks one and says which.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from edgewatch.waiting import wait_until
from wire.lifecycle import Lifecycle


class BrokerError(RuntimeError):
    """The broker could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    candidate = Path("/usr/sbin/mosquitto")
    return str(candidate) if candidate.exists() else None


class Mosquitto(Lifecycle):
    """A mosquitto process on 127.0.0.1:<free port> with a config written to ``workdir``."""

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        extra_config: str = "",
        allow_anonymous: bool = True,
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.extra_config = extra_config
        self.allow_anonymous = allow_anonymous
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            self.extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _command(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]

    def start(self, timeout_s: float = 10.0) -> None:
        self._write_config()
        self._process = subprocess.Popen(
            self._command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # A terminal's Ctrl-C reaches the demo only, which stops the broker last.
            process_group=0,
        )
        deadline = time.monotonic() + timeout_s
        while not port_accepts(self.host, self.port):
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                log = self.log_path.read_text() if self.log_path.exists() else ""
                raise BrokerError(f"{self.name} exited at start: {err}{log}".strip())
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"{self.name} did not listen on {self.port} in {timeout_s}s")
            time.sleep(0.02)

    def reload(self) -> None:
        """Re-read password and ACL files (SIGHUP)."""
        if self._process is not None:
            self._process.send_signal(1)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the broker (fault tests: SIGSTOP freezes it, SIGKILL kills it)."""
        if self._process is not None:
            self._process.send_signal(signum)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr:
            process.stderr.close()
        wait_until(lambda: not port_accepts(self.host, self.port), timeout_s=5)

    @property
    def pid(self) -> int | None:
        """The broker's process id (e.g. for a reload command that sends SIGHUP)."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


class Amqtt(Mosquitto):
    """The embedded fallback: amqtt's broker in a child process, anonymous, loopback only."""

    name = "amqtt"

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        binary = shutil.which("amqtt", path=str(Path(sys.executable).parent))
        if binary is None:
            raise BrokerError(
                "neither mosquitto nor amqtt is installed "
                "(Debian: apt-get install mosquitto, or pip install 'edgewatch[broker]')"
            )
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "amqtt.yaml"
        self.log_path = workdir / "amqtt.log"
        self.extra_config = ""
        self.allow_anonymous = True
        self._process = None

    def _write_config(self) -> None:
        self.config_path.write_text(
            f"listeners:\n  default:\n    type: tcp\n    bind: {self.host}:{self.port}\n"
        )

    def _command(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]


def demo_broker(workdir: Path) -> Mosquitto:
    """mosquitto where it is installed, else amqtt (saying so in one line)."""
    if mosquitto_binary() is not None:
        return Mosquitto(workdir)
    print("[demo] mosquitto is not installed: using the embedded amqtt broker instead")
    return Amqtt(workdir)
