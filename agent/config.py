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

import difflib
import hashlib
import json
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivers.base import DeviceConfig, InterFrameSilence
from drivers.registry import DRIVERS, parse_device_config
from wire import GatewayIdError, validate_gateway_id
from wire.risk import RuleSet

# The names of things in config travel in MQTT payloads (wire.payloads.Name).
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class ConfigError(ValueError):
    """The config cannot be used; the message names the file, the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(_Section):
    id: str
    data_dir: Path
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("id")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        try:
            return validate_gateway_id(value)
        except GatewayIdError as exc:
            raise ValueError(str(exc)) from None


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


class PortConfig(_Section):
    name: Name
    url: str = Field(min_length=1, description="a device path or a pyserial URL")
    baud: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: float = 1
    bytesize: Literal[5, 6, 7, 8] = 8
    timeout_s: float = Field(default=0.3, gt=0, le=30)
    # Modbus RTU: silence before each request (see drivers.base.InterFrameSilence).
    inter_frame_silence: InterFrameSilence = InterFrameSilence.MODBUS_STANDARD
    # A failing device's tries back off up to this; never minutes of blackout.
    backoff_max_s: float = Field(default=30.0, gt=0, le=30)

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError(f"stopbits must be 1, 1.5 or 2, got {value!r}")
        return value


class BufferConfig(_Section):
    """Limits and lanes of the store-and-forward buffer (docs/store-and-forward.md)."""

    # Acked readings stay this long so the controller can ask for a replay of a gap.
    acked_retention_s: float = Field(default=86_400.0, ge=0)
    # Bounds on the stored data; 0 means no bound. Eviction order: agent/eviction.py.
    max_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    max_age_s: float = Field(default=30 * 86_400.0, ge=0)
    # Rows appended within this window go on the live lane (`readings`), older on `backlog`.
    live_window_s: float = Field(default=10.0, gt=0, le=3600)
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
    devices: tuple[DeviceConfig, ...] = ()

    def port(self, name: str) -> PortConfig:
        return next(p for p in self.ports if p.name == name)

    def devices_on(self, port_name: str) -> list[DeviceConfig]:
        return [d for d in self.devices if d.port == port_name]

    @property
    def config_hash(self) -> str:
        """sha256 of the canonical (sorted, compact JSON) config, secrets left out."""
        data: dict[str, Any] = self.model_dump(mode="json", exclude={"mqtt": {"password"}})
        data["devices"] = [d.model_dump(mode="json") for d in self.devices]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


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
        raise ConfigError(_explain(exc, source, AgentConfig, body)) from None
    _check_unique([p.name for p in config.ports], "ports", source)
    devices = tuple(_parse_device(i, d, source) for i, d in enumerate(raw_devices))
    _check_unique([d.name for d in devices], "devices", source)
    known_ports = [p.name for p in config.ports]
    for i, device in enumerate(devices):
        if device.port not in known_ports:
            raise ConfigError(
                f"{source}: devices[{i}] ({device.name!r}).port: no [[ports]] entry named "
                f"{device.port!r}{_suggest(device.port, known_ports, 'defined ports')}"
            )
    gateway = config.gateway
    if base_dir is not None and not gateway.data_dir.is_absolute():
        gateway = gateway.model_copy(update={"data_dir": base_dir / gateway.data_dir})
    risk = _load_rules(config.risk, source, base_dir)
    return config.model_copy(update={"gateway": gateway, "devices": devices, "risk": risk})


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
        raise ConfigError(f"{source}: risk.rules_file: {path} is not a rule set: {exc}") from None
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
        hint = _suggest(str(driver), sorted(DRIVERS), "known drivers")
        raise ConfigError(f"{source}: {where}.driver: {what}{hint}")
    model = DRIVERS[driver].config_model
    # Unknown keys first, whatever order the driver's validators run in: a typo'd key
    # is the likeliest mistake, and "did you mean" is its fix.
    unknown = _unknown_key(model, raw)
    if unknown is not None:
        path = where + _format_loc(unknown, raw, leading_dot=True)
        allowed = sorted(_keys_at(model, unknown[:-1]))
        hint = _suggest(str(unknown[-1]), allowed, "allowed keys")
        raise ConfigError(f"{source}: {path}: unknown key{hint}")
    try:
        return parse_device_config(raw)
    except ValueError as exc:
        # The registry names the device; the cause says which key, which we can explain
        # with a "did you mean" against the driver's config model.
        cause = exc if isinstance(exc, ValidationError) else exc.__cause__
        if isinstance(cause, ValidationError):
            raise ConfigError(_explain(cause, source, model, raw, prefix=where)) from None
        raise ConfigError(f"{source}: {where}: {exc}") from None


def _check_unique(names: list[str], table: str, source: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(
                f"{source}: {table}[{i}].name: duplicate name {name!r} "
                f"(also {table}[{seen[name]}]); names must be unique"
            )
        seen[name] = i


def _suggest(given: str, choices: Sequence[str], label: str) -> str:
    close = difflib.get_close_matches(given, list(choices), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({label}: {', '.join(repr(c) for c in choices) or 'none'})"


# --- turning a pydantic error into one line --------------------------------------------

_PRIORITY = {"extra_forbidden": 0, "missing": 2}
_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "true or false",
    "dict": "a table",
    "model": "a table",
    "list": "an array",
    "tuple": "an array",
}


def _explain(
    exc: ValidationError,
    source: str,
    model: type[BaseModel],
    raw: Any,
    prefix: str = "",
) -> str:
    # A typo'd key shows as "unknown key" plus "missing" for the key it meant: report the
    # unknown key (it carries the fix) and do not count the missing one as another error.
    errors = sorted(exc.errors(), key=lambda e: _PRIORITY.get(e["type"], 1))
    error = errors[0]
    loc = tuple(error["loc"])
    path = prefix + _format_loc(loc, raw, leading_dot=bool(prefix))
    kind = error["type"]
    given = error.get("input")
    others = len(errors) - 1
    if kind == "extra_forbidden":
        allowed = sorted(_keys_at(model, loc[:-1]))
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            text = f"unknown key (did you mean {close[0]!r}?)"
            meant = (*loc[:-1], close[0])
            others -= sum(1 for e in errors if e["type"] == "missing" and tuple(e["loc"]) == meant)
        else:
            text = f"unknown key (allowed keys: {', '.join(allowed) or 'none'})"
    elif kind == "missing":
        text = "missing required key"
    elif kind.split("_")[0] in _EXPECTED and kind.endswith(("_type", "_parsing")):
        text = f"expected {_EXPECTED[kind.split('_')[0]]}, got {given!r}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        text = f"{message}, got {given!r}" if kind != "value_error" else message
    tail = f" (and {others} more error{'s' if others > 1 else ''})" if others > 0 else ""
    return f"{source}: {path or '(top level)'}: {text}{tail}"


def _format_loc(loc: tuple[Any, ...], raw: Any, *, leading_dot: bool) -> str:
    """('devices', 0, 'registers', 1, 'adress') -> "devices[0] ('gauge-1').registers[1].adress"."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                parts.append(f" ({node['name']!r})")
        else:
            parts.append(f".{item}" if parts or leading_dot else str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _unknown_key(
    model: type[BaseModel], raw: Any, loc: tuple[Any, ...] = ()
) -> tuple[Any, ...] | None:
    """The location of the first key in ``raw`` that ``model`` (or a table below) refuses."""
    annotation = _unwrap(_annotation_at(model, loc))
    if isinstance(raw, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        allowed = _accepted_keys(annotation)
        for key, value in raw.items():
            if annotation.model_config.get("extra") == "forbid" and key not in allowed:
                return (*loc, key)
            found = _unknown_key(model, value, (*loc, key))
            if found is not None:
                return found
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            found = _unknown_key(model, item, (*loc, i))
            if found is not None:
                return found
    return None


def _accepted_keys(model: type[BaseModel]) -> set[str]:
    """The keys a table of ``model`` takes (a field's alias when it has one)."""
    return {field.alias or name for name, field in model.model_fields.items()}


def _annotation_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The type expected at ``loc`` below ``model`` (None when unknown)."""
    annotation: Any = model
    for item in loc:
        annotation = _unwrap(annotation)
        if isinstance(item, int):
            args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
            annotation = args[0] if args else None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {f.alias or name: f for name, f in annotation.model_fields.items()}
            field = fields.get(item)
            annotation = field.annotation if field else None
        else:
            return None
    return annotation


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> set[str]:
    """The keys a table at ``loc`` below ``model`` accepts (empty when unknown)."""
    annotation = _unwrap(_annotation_at(model, loc))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _accepted_keys(annotation)
    return set()


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] (X | None) and Annotated[...] down to the type that has fields."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation
