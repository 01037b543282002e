"""The controller's TOML config: typed, checked once at start, errors that name the key.

```toml
[mqtt]
host = "127.0.0.1"
port = 1883
# username = "edgewatch-controller"  # with a password: needed where the broker has ACLs
# password = "..."                   # never a default such as "changeme"
# tls_ca_file = "ca.pem"             # TLS to the broker; client cert/key are optional
# tls_cert_file = "controller.pem"
# tls_key_file = "controller.key"
# allow_plain_mqtt = false          # outside demo mode a broker off loopback needs TLS...
# allow_anonymous = false           # ...and a login (username or client certificate)

[api]
auth = "tokens"                  # "tokens": bearer tokens (edgewatch controller token create);
                                 # "demo": no auth, loopback only, for the one-machine demo

[logging]
format = "text"                  # or "json": one JSON object per line

[http]
host = "127.0.0.1"
port = 8080                      # 0: any free port (the bound port is reported)
# tls_cert_file = "api.pem"       # serve the API over HTTPS (certificate chain, PEM)...
# tls_key_file = "api.key"        # ...and its key: both or neither
# allow_plain_http = false        # outside demo mode, plain HTTP only on loopback (a TLS
                                 # proxy in front) unless this says so

[storage]
path = "controller.db"           # relative paths are relative to the config file

[health]                         # optional, these are the defaults
heartbeat_misses = 3
default_heartbeat_interval_s = 5.0
check_interval_s = 1.0
clock_skew_max_s = 10.0          # |gateway clock - controller clock| beyond this: degraded
backlog_max_age_s = 60.0         # oldest unsent reading older than this: degraded
disk_low_bytes = 100000000       # heartbeat's disk_free_bytes below this: degraded
device_stale_after_s = 300.0     # no good reading from a device for this long: stale

[forwarding]                     # optional, these are the defaults
batch_max_readings = 500
request_timeout_s = 5.0
backoff_initial_s = 0.1
backoff_max_s = 3.0

[broker]                         # optional: the mosquitto whose credentials the controller keeps
# password_file = "/etc/mosquitto/edgewatch.passwd"
# acl_file = "/etc/mosquitto/edgewatch.acl"
# reload_pid_file = "/run/mosquitto/mosquitto.pid"   # SIGHUP after a change, or:
# reload_command = ["systemctl", "reload", "mosquitto"]
[gaps]                           # optional, these are the defaults
reorder_wait_s = 2.0             # a missing seq range waits this long before a replay
replay_timeout_s = 10.0          # then is asked again after this long
max_attempts = 3                 # and recorded as unfillable after this many asks

[[gateways]]
id = "gw-demo-1"
place = "cq/yuzhong/jiefangbei"
lon = 106.5770                   # optional, WGS84 / CGCS2000 degrees: where the map shows it
lat = 29.5647

[[centers]]
name = "city"
tier = "city"                    # city, district or street
place = "cq"
url = "http://127.0.0.1:9001/ingest"
secret = "a-long-random-shared-secret"  # HMAC-SHA256 signs every webhook; required
                                 # outside demo mode
# allow_plain_http = false       # outside demo mode an http:// url must be on loopback

[[risk_points]]                  # see docs/risk-and-alerts.md for presets and defaults
id = "jialing-jfb"
category = "water_level"         # water_level, rainfall, slope, gas, fire, bridge, other
place = "cq/yuzhong/jiefangbei/grid-1"
lon = 106.5791                   # optional, WGS84 / CGCS2000 degrees: where the map shows it
lat = 29.5652
stale_after_s = 300              # a quiet device on a red-capable point: blind spot
[[risk_points.metrics]]
device = "gw-demo-1.river-gauge-1"   # <gateway>.<device>
metric = "level_cm"
preset = "water_level"           # or thresholds = {yellow = 1.0, red = 2.0}
warning_level = 1800.0
guarantee_level = 2000.0

[map]                            # optional: the console's map (docs/map.md)
# tile_url = "https://tiles.intranet.example/{z}/{x}/{y}.png"   # none: the offline base layer
# tile_datum = "wgs84"           # the tiles' datum: wgs84 (also CGCS2000, Tianditu), gcj02, bd09
# tile_attribution = ""
# tile_max_zoom = 18

[alert_routing]                  # optional, these are the defaults
blue = {tiers = ["street"], ack_deadline_s = 1800}
yellow = {tiers = ["street", "district"], ack_deadline_s = 900}
orange = {tiers = ["street", "district", "city"], ack_deadline_s = 300}
red = {tiers = ["street", "district", "city"], ack_deadline_s = 120}
health_summary_interval_s = 60
```
"""

