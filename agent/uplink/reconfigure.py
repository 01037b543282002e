"""Applying a pushed config (``reload-config``), and choosing the config to start with.

A pushed config is the controller's JSON object of a full agent config. What the agent
does with it:

1. checks its hash (the controller's recipe: sha256 of canonical JSON) and validates it as
   agent.toml is validated, so an error names the key (``pushed config v3: devices[0]
   ('gauge-1').slave: ...``). What belongs to the gateway itself may be left out and is then
   kept: ``gateway.data_dir`` (the buffer stays where it is), ``[mqtt]`` (its broker and
   credentials) and ``[buffer]``. If given they must equal the running ones: those change
   with agent.toml and a restart, never remotely. The keys that read a file, dial a host or
   write to a field device (``wire.pushed_config``: ``risk.rules_file``, ``ports[].url``,
   ``devices[].trigger``, ``write_enable``, ``command``) are refused outright, whatever the
   controller checked: a port takes its url from the running port of the same name, a
   device its trigger, write-enable coil and command from the running device of the same
   name, slave and port;
2. an unchanged config (same hash) changes nothing;
3. otherwise rebuilds the port owners (ports and devices) and takes the new heartbeat
   interval; the buffer, the MQTT session and the commands go on. Local overrides win over
   the pushed values, and the result says which were kept;
4. watches a probation window (``[gateway] reload_probation_s``): if the new ports cannot
   start, or every device fails (or none answers) in that window, it rolls back to the
   config that ran before and reports why;
5. writes the applied document to ``data_dir`` as the last good config.

At start, the agent runs the last good pushed config instead of agent.toml as long as
agent.toml is the file it was pushed over; a technician's edit of agent.toml wins.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.bus.poller import DeviceState
from agent.bus.ports import PortOwner
from agent.config import AgentConfig, ConfigError, canonical_json, config_from_dict
from agent.local_state import LastGood, Overrides, load_last_good, save_last_good
from wire.pushed_config import DEVICE_KEYS, gateway_owned_keys
from wire.pushed_config import refusal as owned_key_refusal

log = logging.getLogger(__name__)

PROBATION_CHECK_S = 0.05


def controller_hash(document: Mapping[str, Any]) -> str:
    """The controller's hash of a desired config (``controller.fleet.configs.config_hash``)."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def merge_pushed(
    running: AgentConfig, pushed: Mapping[str, Any], *, source: str, base_dir: Path | None
) -> AgentConfig:
    """Validate ``pushed`` for this gateway, filling in what is the gateway's own; the
    result's document (and so its hash) is ``pushed`` as the controller sent it."""
    owned = gateway_owned_keys(pushed)
    if owned:
        raise ConfigError(f"{source}: {owned_key_refusal(owned[0])}")
    filled: dict[str, Any] = copy.deepcopy(dict(pushed))
    gateway = filled.setdefault("gateway", {})
    if not isinstance(gateway, dict):
        raise ConfigError(f"{source}: gateway: expected a table")
    _fill_gateway_owned(running, filled, source)
    gateway.setdefault("id", running.gateway.id)
    gateway.setdefault("data_dir", str(running.gateway.data_dir))
    filled.setdefault("buffer", running.buffer.model_dump(mode="json"))
    mqtt = filled.setdefault("mqtt", running.mqtt.model_dump(mode="json", exclude_none=True))
    if isinstance(mqtt, dict) and running.mqtt.password is not None:
        mqtt.setdefault("password", running.mqtt.password)
    config = config_from_dict(filled, source=source, base_dir=base_dir)
    config._document = copy.deepcopy(dict(pushed))
    if config.gateway.id != running.gateway.id:
        raise ConfigError(
            f"{source}: gateway.id: this gateway is {running.gateway.id!r},"
            f" the config is for {config.gateway.id!r}"
        )
    if config.gateway.data_dir.resolve() != running.gateway.data_dir.resolve():
        raise ConfigError(
            f"{source}: gateway.data_dir: the buffer stays in {running.gateway.data_dir};"
            " a pushed config cannot move it (leave the key out)"
        )
    for section in ("mqtt", "buffer"):
        new, old = getattr(config, section), getattr(running, section)
        if new != old:
            changed = sorted(
                k for k in type(new).model_fields if getattr(new, k) != getattr(old, k)
            )
            raise ConfigError(
                f"{source}: {section}.{changed[0]}: differs from the running config;"
                f" [{section}] is changed in agent.toml on the gateway and a restart,"
                " not by a push (leave the table out to keep it)"
            )
    return config


