"""The agent's TOML config, validated once at start into frozen pydantic models.

Every error is one line that names the file, the key path and, where we can guess it, the
fix: ``agent.toml: devices[0] ('gauge-1').registers[0].adress: unknown key (did you mean
'address'?)``. Device tables are validated by the config model of their driver, looked
up in ``drivers.registry``; the agent only checks what crosses devices (unique names,
ports that exist).

Relative paths (``gateway.data_dir``) are taken relative to the config file's folder, so
a config works the same whatever the working directory of the service is.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from drivers.base import DeviceConfig, InterFrameSilence
from drivers.registry import DRIVERS, parse_device_config
from wire import ValidGatewayId
from wire.risk import RuleSet
from wire.validation import explain, format_loc, keys_at, suggest, unknown_key

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# The names of things in config travel in MQTT payloads (wire.payloads.Name).
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class ConfigError(ValueError):
    """The config cannot be used; the message names the file, the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(_Section):
    id: ValidGatewayId
    data_dir: Path
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=3600)
    # reload-config: a pushed config whose devices all fail within this window is rolled back.
    reload_probation_s: float = Field(default=30.0, gt=0, le=600)


class MqttConfig(_Section):
    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    keepalive_s: int = Field(default=5, ge=1, le=3600)
    username: str | None = None
    password: str | None = None
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    # Capped backoff between connection attempts: never minutes of blackout.
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(default=10.0, gt=0, le=300)
    # TLS to the broker: its CA; a client certificate and key optionally (both or neither).
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Skip the broker's host name check (the chain is still verified): loopback only.
    tls_insecure: bool = False

    @model_validator(mode="after")
    def _tls(self) -> MqttConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("mqtt.tls_cert_file and mqtt.tls_key_file go together: set both")
        if self.tls_cert_file is not None and self.tls_ca_file is None:
            raise ValueError("mqtt.tls_cert_file needs mqtt.tls_ca_file (the broker's CA)")
        if self.tls_insecure and self.tls_ca_file is None:
            raise ValueError("mqtt.tls_insecure needs mqtt.tls_ca_file (it only relaxes TLS)")
        if self.tls_insecure and self.host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"mqtt.tls_insecure skips the broker's name check: refused for {self.host!r}"
                " (allowed only for a loopback broker, as in tests)"
            )
        return self

    @property
    def tls_files(self) -> dict[str, Path]:
        named = {
            "tls_ca_file": self.tls_ca_file,
            "tls_cert_file": self.tls_cert_file,
            "tls_key_file": self.tls_key_file,
        }
        return {key: path for key, path in named.items() if path is not None}


class SerialSettings(_Section):
    """A serial line's settings: of a polled bus ([[ports]]) or a station line ([[listeners]])."""

    baud: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: float = 1
    bytesize: Literal[5, 6, 7, 8] = 8

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError(f"stopbits must be 1, 1.5 or 2, got {value!r}")
        return value


class PortConfig(SerialSettings):
    name: Name
    url: str = Field(min_length=1, description="a device path or a pyserial URL")
    timeout_s: float = Field(default=0.3, gt=0, le=30)
    # Modbus RTU: silence before each request (see drivers.base.InterFrameSilence).
    inter_frame_silence: InterFrameSilence = InterFrameSilence.MODBUS_STANDARD
    # A failing device's tries back off up to this; never minutes of blackout.
    backoff_max_s: float = Field(default=30.0, gt=0, le=30)


STATION_PROTOCOLS = ("sl651", "hj212")  # the station drivers a listener speaks
# One frame at most, per protocol: SL651's 12-bit length plus its header; HJ212's standard
# bound on the data segment.
MAX_FRAME_BYTES = {"sl651": 4120, "hj212": 1024}


