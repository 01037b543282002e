"""An agent config for the devices a firmware-sim scenario serves (from its manifest).

Each Modbus device model the simulator plays has a register map (firmware_sim.models);
``MODEL_REGISTERS`` is how an installer would configure the agent for it, on the metric names
the risk presets use (``level_cm``, ``rain_mm`` as a tip counter, whose increment the agent
reports as ``rain_mm_increment``, and ``displacement_mm``). Devices of other models, and
buses of other protocols, are left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgewatch.system import GatewayTiming

MODEL_REGISTERS: dict[str, list[dict[str, Any]]] = {
    "water_level": [
        {"metric": "level_cm", "address": 0, "type": "u16", "scale": 0.1, "unit": "cm"},
    ],
    "rain_gauge": [
        {"metric": "rain_mm", "address": 0, "kind": "counter", "scale": 0.2, "unit": "mm"},
    ],
    "slope_displacement": [
        {
            "metric": "displacement_mm",
            "address": 0x100,
            "type": "f32",
            "word_order": "CDAB",
            "unit": "mm",
            "valid_max": 5000.0,
        },
    ],
}
MODBUS_PROTOCOLS = {"modbus_rtu": "rtu", "modbus_ascii": "ascii"}


def _table(header: str, fields: Mapping[str, Any]) -> str:
    """One TOML table; JSON strings, numbers and booleans are TOML values too."""
    return "\n".join([header, *(f"{k} = {json.dumps(v)}" for k, v in fields.items())]) + "\n"


def scenario_agent_config(
    gateway_id: str,
    mqtt_port: int,
    data_dir: Path,
    manifest_devices: Sequence[Mapping[str, Any]],
    timing: GatewayTiming,
) -> str:
    served = [
        d
        for d in manifest_devices
        if d["protocol"] in MODBUS_PROTOCOLS and d["model"] in MODEL_REGISTERS
    ]
    sections = [
        _table(
            "[gateway]",
            {
                "id": gateway_id,
                "data_dir": str(data_dir),
                "heartbeat_interval_s": timing.heartbeat_interval_s,
            },
        ),
        _table(
            "[mqtt]", {"host": "127.0.0.1", "port": mqtt_port, "keepalive_s": timing.keepalive_s}
        ),
    ]
    for bus in dict.fromkeys(d["bus"] for d in served):
        first = next(d for d in served if d["bus"] == bus)
        sections.append(
            _table(
                "[[ports]]",
                {
                    "name": bus,
                    "url": first["pty"],
                    "baud": first["baud"],
                    "parity": first["parity"],
                    "stopbits": first.get("stopbits", 1),
                    "bytesize": first.get("bytesize", 8),
                    "timeout_s": 0.3,
                },
            )
        )
    for device in served:
        sections.append(
            _table(
                "[[devices]]",
                {
                    "name": device["name"],
                    "driver": "modbus_rtu",
                    "port": device["bus"],
                    "slave": device["slave"],
                    "mode": MODBUS_PROTOCOLS[device["protocol"]],
                    "interval_s": timing.poll_interval_s,
                },
            )
        )
        sections.extend(
            _table("[[devices.registers]]", register)
            for register in MODEL_REGISTERS[device["model"]]
        )
    return "\n".join(sections)
