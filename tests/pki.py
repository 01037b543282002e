"""Test certificates made with the openssl CLI: a CA, a server certificate for 127.0.0.1 and
a client certificate, and the mosquitto TLS listener config that uses them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import required

# Skips with the install command outside CI, fails under CI (tests/required.py).
needs_openssl = pytest.mark.usefixtures("openssl_cli")


def openssl(*args: str, cwd: Path) -> None:
    """Run the openssl CLI (missing: skipped with the install command, failed under CI)."""
    binary = required.debian_tool("openssl")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True)


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


def tls_listener(pki: Path, port: int, *, require_certificate: bool) -> str:
    """mosquitto ``extra_config`` for a TLS listener on 127.0.0.1:``port``."""
    return (
        "user root\n"  # as root, mosquitto would drop to a user who cannot read tmp_path
        f"listener {port} 127.0.0.1\n"
        f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'server.pem'}\n"
        f"keyfile {pki / 'server.key'}\n"
        f"require_certificate {'true' if require_certificate else 'false'}\n"
    )
