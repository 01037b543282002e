"""An agent config for the devices a firmware-sim scenario serves (from its manifest).

Each Modbus device model the simulator plays has a register map (firmware_sim.models);
``MODEL_REGISTERS`` is how an installer would configure the agent for it, on the metric names
the risk presets use (``level_cm``, ``rain_mm`` as a tip counter, whose increment the agent
reports as ``rain_mm_increment``, and ``displacement_mm``). Devices of other models, and
buses of other protocols, are left out.

Stations that push (firmware_sim.stations) get a ``[[listeners]]`` entry: one TCP listener
per protocol on the port given in ``listener_ports`` (the port their ``--connect`` dials),
or one serial listener per station served on a pty; ``STATION_MAPS`` is how an installer
maps each station model's elements / factors to metrics.
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

# Station model -> its [[devices]] keys beyond name, port, station/MN and password.
STATION_MAPS: dict[str, dict[str, Any]] = {
    "sl651_river": {
        "elements": [
            {"element": "Z", "metric": "level_m", "unit": "m"},
            {"element": "PT", "metric": "rain_total_mm", "unit": "mm", "counter": True},
            {"element": "PJ", "metric": "rain_mm", "unit": "mm"},
            {"element": "VT", "metric": "supply_v", "unit": "V"},
        ],
    },
    "sl651_rain": {
        "elements": [
            {"element": "PJ", "metric": "rain_mm", "unit": "mm"},
            {"element": "P1", "metric": "rain_1h_mm", "unit": "mm"},
            {"element": "PT", "metric": "rain_total_mm", "unit": "mm", "counter": True},
            {"element": "VT", "metric": "supply_v", "unit": "V"},
        ],
    },
    "hj212_air": {
        "data_commands": ["2011"],
        "factors": [
            {"factor": "a34004", "metric": "pm25_ug_m3", "unit": "ug/m3"},
            {"factor": "a34002", "metric": "pm10_ug_m3", "unit": "ug/m3"},
            {"factor": "a21026", "metric": "so2_mg_m3", "unit": "mg/m3"},
            {"factor": "a01001", "metric": "air_temp_c", "unit": "C"},
        ],
    },
    "hj212_water": {
        "data_commands": ["2061"],
        "factors": [
            {"factor": "w01001", "field": "Avg", "metric": "ph"},
            {"factor": "w01009", "field": "Avg", "metric": "do_mg_l", "unit": "mg/L"},
            {"factor": "w01010", "field": "Avg", "metric": "water_temp_c", "unit": "C"},
            {"factor": "w21003", "field": "Avg", "metric": "nh3n_mg_l", "unit": "mg/L"},
        ],
    },
}


def _table(header: str, fields: Mapping[str, Any]) -> str:
    """One TOML table; JSON strings, numbers and booleans are TOML values too."""
    return "\n".join([header, *(f"{k} = {json.dumps(v)}" for k, v in fields.items())]) + "\n"


def scenario_agent_config(
    gateway_id: str,
    mqtt_port: int,
    data_dir: Path,
    manifest_devices: Sequence[Mapping[str, Any]],
    timing: GatewayTiming,
    *,
    listener_ports: Mapping[str, int] | None = None,
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
    stations = [d for d in manifest_devices if d.get("station") and d["model"] in STATION_MAPS]
    sections += station_sections(stations, listener_ports or {})
    return "\n".join(sections)


def primary_metric(model: str) -> str:
    """The metric a station model is there for: its first element's or factor's."""
    mapping = STATION_MAPS[model]
    entries = mapping.get("elements") or mapping["factors"]
    return str(entries[0]["metric"])


def station_sections(
    stations: Sequence[Mapping[str, Any]], listener_ports: Mapping[str, int]
) -> list[str]:
    """``[[listeners]]`` and ``[[devices]]`` tables for the pushing stations of a manifest."""
    sections: list[str] = []
    for protocol in dict.fromkeys(s["protocol"] for s in stations if s["transport"] == "tcp"):
        if protocol not in listener_ports:
            raise ValueError(f"{protocol} stations dial in over TCP: give its listener port")
        listener = {"name": f"{protocol}-tcp", "protocol": protocol, "host": "127.0.0.1"}
        listener |= {"port": listener_ports[protocol], "keep_online": protocol == "sl651"}
        sections.append(_table("[[listeners]]", listener))
    for station in stations:
        port = f"{station['protocol']}-tcp"
        if station["transport"] == "pty":
            port = f"line-{station['name']}"
            line = {"name": port, "protocol": station["protocol"], "kind": "serial"}
            sections.append(_table("[[listeners]]", line | {"url": station["pty"]}))
        mapping = STATION_MAPS[station["model"]]
        key = "station" if station["protocol"] == "sl651" else "mn"
        device = {
            "name": station["name"],
            "driver": station["protocol"],
            "port": port,
            key: station["station"],
            "password": station["password"],
            "interval_s": station.get("period_s") or 300.0,
        }
        device |= {k: v for k, v in mapping.items() if k not in ("elements", "factors")}
        sections.append(_table("[[devices]]", device))
        table = "elements" if "elements" in mapping else "factors"
        sections.extend(_table(f"[[devices.{table}]]", entry) for entry in mapping[table])
    return sections