from __future__ import annotations

import ipaddress
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError
from pydantic import model_validator as _model_validator

import wire
from controller.config_types import PLACE_PATTERN as PLACE_PATTERN  # noqa: PLC0414 (re-exported)
from controller.config_types import Place
from controller.config_types import Section as _Section
from controller.map.datum import Datum
from controller.notify.config import NotifyConfig
from wire.risk import Category, Colour, Measure, MetricRule, RiskPointRules, Thresholds
from wire.risk_presets import PresetError, build_rule
from wire.validation import problems

CenterName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Port = Annotated[int, Field(ge=0, le=65535)]


class ConfigError(ValueError):
    """The config cannot be used; the message names the file and every offending key."""


class Tier(StrEnum):
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(host: str | None) -> bool:
    """``host`` (a name or an address) is this machine's loopback."""
    if host is None:
        return False
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class MqttConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    # A fixed client id with a persistent session: the broker keeps queueing for the
    # controller while it restarts, and messages are acknowledged only once stored.
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "edgewatch-controller"
    keepalive_s: Annotated[int, Field(ge=1, le=600)] = 10
    username: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    password: Annotated[str, Field(max_length=256)] | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Outside demo mode a broker off loopback must be reached over TLS and with a login;
    # these say, explicitly, that this one need not (controller.refusals).
    allow_plain_mqtt: bool = False
    allow_anonymous: bool = False

    @_model_validator(mode="after")
    def _pairs(self) -> MqttConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("mqtt.tls_cert_file and mqtt.tls_key_file go together: set both")
        if self.tls_cert_file is not None and self.tls_ca_file is None:
            raise ValueError("mqtt.tls_cert_file needs mqtt.tls_ca_file (the broker's CA)")
        if self.password is not None and self.username is None:
            raise ValueError("mqtt.password needs mqtt.username")
        return self


class AuthMode(StrEnum):
    TOKENS = "tokens"
    DEMO = "demo"


class ApiConfig(_Section):
    auth: AuthMode = AuthMode.TOKENS


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LoggingConfig(_Section):
    format: LogFormat = LogFormat.TEXT


class BrokerConfig(_Section):
    """The mosquitto whose password and ACL files the controller keeps (provisioning)."""

    password_file: Path | None = None
    acl_file: Path | None = None
    reload_pid_file: Path | None = None
    reload_command: list[str] = []

    @_model_validator(mode="after")
    def _both_files(self) -> BrokerConfig:
        if (self.password_file is None) != (self.acl_file is None):
            raise ValueError("broker.password_file and broker.acl_file go together: set both")
        return self

    @property
    def managed(self) -> bool:
        return self.password_file is not None


class HttpConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    # HTTPS: the certificate (chain) and its key, PEM. Without them the API is plain HTTP,
    # which outside demo mode is refused off loopback unless allow_plain_http says so.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    allow_plain_http: bool = False

    @_model_validator(mode="after")
    def _tls_pair(self) -> HttpConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("http.tls_cert_file and http.tls_key_file go together: set both")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


class StorageConfig(_Section):
    path: Path = Path("controller.db")


class HealthConfig(_Section):
    heartbeat_misses: Annotated[int, Field(ge=1, le=100)] = 3
    default_heartbeat_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    check_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    clock_skew_max_s: Annotated[float, Field(gt=0, le=86400)] = 10.0
    backlog_max_age_s: Annotated[float, Field(gt=0, le=86400 * 30)] = 60.0
    disk_low_bytes: Annotated[int, Field(ge=0)] = 100_000_000
    device_stale_after_s: Annotated[float, Field(gt=0, le=86400 * 30)] = 300.0


class ForwardingConfig(_Section):
    batch_max_readings: Annotated[int, Field(ge=1, le=10_000)] = 500
    request_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    backoff_initial_s: Annotated[float, Field(gt=0, le=60)] = 0.1
    backoff_max_s: Annotated[float, Field(gt=0, le=60)] = 3.0

    @_model_validator(mode="after")
    def _backoff_in_order(self) -> ForwardingConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(
                f"backoff_initial_s ({self.backoff_initial_s:g}) is above backoff_max_s"
                f" ({self.backoff_max_s:g})"
            )
        return self


class GapsConfig(_Section):
    """Gap detection (controller/fleet/gaps.py): when to ask a gateway to replay, and when to
    give up."""

    reorder_wait_s: Annotated[float, Field(gt=0, le=600)] = 2.0
    replay_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3


Longitude = Annotated[float, Field(ge=-180, le=180)]
Latitude = Annotated[float, Field(ge=-90, le=90)]


class Located(BaseModel):
    """Where a thing is on the map (WGS84 / CGCS2000 degrees): both or neither. A part of
    the config's gateways and risk points, and of the risk-point API's bodies."""

    lon: Longitude | None = None
    lat: Latitude | None = None

    @_model_validator(mode="after")
    def _both_or_neither(self) -> Located:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat, or neither")
        return self


class _Located(_Section, Located):
    pass


class GatewayConfig(_Located):
    id: wire.ValidGatewayId
    place: Place


class MapConfig(_Section):
    """The console's map. Without ``tile_url`` it draws the places' boundaries (offline)."""

    tile_url: (
        Annotated[
            str,
            Field(pattern=r"^(https?://[^\s/]+)?/\S*\{z\}\S*$", max_length=2048),
        ]
        | None
    ) = None
    tile_datum: Datum = Datum.WGS84
    tile_attribution: Annotated[str, Field(max_length=256)] = ""
    tile_max_zoom: Annotated[int, Field(ge=1, le=20)] = 18

    @_model_validator(mode="after")
    def _template(self) -> MapConfig:
        if self.tile_url is not None and not all(
            key in self.tile_url for key in ("{z}", "{x}", "{y}")
        ):
            raise ValueError("tile_url: a template with {z}, {x} and {y}")
        return self

    def tile_origin(self) -> str | None:
        """Where the tiles come from, for the console's content security policy."""
        if self.tile_url is None or not self.tile_url.startswith("http"):
            return None
        scheme, _, rest = self.tile_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"


TIER_ORDER = (Tier.STREET, Tier.DISTRICT, Tier.CITY)  # bottom up: escalation climbs this


class CenterConfig(_Section):
    name: CenterName
    tier: Tier
    place: Place
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=2048)]
    # Shared with the center; signs every webhook (wire.webhook). None: unsigned, which only
    # demo mode accepts (controller.refusals).
    secret: Annotated[str, Field(min_length=16, max_length=256)] | None = None
    # Outside demo mode an http:// url must point at loopback unless this says so.
    allow_plain_http: bool = False


class RiskMetricConfig(_Section):
    """One metric of a risk point: a preset (or the category's) with any field overridden."""

    device: Annotated[str, Field(pattern=r"^[a-z0-9-]+\.[A-Za-z0-9_.:-]+$", max_length=128)]
    metric: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
    preset: str | None = None
    warning_level: float | None = None
    guarantee_level: float | None = None
    measure: Measure | None = None
    window_s: Annotated[float, Field(gt=0)] | None = None
    min_span_s: Annotated[float, Field(ge=0)] | None = None
    absolute: bool | None = None
    thresholds: Thresholds | None = None
    hysteresis: Annotated[float, Field(ge=0)] | None = None
    hold_s: Annotated[float, Field(ge=0)] | None = None

    def rule(self, category: Category) -> MetricRule:
        fields = self.model_dump(exclude_none=True)
        return build_rule(category=category, **fields)


class RiskPointConfig(_Located):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
    name: str = ""
    category: Category
    place: Place
    stale_after_s: Annotated[float, Field(gt=0)] = 300.0
    metrics: Annotated[list[RiskMetricConfig], Field(min_length=1)]

    @_model_validator(mode="after")
    def _rules_build(self) -> RiskPointConfig:
        try:
            self.rules()
        except (PresetError, ValidationError) as exc:
            raise ValueError(f"risk point {self.id!r}: {exc}") from None
        return self

    def rules(self) -> RiskPointRules:
        return RiskPointRules(
            id=self.id,
            category=self.category,
            place=self.place,
            name=self.name,
            stale_after_s=self.stale_after_s,
            metrics=[m.rule(self.category) for m in self.metrics],
        )


class ColourRoute(_Section):
    tiers: Annotated[list[Tier], Field(min_length=1)]
    ack_deadline_s: Annotated[float, Field(gt=0)]


class AlertRoutingConfig(_Section):
    """Graded and progressive: who is told at once, and how long before it climbs a tier."""

    blue: ColourRoute = ColourRoute(tiers=[Tier.STREET], ack_deadline_s=1800)
    yellow: ColourRoute = ColourRoute(tiers=[Tier.STREET, Tier.DISTRICT], ack_deadline_s=900)
    orange: ColourRoute = ColourRoute(tiers=list(TIER_ORDER), ack_deadline_s=300)
    red: ColourRoute = ColourRoute(tiers=list(TIER_ORDER), ack_deadline_s=120)
    health_summary_interval_s: Annotated[float, Field(gt=0)] = 60.0

    def route(self, colour: Colour) -> ColourRoute:
        if colour is Colour.GREEN:
            return ColourRoute(tiers=[Tier.STREET], ack_deadline_s=3600)
        route: ColourRoute = getattr(self, colour.value)
        return route


class ControllerConfig(_Section):
    mqtt: MqttConfig = MqttConfig()
    http: HttpConfig = HttpConfig()
    storage: StorageConfig = StorageConfig()
    health: HealthConfig = HealthConfig()
    forwarding: ForwardingConfig = ForwardingConfig()
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()
    broker: BrokerConfig = BrokerConfig()
    gaps: GapsConfig = GapsConfig()
    gateways: list[GatewayConfig] = []
    centers: list[CenterConfig] = []
    risk_points: list[RiskPointConfig] = []
    alert_routing: AlertRoutingConfig = AlertRoutingConfig()
    map: MapConfig = MapConfig()
    notify: NotifyConfig = NotifyConfig()

    @_model_validator(mode="after")
    def _unique_names(self) -> ControllerConfig:
        for key, names in (
            ("gateways", [g.id for g in self.gateways]),
            ("centers", [c.name for c in self.centers]),
            ("risk_points", [p.id for p in self.risk_points]),
        ):
            seen: set[str] = set()
            for index, name in enumerate(names):
                if name in seen:
                    field = "name" if key == "centers" else "id"
                    raise ValueError(f"{key}[{index}].{field}: {name!r} is configured twice")
                seen.add(name)
        return self

    def gateway_places(self) -> dict[str, str]:
        return {g.id: g.place for g in self.gateways}

    def gateway_locations(self) -> dict[str, tuple[float, float]]:
        return {
            g.id: (g.lon, g.lat) for g in self.gateways if g.lon is not None and g.lat is not None
        }


# What a person calls the values a pattern accepts, for errors.
PATTERN_NAMES = {
    PLACE_PATTERN: "a place path like 'cq/yuzhong/jiefangbei' (lower-case, 1 to 5 levels)",
}


def format_errors(exc: ValidationError, data: Any = None) -> list[str]:
    """One line per error, as agent.toml's: ``mqtt.hots: unknown key (did you mean 'host'?)``."""
    return problems(exc, ControllerConfig, data, patterns=PATTERN_NAMES)


def parse_config(data: dict[str, Any], *, base_dir: Path | None = None) -> ControllerConfig:
    """Validate ``data`` (parsed TOML); relative storage paths are resolved from ``base_dir``."""
    try:
        config = ControllerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(format_errors(exc, data))) from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    return config


def _resolve_paths(config: ControllerConfig, base_dir: Path) -> ControllerConfig:
    """Relative file paths in the config are relative to the config file's folder."""

    def resolve(path: Path | None) -> Path | None:
        return path if path is None or path.is_absolute() else base_dir / path

    storage = StorageConfig(path=resolve(config.storage.path) or config.storage.path)
    http = config.http.model_copy(
        update={
            name: resolve(getattr(config.http, name)) for name in ("tls_cert_file", "tls_key_file")
        }
    )
    mqtt = config.mqtt.model_copy(
        update={
            name: resolve(getattr(config.mqtt, name))
            for name in ("tls_ca_file", "tls_cert_file", "tls_key_file")
        }
    )
    broker = config.broker.model_copy(
        update={
            name: resolve(getattr(config.broker, name))
            for name in ("password_file", "acl_file", "reload_pid_file")
        }
    )
    notify = config.notify.model_copy(
        update={"link_secret_file": resolve(config.notify.link_secret_file)}
    )
    return config.model_copy(
        update={"storage": storage, "http": http, "mqtt": mqtt, "broker": broker, "notify": notify}
    )


def load_config(path: Path) -> ControllerConfig:
    """Read and validate a TOML config file, or raise ConfigError naming the file and keys."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(data, base_dir=path.parent)
    except ConfigError as exc:
        problems = str(exc).splitlines()
        raise ConfigError(f"{path}: " + "\n  ".join(["invalid config:", *problems])) from None
