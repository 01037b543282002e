"""``firmware_sim.cli``: a real process serving ptys, a manifest, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from edgewatch.waiting import wait_until
from firmware_sim import modbus
from firmware_sim.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_run_in_process_for_some_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest_path = tmp_path / "run" / "manifest.json"
    assert (
        main(["run", "--devices", "2", "--seconds", "0.05", "--manifest", str(manifest_path)]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("gauge-1  model=water_level  pty=/dev/pts/")
    assert lines[2].startswith("control: /tmp/ewsim-")
    assert "slave=1  baud=9600" in lines[0]
    devices = json.loads(manifest_path.read_text())["devices"]
    assert [(d["name"], d["slave"], d["bus"]) for d in devices] == [
        ("gauge-1", 1, "bus1"),
        ("gauge-2", 2, "bus1"),
    ]
    assert devices[0]["pty"] == devices[1]["pty"]
    assert set(devices[0]) == {
        "name",
        "model",
        "bus",
        "pty",
        "slave",
        "baud",
        "parity",
        "protocol",
        "control",
        "rfc2217",
        "stopbits",
        "bytesize",
    }
    assert devices[0]["rfc2217"].startswith("rfc2217://127.0.0.1:")
    assert f"rfc2217={devices[0]['rfc2217']}" in lines[0]
    assert not [p for p in manifest_path.parent.iterdir() if p.name != "manifest.json"]


def test_refuses_too_many_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--devices", "300", "--seconds", "0"]) == 2
    assert "1-247" in capsys.readouterr().err


def test_serves_until_sigterm(tmp_path: Path) -> None:
    manifest_path = tmp_path / "manifest.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "firmware-sim")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim.cli", "run", "--manifest", str(manifest_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(manifest_path.exists, timeout_s=10, message="the manifest")
        (device,) = json.loads(manifest_path.read_text())["devices"]
        assert device == {
            "name": "gauge-1",
            "model": "water_level",
            "bus": "bus1",
            "pty": device["pty"],
            "slave": 1,
            "baud": 9600,
            "parity": "N",
            "protocol": "modbus_rtu",
            "control": device["control"],
            "rfc2217": device["rfc2217"],
            "stopbits": 1,
            "bytesize": 8,
        }
        with serial.Serial(device["pty"], 9600, timeout=2.0) as port:
            port.write(modbus.read_request(1, 3, 2, 1))
            assert port.read(7) == modbus.read_response(1, 3, [0x0102])
            # Faults switched from outside the simulator's process.
            control = ["--control", device["control"], "--device", "gauge-1"]
            assert main(["fault", *control, "--silent"]) == 0
            port.timeout = 0.2
            port.write(modbus.read_request(1, 3, 2, 1))
            assert port.read(7) == b""
            assert main(["fault", *control, "--clear"]) == 0
            port.write(modbus.read_request(1, 3, 2, 1))
            assert port.read(7) == modbus.read_response(1, 3, [0x0102])
            assert main(["reboot", *control]) == 0
            assert main(["reboot", "--control", device["control"], "--device", "nope"]) == 1
            # A value held from outside, as bench.alert_latency does, then released.
            assert main(["set", *control, "level=4321"]) == 0
            port.write(modbus.read_request(1, 3, 0, 1))
            assert port.read(7) == modbus.read_response(1, 3, [4321])
            assert main(["set", *control, "--release"]) == 0
            port.write(modbus.read_request(1, 3, 0, 1))
            assert port.read(7) != modbus.read_response(1, 3, [4321])
            assert main(["set", *control, "depth=1"]) == 1  # the simulator's refusal
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert device["pty"] in stdout


def test_rainstorm_with_a_time_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest_path = tmp_path / "manifest.json"
    argv = ["run", "--scenario", "rainstorm", "--time-scale", "600", "--seconds", "0.05"]
    assert main([*argv, "--manifest", str(manifest_path), "--control", str(tmp_path / "c")]) == 0
    devices = json.loads(manifest_path.read_text())["devices"]
    assert [(d["name"], d["model"], d["bus"], d["protocol"]) for d in devices] == [
        ("river-1", "water_level", "bus1", "modbus_rtu"),
        ("rain-1", "rain_gauge", "bus1", "modbus_rtu"),
        ("slope-1", "slope_displacement", "bus1", "modbus_rtu"),
        ("gas-1", "gas_detector", "line1", "sentences"),
    ]
    assert {d["control"] for d in devices} == {str(tmp_path / "c")}
    assert devices[0]["pty"] != devices[3]["pty"]
    assert "gas-1  model=gas_detector" in capsys.readouterr().out


def test_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--scenario", "nope", "--seconds", "0"]) == 2
    assert "no scenario 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "values", [[], ["level=1", "--release"], ["level"], ["level=x"], ["level=65536"], ["=1"]]
)
def test_set_refuses_arguments_it_cannot_send(
    values: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["set", "--control", "/nonexistent.sock", "--device", "gauge-1", *values]
    try:
        code = main(argv)
    except SystemExit as exited:  # argparse's own refusals
        code = int(exited.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert "REGISTER=RAW" in err
