"""``edgewatch controller run``: refuses a bad config by name, runs until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import main
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import api, get_json

ROOT = Path(__file__).resolve().parents[2]


def test_bad_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[mqtt]\nhots = "127.0.0.1"\n'
        '[[centers]]\nname = "x"\ntier = "county"\nplace = "cq"\nurl = "http://h/i"\n'
    )
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "c.toml" in err
    # The same words as agent.toml's errors, with the fix for a typo.
    assert "mqtt.hots: unknown key (did you mean 'host'?)" in err
    assert (
        "centers[0] ('x').tier: Input should be 'city', 'district' or 'street', got 'county'" in err
    )


def test_run_serves_the_api_and_stops_on_sigterm(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = tmp_path / "controller.toml"
    path.write_text(
        f'[mqtt]\nport = {mosquitto.port}\n[http]\nport = 0\n[storage]\npath = "c.db"\n'
        '[api]\nauth = "demo"\n'
        '[[gateways]]\nid = "gw-1"\nplace = "cq/yuzhong"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "run", "--config", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "API at http://127.0.0.1:" in line, process.stderr.read() if process.stderr else ""
        url = line.split("API at ", 1)[1].split("/api/v1", 1)[0]
        with api(url) as client:
            wait_until(lambda: get_json(client, "/healthz")["mqtt_connected"], timeout_s=5)
            assert get_json(client, "/api/v1/gateways")[0]["id"] == "gw-1"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert (tmp_path / "c.db").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
