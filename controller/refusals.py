"""What the controller refuses to run with: checked once, at start, before anything listens.

Demo mode (``[api] auth = "demo"``) is the one-machine first look: no tokens, so it must be
on loopback, and it may talk to anything the demo starts. Outside it (``auth = "tokens"``),
the controller serves people and talks to a broker and to tier centers across a city's
network, and what crosses that network must be private and authenticated:

- an API token exists, and the MQTT password is not a default one;
- the API is HTTPS (``[http] tls_cert_file``) or listens on loopback behind a TLS proxy
  (docs/deployment.md), unless ``[http] allow_plain_http = true``;
- a broker off loopback is reached over TLS (``mqtt.tls_ca_file``) unless ``[mqtt]
  allow_plain_mqtt = true``, and with a login (``username`` or a client certificate) unless
  ``[mqtt] allow_anonymous = true``;
- every center has a ``secret`` (its webhooks are signed, and it can tell a forged or
  replayed batch), and its ``http://`` url points at loopback unless that center says
  ``allow_plain_http = true``;
- duty notifications (``[notify]`` rosters or channels) have a link secret, which a
  restart must not change (the links already sent must keep working), and the links a
  phone opens are ``https://`` unless they point at loopback.

Each refusal names the key and the fix; all of them are reported at once.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from controller.config import AuthMode, ControllerConfig, is_loopback

# Secrets nobody may run a production controller with.
DEFAULT_SECRETS = frozenset(
    {"", "changeme", "change-me", "password", "secret", "admin", "edgewatch"}
)


class StartupRefusedError(RuntimeError):
    """The controller will not start as configured; the message says what to change."""


def refusal(config: ControllerConfig, active_tokens: int) -> str | None:
    """Why this config must not run, one problem per line (None: it may)."""
    if config.api.auth is AuthMode.DEMO:
        if not is_loopback(config.http.host):
            return (
                f'[api] auth = "demo" serves the API without tokens: only on loopback,'
                f" not on http.host = {config.http.host!r}"
            )
        return None
    problems: list[str] = []
    if active_tokens == 0:
        problems.append(
            '[api] auth = "tokens" but the database has no API token: create one with'
            f" 'edgewatch controller token create --role admin --db {config.storage.path}'"
        )
    problems += _http_problems(config) + _mqtt_problems(config) + _center_problems(config)
    problems += _notify_problems(config)
    return "\n".join(problems) or None


def _http_problems(config: ControllerConfig) -> list[str]:
    http = config.http
    if http.tls or http.allow_plain_http or is_loopback(http.host):
        return []
    return [
        f"http.host = {http.host!r} would serve API tokens over plain HTTP: set"
        " http.tls_cert_file and http.tls_key_file, or listen on loopback behind a TLS proxy"
        " (docs/deployment.md), or say http.allow_plain_http = true"
    ]


def _mqtt_problems(config: ControllerConfig) -> list[str]:
    mqtt = config.mqtt
    problems: list[str] = []
    if mqtt.username is not None and (mqtt.password or "") in DEFAULT_SECRETS:
        problems.append("mqtt.password is empty or a default secret: set a real one")
    if is_loopback(mqtt.host):
        return problems
    if mqtt.tls_ca_file is None and not mqtt.allow_plain_mqtt:
        problems.append(
            f"mqtt.host = {mqtt.host!r} is not on loopback and mqtt.tls_ca_file is not set:"
            " readings, commands and the password would cross the network in the clear;"
            " set mqtt.tls_ca_file, or say mqtt.allow_plain_mqtt = true"
        )
    if mqtt.username is None and mqtt.tls_cert_file is None and not mqtt.allow_anonymous:
        problems.append(
            f"mqtt.host = {mqtt.host!r} is not on loopback and the controller logs in"
            " anonymously: set mqtt.username and mqtt.password (or a client certificate),"
            " or say mqtt.allow_anonymous = true"
        )
    return problems


def _center_problems(config: ControllerConfig) -> list[str]:
    problems: list[str] = []
    for index, center in enumerate(config.centers):
        where = f"centers[{index}] ({center.name!r})"
        if center.secret is None:
            problems.append(
                f"{where}.secret: required outside demo mode: the center checks every"
                " webhook's signature with it (wire.webhook)"
            )
        url = urlsplit(center.url)
        if url.scheme == "http" and not center.allow_plain_http and not is_loopback(url.hostname):
            problems.append(
                f"{where}.url: plain http:// to {url.hostname!r}, which is not on loopback:"
                " use https://, or say allow_plain_http = true for this center"
            )
    return problems


def _notify_problems(config: ControllerConfig) -> list[str]:
    notify = config.notify
    if not (notify.rosters or notify.channels):
        return []
    problems: list[str] = []
    if notify.link_secret is None and notify.link_secret_file is None:
        problems.append(
            "notify.link_secret_file (or notify.link_secret): required outside demo mode: it"
            " signs the acknowledgement links sent to duty people"
        )
    base = notify.link_base_url
    if base is None and not config.http.tls and not is_loopback(config.http.host):
        base = f"http://{config.http.host}"
    if base is not None:
        url = urlsplit(base)
        if url.scheme == "http" and not is_loopback(url.hostname):
            problems.append(
                f"notify.link_base_url: plain http:// to {url.hostname!r}: the links carry"
                " their credential; use https:// (a TLS proxy in front is fine)"
            )
    return problems
