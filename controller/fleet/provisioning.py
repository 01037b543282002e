"""Gateway credentials on a mosquitto broker: password file, ACL file, reload.

The store is the truth (``mqtt_credentials``: one hashed password per gateway); the two
files are written from it after every change, and the broker is told to re-read them
(SIGHUP to the pid in ``reload_pid_file``, or ``reload_command``). API requests run on
many threads: one lock covers reading the store, writing both files and the reload, so a
slower request never writes an older state over a newer one. Each file is written to a
``mkstemp`` file beside it (created 0600, made 0640 before any byte is written), fsynced,
renamed over the old one, and the folder fsynced: a crash leaves the old file or the new
one, never a torn or world-readable one.

Users of the broker that are not gateways of this controller are its own MQTT user and any
user already in the password file (or with a block in the ACL file: a certificate login)
whom the store does not know: another controller replica, a bridge, a monitoring login
added by hand. Their password lines and ACL blocks are kept as they are, and no gateway
may take their names, since the files would then hold the name twice and the gateway would
share the other's login or rules (the controller's ACL is ``readwrite #``). A sync that
would write a user twice fails, naming the user.

Passwords are hashed in mosquitto's own format (``$7$``: PBKDF2-SHA512, 101 iterations,
12-byte salt; what ``mosquitto_passwd`` writes). The ACL lets a gateway publish only under
``edgewatch/v1/<its id>/`` and read only its own ``cmd/#`` and the controller's status; the
controller's own user may do everything.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import secrets
import signal
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from sqlite_utils import Database

import wire
from controller.config import BrokerConfig, MqttConfig

log = logging.getLogger(__name__)

PBKDF2_ITERATIONS = 101
SALT_BYTES = 12


class ProvisioningError(RuntimeError):
    """The broker's files could not be written or the broker could not be reloaded."""


class UserTakenError(ValueError):
    """A gateway id is already a broker user that is not that gateway."""


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


ACL_HEADER = (
    "# written by the edgewatch controller: the blocks of its own user and of its gateways"
    " are rewritten on every change; other users' blocks are kept as they are"
)


def acl_text(controller_user: str | None, gateways: list[str], kept: Iterable[str] = ()) -> str:
    """The ACL file: the controller's user, each gateway, then ``kept`` (other users' blocks,
    each a ``user NAME`` line and its rules, as read from the old file)."""
    lines = [ACL_HEADER, ""]
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
    for block in kept:
        lines += [block.rstrip("\n"), ""]
    return "\n".join(lines)


def password_users(text: str) -> list[str]:
    """The user of every line of a mosquitto password file, in order (repeats kept)."""
    return [line.split(":", 1)[0] for line in text.splitlines() if ":" in line]


def acl_blocks(text: str) -> dict[str, str]:
    """The ``user NAME`` blocks of a mosquitto ACL file: name -> the block's text. Lines
    before the first ``user`` line (rules for anonymous clients, ``pattern`` lines) are not
    a user's and are dropped: this controller's broker has no anonymous access to keep."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        words = line.split(None, 1)
        if len(words) == 2 and words[0] == "user":
            current = blocks.setdefault(words[1].strip(), [])
        if current is not None and line.strip() and not line.lstrip().startswith("#"):
            current.append(line)
    return {name: "\n".join(lines) for name, lines in blocks.items()}


def write_atomically(path: Path, text: str, *, mode: int = 0o640) -> None:
    """Replace ``path`` with ``text``: a private temp file in the same folder (never
    readable by others, even for a moment), fsynced, renamed over ``path``, folder fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _read(path: Path) -> str:
    """A broker file's text; empty if it does not exist yet."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise ProvisioningError(f"cannot read {path}: {exc.strerror or exc}") from exc


class Provisioner:
    """Keeps the broker's password and ACL files in step with the store."""

    def __init__(self, broker: BrokerConfig, mqtt: MqttConfig) -> None:
        self.broker = broker
        self.mqtt = mqtt
        self._lock = threading.Lock()  # store read, both files, reload: one at a time
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

    def other_users(self, conn: sqlite3.Connection) -> set[str]:
        """Broker users that are not gateways of this controller: its own MQTT user and the
        users of the password file that the store has never issued credentials to."""
        gateways = {row[0] for row in conn.execute("SELECT gateway FROM mqtt_credentials")}
        others = {user for user in self._file_users() if user not in gateways}
        if self.mqtt.username:
            others.add(self.mqtt.username)
        return others

    def _file_users(self) -> list[str]:
        """The users of the password file, and those of the ACL file's blocks."""
        password_file, acl_file = self.broker.password_file, self.broker.acl_file
        users = [] if password_file is None else password_users(_read(password_file))
        return users + ([] if acl_file is None else list(acl_blocks(_read(acl_file))))

    def check_gateway_id(self, conn: sqlite3.Connection, gateway: str) -> None:
        """Raise UserTakenError if ``gateway`` is a broker user that is not that gateway."""
        if not self.enabled:
            return
        if gateway in self.other_users(conn):
            whose = (
                "this controller's own MQTT user (mqtt.username)"
                if gateway == self.mqtt.username
                else "a user of the broker's password or ACL file"
                f" ({self.broker.password_file}, {self.broker.acl_file})"
            )
            raise UserTakenError(
                f"gateway id {gateway!r} is {whose}: a gateway may not share a broker login;"
                " pick another id"
            )

    def issue(self, db: Database, gateway: str, *, now_ms: int) -> str:
        """New credentials for ``gateway`` (replacing any); returns the password, once. The
        caller checks the id first (``check_gateway_id``); a name taken meanwhile still
        never reaches the broker: the sync refuses to write a user twice."""
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
        """Write both files from the store and reload the broker, under the one lock."""
        with self._lock:
            issued = {row[0] for row in conn.execute("SELECT gateway FROM mqtt_credentials")}
            rows = conn.execute(
                "SELECT gateway, password_line FROM mqtt_credentials WHERE revoked_ms IS NULL"
                " ORDER BY gateway"
            ).fetchall()
            if self._write_files([(g, line) for g, line in rows], issued):
                self.reload()

    def sync_files_only(self, credentials: list[tuple[str, str]]) -> bool:
        """Write both files for (gateway, password line) pairs; False if not managed."""
        with self._lock:
            return self._write_files(credentials, {g for g, _ in credentials})

    def _write_files(self, credentials: list[tuple[str, str]], issued: set[str]) -> bool:
        """Both files: the controller's user, the gateways with active credentials, and the
        lines of users the store never issued to (kept). ``issued``: every gateway the store
        knows, revoked ones included (their lines go). Raises ProvisioningError, naming the
        user, if a user would be written twice."""
        password_file, acl_file = self.broker.password_file, self.broker.acl_file
        if password_file is None or acl_file is None:
            return False
        ours = {g for g, _ in credentials} | issued
        if self.mqtt.username:
            ours.add(self.mqtt.username)
        kept_lines, kept_blocks = self._kept(password_file, acl_file, ours)
        lines = [line for _, line in credentials] + kept_lines
        if self._controller_line:
            lines.insert(0, self._controller_line)
        users = password_users("\n".join(lines))
        repeated = sorted({user for user in users if users.count(user) > 1})
        if repeated:
            raise ProvisioningError(
                f"{password_file}: user {repeated[0]!r} would appear twice (a gateway named"
                " like another broker user): not written; revoke that gateway's credentials"
            )
        try:
            write_atomically(password_file, "\n".join(lines) + "\n")
            write_atomically(
                acl_file,
                acl_text(
                    self.mqtt.username,
                    [g for g, _ in credentials],
                    kept_blocks.values(),
                ),
            )
        except OSError as exc:
            raise ProvisioningError(f"cannot write the broker's files: {exc}") from exc
        return True

    def _kept(
        self, password_file: Path, acl_file: Path, ours: set[str]
    ) -> tuple[list[str], dict[str, str]]:
        """The password lines and ACL blocks of users that are not ours, from the old files
        (a user may have a block without a password line: it logs in with a certificate)."""
        lines = [
            line
            for line in _read(password_file).splitlines()
            if ":" in line and line.split(":", 1)[0] not in ours
        ]
        blocks = {u: b for u, b in acl_blocks(_read(acl_file)).items() if u not in ours}
        return lines, blocks

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
