"""Gateway credentials on a mosquitto broker: password file, ACL file, reload.

The store is the truth (``mqtt_credentials``: one hashed password per gateway); the two
files are written from it, atomically, after every change, and the broker is told to
re-read them (SIGHUP to the pid in ``reload_pid_file``, or ``reload_command``).

Passwords are hashed in mosquitto's own format (``$7$``: PBKDF2-SHA512, 101 iterations,
12-byte salt; what ``mosquitto_passwd`` writes). The ACL lets a gateway publish only under
``edgewatch/v1/<its id>/`` and read only its own ``cmd/#`` and the controller's status; the
controller's own user may do everything.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import signal
import sqlite3
import subprocess
from pathlib import Path

from sqlite_utils import Database

import wire
from controller.config import BrokerConfig, MqttConfig

log = logging.getLogger(__name__)

PBKDF2_ITERATIONS = 101
SALT_BYTES = 12


class ProvisioningError(RuntimeError):
    """The broker's files could not be written or the broker could not be reloaded."""


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    """``$7$101$<salt b64>$<hash b64>``, as ``mosquitto_passwd`` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return (
        f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}"
        f"${base64.b64encode(digest).decode()}"
    )


def new_password() -> str:
    return secrets.token_urlsafe(24)


def acl_text(controller_user: str | None, gateways: list[str]) -> str:
    lines = ["# written by the edgewatch controller: edits are overwritten", ""]
    if controller_user:
        lines += [f"user {controller_user}", "topic readwrite #", ""]
    for gateway in gateways:
        lines += [
            f"user {gateway}",
            f"topic write {wire.PREFIX}/{gateway}/#",
            f"topic read {wire.PREFIX}/{gateway}/cmd/#",
            f"topic read {wire.CONTROLLER_STATUS_TOPIC}",
            "",
        ]
    return "\n".join(lines)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)


class Provisioner:
    """Keeps the broker's password and ACL files in step with the store."""

    def __init__(self, broker: BrokerConfig, mqtt: MqttConfig) -> None:
        self.broker = broker
        self.mqtt = mqtt
        # Hash the controller's own password once: a fresh salt per write would be harmless
        # but makes every rewrite differ.
        self._controller_line = (
            f"{mqtt.username}:{mosquitto_hash(mqtt.password)}"
            if mqtt.username and mqtt.password
            else None
        )

    @property
    def enabled(self) -> bool:
        return self.broker.managed

    def issue(self, db: Database, gateway: str, *, now_ms: int) -> str:
        """New credentials for ``gateway`` (replacing any); returns the password, once."""
        password = new_password()
        db.execute(
            "INSERT INTO mqtt_credentials (gateway, password_line, created_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (gateway) DO UPDATE SET password_line = excluded.password_line,"
            " created_ms = excluded.created_ms, revoked_ms = NULL",
            (gateway, f"{gateway}:{mosquitto_hash(password)}", now_ms),
        )
        return password

    @staticmethod
    def revoke(db: Database, gateway: str, *, now_ms: int) -> bool:
        cursor = db.execute(
            "UPDATE mqtt_credentials SET revoked_ms = ? WHERE gateway = ? AND revoked_ms IS NULL",
            (now_ms, gateway),
        )
        return bool(cursor.rowcount)

    def sync(self, conn: sqlite3.Connection) -> None:
        """Write both files from the store and reload the broker."""
        rows = conn.execute(
            "SELECT gateway, password_line FROM mqtt_credentials WHERE revoked_ms IS NULL"
            " ORDER BY gateway"
        ).fetchall()
        if self.sync_files_only([(g, line) for g, line in rows]):
            self.reload()

    def sync_files_only(self, credentials: list[tuple[str, str]]) -> bool:
        """Write both files for (gateway, password line) pairs; False if not managed."""
        if self.broker.password_file is None or self.broker.acl_file is None:
            return False
        rows = credentials
        lines = [line for _, line in rows]
        if self._controller_line:
            lines.insert(0, self._controller_line)
        try:
            _write_atomically(self.broker.password_file, "\n".join(lines) + "\n")
            _write_atomically(
                self.broker.acl_file, acl_text(self.mqtt.username, [g for g, _ in rows])
            )
        except OSError as exc:
            raise ProvisioningError(f"cannot write the broker's files: {exc}") from exc
        return True

    def reload(self) -> None:
        if self.broker.reload_command:
            result = subprocess.run(
                self.broker.reload_command, capture_output=True, text=True, timeout=30, check=False
            )
            if result.returncode != 0:
                raise ProvisioningError(
                    f"broker.reload_command exited {result.returncode}: {result.stderr.strip()}"
                )
            return
        if self.broker.reload_pid_file is not None:
            try:
                pid = int(self.broker.reload_pid_file.read_text().strip())
                os.kill(pid, signal.SIGHUP)
            except (OSError, ValueError) as exc:
                raise ProvisioningError(
                    f"cannot signal the broker from {self.broker.reload_pid_file}: {exc}"
                ) from exc
            return
        log.warning("broker files written, but no broker.reload_* is configured to reload it")