class ListenerConfig(SerialSettings):
    """Where stations that push (SL651, HJ212) reach the gateway: a TCP port they dial in
    to, or a serial line they are wired to. Every number is bounded: a listener is open to
    the field, and nothing one station does may blind the gateway to the others."""

    name: Name
    protocol: Literal["sl651", "hj212"]
    kind: Literal["tcp", "serial"] = "tcp"
    # tcp
    host: str = Field(default="0.0.0.0", min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=0, le=65535, description="0: any free port")
    max_connections: int = Field(default=1000, ge=1, le=20_000)
    # serial: the line (its settings, as for [[ports]], come from SerialSettings)
    url: str | None = Field(default=None, min_length=1)
    # the protocol
    centre: int = Field(default=1, ge=1, le=255, description="SL651: our centre address")
    keep_online: bool = Field(
        default=False, description="SL651: answer ESC (stations stay online), not EOT"
    )
    max_frame_bytes: int | None = Field(default=None, ge=64, le=65_536)
    idle_timeout_s: float = Field(default=3900.0, gt=0, le=86_400)
    bad_frames_per_min: int = Field(default=600, ge=1, le=100_000)

    @model_validator(mode="after")
    def _kind(self) -> ListenerConfig:
        where = f"listener {self.name!r}"
        if self.kind == "tcp" and self.port is None:
            raise ValueError(f"{where}: a tcp listener needs port (0: any free port)")
        if self.kind == "tcp" and self.url is not None:
            raise ValueError(f'{where}: url is for a serial listener (kind = "serial")')
        if self.kind == "serial" and self.url is None:
            raise ValueError(f"{where}: a serial listener needs url (the line: /dev/ttyS1)")
        if self.kind == "serial" and self.port is not None:
            raise ValueError(f"{where}: port is for a tcp listener; a serial line has url")
        return self

    @property
    def frame_bytes(self) -> int:
        return self.max_frame_bytes or MAX_FRAME_BYTES[self.protocol]

    def describe(self) -> str:
        if self.kind == "serial":
            return f"listener {self.name!r} ({self.protocol} on {self.url})"
        return f"listener {self.name!r} ({self.protocol} on {self.host}:{self.port})"


class BufferConfig(_Section):
    """Limits and lanes of the store-and-forward buffer (docs/store-and-forward.md)."""

    # Acked readings stay this long so the controller can ask for a replay of a gap.
    acked_retention_s: float = Field(default=86_400.0, ge=0)
    # Bounds on the stored data; 0 means no bound. Eviction order: agent/buffer/eviction.py.
    max_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    max_age_s: float = Field(default=30 * 86_400.0, ge=0)
    # Rows appended within this window go on the live lane (`readings`), older on `backlog`.
    live_window_s: float = Field(default=10.0, gt=0, le=3600)
    # The longest a live batch is held for more reads, and it is held only while a port
    # owner has a read due to be stored before then (agent/bus/outlook.py): a lone reading
    # goes at once. The latency a live reading may gain, traded for the gateway's CPU
    # (fewer messages, PUBACKs and ack commits). 0 publishes every read as soon as it is
    # stored. Alerts never wait.
    live_linger_s: float = Field(default=0.05, ge=0, le=5)
    # Backlog readings per second at most (0: no cap); live readings and alerts go first.
    backlog_max_readings_per_s: float = Field(default=5000.0, ge=0)
    # Readings held in memory while the buffer file cannot be written (disk full).
    memory_queue_max_readings: int = Field(default=10_000, ge=0)
    # Publish readings only while the controller's retained status says online.
    hold_while_controller_offline: bool = True


class RiskConfig(_Section):
    """Edge alerts: the controller's rules for this gateway (``GET /api/v1/risk-rules?
    gateway=<id>``, a wire.risk.RuleSet as JSON), evaluated on every reading."""

    rules_file: Path | None = None
    rules: RuleSet = RuleSet()