def _fill_gateway_owned(running: AgentConfig, filled: dict[str, Any], source: str) -> None:
    """Put the running config's gateway-owned values into a pushed document that has none:
    ports' urls by port name, devices' trigger, write-enable coil and command by device (same
    name, driver, port and slave or address), and the rules file."""
    if running.risk.rules_file is not None:
        risk = filled.setdefault("risk", {})
        if isinstance(risk, dict):
            risk["rules_file"] = str(running.risk.rules_file)
    local_ports = {p.name: p for p in running.ports}
    for index, port in enumerate(_tables(filled.get("ports"))):
        local_port = local_ports.get(str(port.get("name")))
        if local_port is None:
            raise ConfigError(
                f"{source}: ports[{index}] ({port.get('name')!r}).url: this gateway's"
                " agent.toml has no port of that name: a new port is added there, not by a push"
            )
        port["url"] = local_port.url
    local_devices = {d.name: d.model_dump(mode="json") for d in running.devices}
    for index, device in enumerate(_tables(filled.get("devices"))):
        local = local_devices.get(str(device.get("name")), {})
        owned = {key: local[key] for key in DEVICE_KEYS if local.get(key) is not None}
        if not owned:
            continue
        for key in ("driver", "port", "slave", "address"):
            if device.get(key, local.get(key)) != local.get(key):
                raise ConfigError(
                    f"{source}: devices[{index}] ({device.get('name')!r}).{key}: differs from"
                    f" the running device, whose {', '.join(sorted(owned))} agent.toml sets"
                    " for that device only: change it in agent.toml, not by a push"
                )
        device.update(owned)


def _tables(value: Any) -> list[dict[str, Any]]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def startup_config(
    file_config: AgentConfig, *, base_dir: Path | None
) -> tuple[AgentConfig, int | None]:
    """The config to start with, and its pushed version (None: agent.toml's own)."""
    last = load_last_good(file_config.gateway.data_dir)
    if last is None or last.version is None or last.base_hash != file_config.config_hash:
        return file_config, None
    if last.hash == file_config.config_hash:
        return file_config, last.version
    try:
        config = merge_pushed(
            file_config, last.config, source=f"last good config v{last.version}", base_dir=base_dir
        )
    except ConfigError as exc:
        log.error("cannot use the last good pushed config, using agent.toml: %s", exc)
        return file_config, None
    log.info("running pushed config v%d (%s) over agent.toml", last.version, last.hash[:12])
    return config, last.version


def remember(config: AgentConfig, *, version: int | None, base_hash: str, now_ms: int) -> None:
    """Write ``config``'s document as the last good config (atomically), password left out."""
    document = copy.deepcopy(config.document or {})
    mqtt = document.get("mqtt")
    if isinstance(mqtt, dict):
        mqtt.pop("password", None)
    save_last_good(
        config.gateway.data_dir,
        LastGood(
            hash=config.config_hash,
            version=version,
            base_hash=base_hash,
            applied_ms=now_ms,
            config=document,
        ),
    )


def override_conflicts(config: AgentConfig, overrides: Overrides) -> list[str]:
    """Local overrides that win over a value of ``config``, as sentences for the result."""
    kept = []
    for device in config.devices:
        interval_s = overrides.interval_s(device.name)
        if interval_s is not None and interval_s != device.interval_s:
            kept.append(
                f"{device.name}.interval_s: kept the local override {interval_s:g} s"
                f" (the config says {device.interval_s:g} s)"
            )
    return kept


def probation(
    owners: Sequence[PortOwner], window_s: float, stopping: threading.Event
) -> str | None:
    """Watch new port owners for ``window_s``: None once a device answers (or there is none
    to watch), else why the config failed: every device failing, or none answering."""
    pollers = [p for owner in owners for p in owner.pollers]
    deadline_s = time.monotonic() + window_s
    while pollers and not stopping.is_set():
        if any(p.health().reads_ok > 0 for p in pollers):
            return None
        if all(p.state() is DeviceState.FAILING for p in pollers) or time.monotonic() >= deadline_s:
            errors = "; ".join(f"{p.name}: {p.health().last_error or 'no answer'}" for p in pollers)
            verdict = (
                f"all {len(pollers)} devices failed"
                if all(p.state() is DeviceState.FAILING for p in pollers)
                else f"no device answered within {window_s:g} s"
            )
            return f"{verdict} ({errors})"
        stopping.wait(PROBATION_CHECK_S)
    return None
