"""Scenarios in TOML: the packaged ones load, the rainstorm behaves like one, files and errors."""

from __future__ import annotations

import itertools
import json
import struct
import tomllib
from pathlib import Path

import pytest
import serial

from edgewatch.waiting import wait_until
from firmware_sim import SCENARIOS, modbus
from firmware_sim.scenario import (
    RunningScenario,
    load_scenario,
    packaged_scenarios,
    write_manifest,
)
from firmware_sim.sentence_devices import parse_sentence, sentence
from firmware_sim.signals import build_quantities
from firmware_sim.stx_frames import enquiry, parse_stx_frame
from tests.clock import FakeClock


def test_packaged_scenarios_load() -> None:
    assert {"bridge", "demo", "rainstorm"} <= set(SCENARIOS)
    for name in SCENARIOS:
        assert load_scenario(name).buses
    demo = load_scenario("demo")
    ((bus, device),) = [(b, d) for b in demo.buses for d in b.devices]
    assert (bus.name, bus.baud, bus.parity, device.name, device.slave) == (
        "bus1",
        9600,
        "N",
        "gauge-1",
        1,
    )


def test_rainstorm_rain_rises_the_river_follows_the_slope_accelerates() -> None:
    raw = tomllib.loads(packaged_scenarios()["rainstorm"])
    signals = build_quantities(raw["signals"])
    times = list(range(0, 10_801, 60))
    rain = [signals["rain_mm_per_h"](t) for t in times]
    river = [signals["river_level_cm"](t) for t in times]
    slope = [signals["slope_mm"](t) for t in times]
    rain_peak_s = times[rain.index(max(rain))]
    river_peak_s = times[river.index(max(river))]
    assert rain[0] == 0
    assert max(rain) == 80
    assert max(river) - river[0] > 100  # the river rises over a metre
    assert rain_peak_s + 600 <= river_peak_s  # ...and later than the rain
    early, late = slope[10] - slope[0], slope[100] - slope[90]  # mm per 10 minutes
    assert late > 5 * early  # the slope's creep accelerates
    assert all(b >= a for a, b in itertools.pairwise(slope))


def test_a_storm_in_seconds_on_real_ptys() -> None:
    clock = FakeClock()
    scenario = load_scenario("rainstorm")
    with RunningScenario(scenario, clock=clock, time_scale=600) as running:
        by_name = {d.name: d for d in running.devices}
        assert by_name["gas-1"].protocol == "sentences"
        bus1 = by_name["river-1"].pty
        with serial.Serial(bus1, 9600, timeout=1) as port:

            def read(slave: int, address: int, count: int) -> list[int]:
                port.write(modbus.read_request(slave, 3, address, count))
                data = port.read(5 + 2 * count)[3:-2]
                return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]

            level_before, tips_before = read(1, 0, 1)[0], read(2, 0, 1)[0]
            (low, high) = read(3, 0x100, 2)
            slope_before = struct.unpack(">f", (high << 16 | low).to_bytes(4, "big"))[0]
            clock.now_s += 10  # 6000 storm seconds: past the peak of the rain
            level_after, tips_after = read(1, 0, 1)[0], read(2, 0, 1)[0]
            (low, high) = read(3, 0x100, 2)
            slope_after = struct.unpack(">f", (high << 16 | low).to_bytes(4, "big"))[0]
        assert tips_after - tips_before > 300  # more than 60 mm of rain, 0.2 mm a tip
        assert level_after - level_before > 1000  # cm x10: the river rose over a metre
        assert slope_after - slope_before > 1.0  # mm
        with serial.Serial(by_name["gas-1"].pty, 9600, timeout=1) as line:
            line.write(sentence("POLL,1"))
            body = parse_sentence(line.readline())
            assert body is not None
            assert body.startswith("GAS,1,")


def test_scenario_file_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text(
        """
name = "two"
[signals.level]
kind = "sine"
mean = 100
swing = 10
period_s = 60
[[buses]]
name = "busA"
protocol = "modbus_ascii"
baud = 19200
parity = "E"
[[buses.devices]]
name = "a"
model = "water_level"
slave = 7
inputs = { level_cm = "level" }
"""
    )
    scenario = load_scenario(str(path))
    assert scenario.name == "two"
    assert scenario.buses[0].protocol == "modbus_ascii"
    with pytest.raises(ValueError, match="no scenario 'nope'"):
        load_scenario("nope")
    path.write_text(path.read_text().replace('"level" }', '"flood" }'))
    with pytest.raises(ValueError, match="device 'a': no signal 'flood'"):
        load_scenario(str(path))
    path.write_text(path.read_text().replace("water_level", "teapot"))
    with pytest.raises(ValueError, match="model 'teapot' is not one of"):
        load_scenario(str(path))
    with pytest.raises(ValueError, match="--devices needs a scenario of one device"):
        load_scenario("rainstorm").with_devices(2)


def test_bridge_two_framed_inclinometers_answer_by_enq_on_one_line(tmp_path: Path) -> None:
    clock = FakeClock()
    with RunningScenario(load_scenario("bridge"), clock=clock, time_scale=1) as running:
        manifest = tmp_path / "manifest.json"
        write_manifest(manifest, running.devices)
        devices = json.loads(manifest.read_text())["devices"]
        assert [(d["name"], d["model"], d["slave"], d["parity"]) for d in devices] == [
            ("tilt-west", "inclinometer_framed", 1, "E"),
            ("tilt-east", "inclinometer_framed", 2, "E"),
        ]
        assert devices[0]["pty"] == devices[1]["pty"]
        (line,) = running.buses
        with serial.Serial(devices[0]["pty"], 9600, timeout=1) as port:

            def ask(device_id: int) -> list[float]:
                port.write(enquiry(device_id))
                return ask_answer(port)

            west, east = ask(1), ask(2)
            assert abs(west[0] - 0.43) < 0.1
            assert east == pytest.approx([0.40, -0.08], abs=0.01)
            clock.now_s += 7200  # the east pier has tilted
            assert ask(2)[0] == pytest.approx(0.95, abs=0.01)
            port.write(enquiry(3))  # nobody there: silence, then the next answer is 1's
            port.write(enquiry(1))
            assert abs(ask_answer(port)[0] - 0.43) < 0.1
            # The line counts an answer once it has written it: the reader may be first.
            wait_until(lambda: line.stats.responses >= 4, timeout_s=5, message="4 answers")
            assert line.stats.responses == 4  # and no answer to the absent device 3


def ask_answer(port: serial.Serial) -> list[float]:
    """The angles of the next frame on ``port`` (19 bytes: STX, 2 x 7, SP, ETB, CS, $)."""
    text = parse_stx_frame(port.read(19))
    assert text is not None
    return [float(angle) for angle in text.split()]