class AgentConfig(_Section):
    gateway: GatewayConfig
    mqtt: MqttConfig
    buffer: BufferConfig = BufferConfig()
    risk: RiskConfig = RiskConfig()
    ports: tuple[PortConfig, ...] = ()
    listeners: tuple[ListenerConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    # The document this config was validated from (TOML file or pushed JSON), as written.
    _document: dict[str, Any] | None = PrivateAttr(default=None)
    # (the document it was computed from, its hash): the heartbeat asks every few seconds,
    # and a gateway with 2,000 stations has a document of half a megabyte.
    _hash_of: tuple[object, str] | None = PrivateAttr(default=None)

    @property
    def document(self) -> dict[str, Any] | None:
        return self._document

    def port(self, name: str) -> PortConfig:
        return next(p for p in self.ports if p.name == name)

    def devices_on(self, port_name: str) -> list[DeviceConfig]:
        return [d for d in self.devices if d.port == port_name]

    def listener(self, name: str) -> ListenerConfig:
        return next(listener for listener in self.listeners if listener.name == name)

    @property
    def config_hash(self) -> str:
        """sha256 of the canonical (sorted keys, compact JSON) document the config came
        from, ``mqtt.password`` left out: the controller's recipe for a desired config, so
        a pushed config shows as in sync once applied. A config built without a document
        hashes its validated model instead."""
        if self._document is not None:
            cached = self._hash_of
            if cached is not None and cached[0] is self._document:
                return cached[1]
            digest = document_hash(self._document)
            self._hash_of = (self._document, digest)
            return digest
        data: dict[str, Any] = self.model_dump(mode="json", exclude={"mqtt": {"password"}})
        data["devices"] = [d.model_dump(mode="json") for d in self.devices]
        return document_hash(data)


def canonical_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)


def document_hash(document: Mapping[str, Any]) -> str:
    """sha256 of ``document`` in canonical JSON, without ``mqtt.password`` (a secret)."""
    data = dict(document)
    mqtt = data.get("mqtt")
    if isinstance(mqtt, dict) and "password" in mqtt:
        data["mqtt"] = {k: v for k, v in mqtt.items() if k != "password"}
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def load_config(path: Path) -> AgentConfig:
    """Read and validate the TOML file at ``path`` or raise ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    return parse_config(text, source=str(path), base_dir=path.parent)


def parse_config(
    text: str, *, source: str = "agent.toml", base_dir: Path | None = None
) -> AgentConfig:
    """Validate TOML ``text``; ``source`` names the file in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return config_from_dict(raw, source=source, base_dir=base_dir)


def config_from_dict(
    raw: Mapping[str, Any], *, source: str = "agent.toml", base_dir: Path | None = None
) -> AgentConfig:
    body = dict(raw)
    raw_devices = body.pop("devices", [])
    if not isinstance(raw_devices, list):
        raise ConfigError(f"{source}: devices: expected [[devices]] tables")
    try:
        config = AgentConfig.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(explain(exc, source, AgentConfig, body)) from None
    _check_unique([p.name for p in config.ports], "ports", source)
    _check_unique([p.name for p in config.listeners], "listeners", source)
    both = {p.name for p in config.ports} & {p.name for p in config.listeners}
    if both:
        raise ConfigError(
            f"{source}: {sorted(both)[0]!r} names both a [[ports]] and a [[listeners]] entry;"
            " names must be unique"
        )
    devices = tuple(_parse_device(i, d, source) for i, d in enumerate(raw_devices))
    _check_unique([d.name for d in devices], "devices", source)
    for i, device in enumerate(devices):
        _check_port(i, device, config, source)
    gateway, mqtt = config.gateway, config.mqtt
    if base_dir is not None:
        if not gateway.data_dir.is_absolute():
            gateway = gateway.model_copy(update={"data_dir": base_dir / gateway.data_dir})
        mqtt = mqtt.model_copy(
            update={k: base_dir / p for k, p in mqtt.tls_files.items() if not p.is_absolute()}
        )
    for key, path in mqtt.tls_files.items():
        if not path.is_file():
            raise ConfigError(f"{source}: mqtt.{key}: no such file {path}")
    risk = _load_rules(config.risk, source, base_dir)
    resolved = config.model_copy(
        update={"gateway": gateway, "mqtt": mqtt, "devices": devices, "risk": risk}
    )
    resolved._document = json.loads(canonical_json(raw))  # a deep, JSON-shaped copy
    return resolved


