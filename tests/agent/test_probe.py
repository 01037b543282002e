"""`edgewatch agent probe` against a simulated bus with several slaves, one at another baud;
and as a technician runs it, a process against the simulator's process, at each parity."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import parse_config
from agent.ops.probe import ProbeResult, Progress, config_snippet, parse_slaves, probe
from edgewatch.processes import ProcessGroup
from edgewatch.waiting import wait_until
from firmware_sim import ModelContext, SimulatedBus, SimulatedDevice
from firmware_sim.models import MODELS
from tests.agent.conftest import REPO, WAIT_S, child_env

HEADER = '[gateway]\nid = "gw-probe"\ndata_dir = "d"\n[mqtt]\nhost = "127.0.0.1"\n'


@pytest.fixture
def bus() -> Iterator[SimulatedBus]:
    def device(model: str, slave: int, baud: int | None = None) -> SimulatedDevice:
        return SimulatedDevice(MODELS[model](ModelContext(seed=slave)), slave=slave, baud=baud)

    devices = [
        device("water_level", 1),
        device("water_level", 4),
        device("slope_displacement", 6),  # another family: its status at register 0
        device("rain_gauge", 3, baud=19200),
    ]
    with SimulatedBus(devices) as served:
        yield served


def test_probe_finds_each_slave_at_its_baud(bus: SimulatedBus) -> None:
    seen: list[Progress] = []
    result = probe(
        bus.port_path, bauds=[9600, 19200], slaves=range(1, 8), timeout_s=0.05, progress=seen.append
    )

    assert [(a.slave, a.baud, a.answer) for a in result.found] == [
        (1, 9600, "value"),
        (4, 9600, "value"),
        (6, 9600, "value"),
        (3, 19200, "value"),
    ]
    assert 2000 < (result.found[0].value or 0) < 3000  # a level of ~250.0 cm x10
    assert result.suspect == []
    assert [p.done for p in seen] == list(range(1, 15))


def test_a_register_the_slave_lacks_still_finds_it(bus: SimulatedBus) -> None:
    result = probe(bus.port_path, slaves=[1], register=0x1234, timeout_s=0.05)

    assert [(a.slave, a.answer) for a in result.found] == [(1, "exception")]
    assert "illegal" in result.found[0].detail.lower() or "exception" in result.found[0].detail


def test_the_snippet_is_a_config_the_agent_accepts(
    bus: SimulatedBus, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["probe", "--port", bus.port_path, "--slaves", "1-5", "--timeout", "0.05"])

    out, err = capsys.readouterr()
    assert code == 0
    assert "\rprobing 9600 baud: slave" in err
    assert "found 1@9600, 4@9600" in err
    config = parse_config(HEADER + out)
    assert [(p.name, p.url, p.baud, p.parity) for p in config.ports] == [
        ("bus1", bus.port_path, 9600, "N")
    ]
    assert [(d.name, d.port) for d in config.devices] == [("slave-1", "bus1"), ("slave-4", "bus1")]


def test_json_for_machines(bus: SimulatedBus, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["probe", "--port", bus.port_path, "--baud", "9600,19200", "--slaves", "3,4", "--json"]
    )

    out = capsys.readouterr().out
    document = json.loads(out)
    assert code == 0
    assert [(f["slave"], f["baud"], f["parity"]) for f in document["found"]] == [
        (4, 9600, "N"),
        (3, 19200, "N"),
    ]
    assert isinstance(document["found"][0]["value"], int)
    # two bauds on one cable: two ports, and a warning in the snippet
    config = parse_config(HEADER + document["config_toml"])
    assert [p.baud for p in config.ports] == [9600, 19200]
    assert "different bauds" in document["config_toml"]


def test_nothing_found_exits_3_with_advice(
    bus: SimulatedBus, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["probe", "--port", bus.port_path, "--slaves", "200-201", "--parity", "E"])

    assert code == 3
    assert "--scan-baud" in capsys.readouterr().out


def test_bad_options_and_ports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--port", "x", "--slaves", "0-300"]) == 2
    assert "outside 1-247" in capsys.readouterr().err
    assert main(["probe", "--port", str(tmp_path / "ttyUSB9"), "--slaves", "1"]) == 1
    assert "cannot open" in capsys.readouterr().err


def test_parse_slaves() -> None:
    assert parse_slaves("1,3,10-12") == [1, 3, 10, 11, 12]
    with pytest.raises(ValueError, match="not an id"):
        parse_slaves("a-b")


def test_snippet_of_nothing_is_still_valid_toml() -> None:
    text = config_snippet(ProbeResult("/dev/ttyUSB0", "N", [9600], 247))
    assert parse_config(HEADER + text).ports == ()


def test_the_field_guide_sample_is_a_config_the_agent_accepts() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "field-guide.md").read_text()
    sample = guide.split("```toml\n")[1].split("```")[0]

    config = parse_config(HEADER + sample)

    assert [d.name for d in config.devices] == ["slave-1"]


def probe_process(url: str, parity: str) -> subprocess.CompletedProcess[str]:
    """``edgewatch agent probe`` as its own process, as a technician types it."""
    argv = ["agent", "probe", "--port", url, "--parity", parity, "--slaves", "1-5", "--json"]
    return subprocess.run(
        [sys.executable, "-m", "edgewatch.cli", *argv],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_at_the_wrong_parity_probe_finds_nothing_and_at_the_right_one_every_slave(
    tmp_path: Path,
) -> None:
    """Issue 17: the simulator's 8N1 bus through its RFC 2217 URL (the pty cannot carry
    parity): `--parity E` hears nothing, as on a real cable, and `--parity N` finds all."""
    manifest = tmp_path / "sim.json"
    with ProcessGroup(tmp_path / "logs") as procs:
        procs.start_cli("sim", "sim", "run", "--devices", "3", "--manifest", str(manifest))
        wait_until(manifest.exists, timeout_s=WAIT_S, message="the simulator's manifest")
        devices = json.loads(manifest.read_text())["devices"]
        assert {d["parity"] for d in devices} == {"N"}
        (url,) = {d["rfc2217"] for d in devices}

        wrong = probe_process(url, "E")
        right = probe_process(url, "N")

    assert wrong.returncode == 3, wrong.stderr
    assert json.loads(wrong.stdout)["found"] == []
    assert right.returncode == 0, right.stderr
    found = json.loads(right.stdout)["found"]
    assert [(f["slave"], f["parity"], f["answer"]) for f in found] == [
        (1, "N", "value"),
        (2, "N", "value"),
        (3, "N", "value"),
    ]
