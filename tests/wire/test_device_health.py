"""DeviceHealth in the heartbeat: the optional ``registers`` keeps old payloads valid."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from wire import DeviceHealth, Health, decode, encode

OLD_HEARTBEAT = {
    "v": 1,
    "session": 1,
    "ts_ms": 1_700_000_000_000,
    "uptime_s": 5.0,
    "heartbeat_interval_s": 10.0,
    "buffer_rows": 0,
    "buffer_bytes": 0,
    "oldest_unsent_age_s": 0.0,
    "last_seq": 0,
    "devices": {"gauge-1": {"state": "ok", "reads_ok": 3, "errors": {"timeout": 0}}},
}


def test_a_heartbeat_from_before_registers_still_decodes() -> None:
    health = decode(Health, json.dumps(OLD_HEARTBEAT).encode())
    assert health.devices["gauge-1"].registers == {}


def test_registers_round_trip() -> None:
    device = DeviceHealth(state="ok", registers={"reboots": 4, "supply_v": 12.1})
    raw = {**OLD_HEARTBEAT, "devices": {"met-1": device.model_dump()}}
    health = decode(Health, encode(Health.model_validate(raw)))
    assert health.devices["met-1"].registers == {"reboots": 4.0, "supply_v": 12.1}


def test_registers_are_numbers() -> None:
    with pytest.raises(ValidationError):
        DeviceHealth.model_validate({"state": "ok", "registers": {"reboots": "many"}})


def test_a_device_without_health_registers_sends_no_registers_key() -> None:
    """A controller from before ``registers`` refuses unknown fields: only a device that
    has health registers sends the key."""
    plain = json.loads(encode(DeviceHealth(state="ok", reads_ok=3)))
    with_registers = json.loads(encode(DeviceHealth(state="ok", registers={"reboots": 2})))
    assert "registers" not in plain
    assert plain["reads_ok"] == 3
    assert with_registers["registers"] == {"reboots": 2.0}
    heartbeat = json.loads(encode(decode(Health, json.dumps(OLD_HEARTBEAT).encode())))
    assert heartbeat["devices"] == {
        "gauge-1": {
            "state": "ok",
            "reads_ok": 3,
            "reads_failed": 0,
            "consecutive_failures": 0,
            "errors": {"timeout": 0},
            "last_good_ms": None,
            "last_error": None,
        }
    }