def _load_rules(risk: RiskConfig, source: str, base_dir: Path | None) -> RiskConfig:
    if risk.rules_file is None:
        return risk
    path = risk.rules_file
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        rules = RuleSet.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigError(
            f"{source}: risk.rules_file: cannot read {path}: {exc.strerror}"
        ) from None
    except ValidationError as exc:
        # Never a word of the file (pydantic quotes the input, and its keys name the place):
        # the error may travel in a command result.
        first = exc.errors(include_input=False, include_url=False)[0]
        raise ConfigError(
            f"{source}: risk.rules_file: {path} is not a rule set ({exc.error_count()}"
            f" errors; the first: {first['type']})"
        ) from None
    return RiskConfig(rules_file=path, rules=rules)


def _parse_device(index: int, raw: Any, source: str) -> DeviceConfig:
    where = f"devices[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where}: expected a table, got {raw!r}")
    if isinstance(raw.get("name"), str):
        where += f" ({raw['name']!r})"
    driver = raw.get("driver")
    if driver not in DRIVERS:
        what = "missing required key" if driver is None else f"unknown driver {driver!r}"
        hint = suggest(str(driver), sorted(DRIVERS), "known drivers")
        raise ConfigError(f"{source}: {where}.driver: {what}{hint}")
    model = DRIVERS[driver].config_model
    # Unknown keys first, whatever order the driver's validators run in: a typo'd key
    # is the likeliest mistake, and "did you mean" is its fix.
    unknown = unknown_key(model, raw)
    if unknown is not None:
        path = where + format_loc(unknown, raw, leading_dot=True)
        allowed = sorted(keys_at(model, unknown[:-1]))
        hint = suggest(str(unknown[-1]), allowed, "allowed keys")
        raise ConfigError(f"{source}: {path}: unknown key{hint}")
    try:
        return parse_device_config(raw)
    except ValueError as exc:
        # The registry names the device; the cause says which key, which we can explain
        # with a "did you mean" against the driver's config model.
        cause = exc if isinstance(exc, ValidationError) else exc.__cause__
        if isinstance(cause, ValidationError):
            raise ConfigError(explain(cause, source, model, raw, prefix=where)) from None
        raise ConfigError(f"{source}: {where}: {exc}") from None


def _check_port(index: int, device: DeviceConfig, config: AgentConfig, source: str) -> None:
    """A polled device names a [[ports]] entry; a station a [[listeners]] entry of its
    protocol."""
    where = f"{source}: devices[{index}] ({device.name!r}).port"
    if DRIVERS[device.driver].pushed:
        listeners = {listener.name: listener for listener in config.listeners}
        listener = listeners.get(device.port)
        if listener is None:
            hint = suggest(device.port, list(listeners), "defined listeners")
            raise ConfigError(
                f"{where}: {device.driver} stations push to a [[listeners]] entry; there is"
                f" none named {device.port!r}{hint}"
            )
        if listener.protocol != device.driver:
            raise ConfigError(
                f"{where}: listener {device.port!r} speaks {listener.protocol}, not {device.driver}"
            )
        return
    known_ports = [p.name for p in config.ports]
    if device.port not in known_ports:
        raise ConfigError(
            f"{where}: no [[ports]] entry named "
            f"{device.port!r}{suggest(device.port, known_ports, 'defined ports')}"
        )


def _check_unique(names: list[str], table: str, source: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(
                f"{source}: {table}[{i}].name: duplicate name {name!r} "
                f"(also {table}[{seen[name]}]); names must be unique"
            )
        seen[name] = i
