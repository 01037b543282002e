"""A master framed otherwise than the devices gets what a real line gives: silence or garbage.

Spoken to with pyserial clients over RFC 2217 (which carries every setting: baud, data
bits, parity, stop bits) and over the pty (which keeps the baud, the stop bits and odd
parity, but not even parity: the kernel drops it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from agent.bus.ports import open_serial
from agent.config import parse_config
from edgewatch.sim_config import scenario_agent_config
from edgewatch.system import GatewayTiming
from edgewatch.waiting import wait_until
from firmware_sim import SentenceDevice, SerialLine, SimulatedBus, WaterLevelGauge, modbus
from firmware_sim.models import ModelContext
from firmware_sim.scenario import RunningScenario, load_scenario, manifest
from firmware_sim.sentence_devices import SENTENCE_MODELS, sentence

READ_FIRMWARE = modbus.read_request(1, 3, 2, 1)
FIRMWARE = modbus.read_response(1, 3, [0x0102])  # 7 bytes
WAIT_S = 5.0


def open_bus(**settings: Any) -> SimulatedBus:
    return SimulatedBus([WaterLevelGauge(slave=1)], rfc2217=True, **settings)


@pytest.fixture
def bus_8n1() -> Iterator[SimulatedBus]:
    with open_bus() as bus:
        yield bus


def client(url: str, **settings: Any) -> serial.Serial:
    return serial.serial_for_url(url, **{"baudrate": 9600, "timeout": 2.0, **settings})


def silence(bus: SimulatedBus, port: serial.Serial, counter: str) -> None:
    """The request goes unheard: the bus counts it under ``counter`` and sends nothing."""
    before, requests = getattr(bus.stats, counter), bus.devices[0].stats.requests
    port.write(READ_FIRMWARE)
    wait_until(lambda: getattr(bus.stats, counter) == before + 1, timeout_s=WAIT_S, message=counter)
    assert port.in_waiting == 0
    assert bus.devices[0].stats.requests == requests  # the device never had the request


def test_the_rfc2217_url_serves_the_bus_at_the_right_settings(bus_8n1: SimulatedBus) -> None:
    assert bus_8n1.rfc2217_url is not None
    assert bus_8n1.rfc2217_url.startswith("rfc2217://127.0.0.1:")
    with client(bus_8n1.rfc2217_url) as port:
        port.write(READ_FIRMWARE)
        assert port.read(7) == FIRMWARE
    assert (bus_8n1.stats.responses, bus_8n1.stats.wrong_parity) == (1, 0)


@pytest.mark.parametrize(
    ("bus_settings", "client_settings", "counter"),
    [
        ({}, {"parity": "E"}, "wrong_parity"),
        ({}, {"parity": "O"}, "wrong_parity"),
        ({"parity": "E"}, {"parity": "N"}, "wrong_parity"),
        ({}, {"baudrate": 19200}, "wrong_baud"),
        ({}, {"bytesize": 7}, "wrong_data_bits"),
        ({"stopbits": 2}, {"stopbits": 1}, "wrong_stop_bits"),
    ],
    ids=["8E1-on-8N1", "8O1-on-8N1", "8N1-on-8E1", "19200-on-9600", "7N1-on-8N1", "1-on-2-stop"],
)
def test_over_rfc2217_a_master_framed_otherwise_is_not_heard(
    bus_settings: dict[str, Any], client_settings: dict[str, Any], counter: str
) -> None:
    with open_bus(**bus_settings) as bus:
        assert bus.rfc2217_url is not None
        with client(bus.rfc2217_url, **client_settings) as port:
            silence(bus, port, counter)
        # The same bus, the same door, the device's own settings: answered.
        right = {"parity": bus.parity, "stopbits": bus.stopbits}
        with client(bus.rfc2217_url, **right) as port:
            port.write(READ_FIRMWARE)
            assert port.read(7) == FIRMWARE


def test_over_rfc2217_an_8e1_bus_answers_an_8e1_master() -> None:
    with open_bus(parity="E") as bus:
        assert bus.rfc2217_url is not None
        with client(bus.rfc2217_url, parity="E") as port:
            port.write(READ_FIRMWARE)
            assert port.read(7) == FIRMWARE


def test_a_master_changing_parity_on_an_open_port_is_judged_by_the_new_setting(
    bus_8n1: SimulatedBus,
) -> None:
    assert bus_8n1.rfc2217_url is not None
    with client(bus_8n1.rfc2217_url, parity="E") as port:
        silence(bus_8n1, port, "wrong_parity")
        port.parity = "N"
        port.write(READ_FIRMWARE)
        assert port.read(7) == FIRMWARE


def test_over_rfc2217_a_master_wanting_two_stop_bits_reads_garbage(bus_8n1: SimulatedBus) -> None:
    """The device answers with one stop bit; the master's UART finds the next start bit
    where it wants its second stop bit: every byte but the last arrives as 0x00."""
    assert bus_8n1.rfc2217_url is not None
    with client(bus_8n1.rfc2217_url, stopbits=2) as port:
        port.write(READ_FIRMWARE)
        answer = port.read(7)
    assert answer == bytes(6) + FIRMWARE[-1:]
    assert not modbus.crc_ok(answer)
    assert (bus_8n1.stats.garbled_answers, bus_8n1.stats.responses) == (1, 1)


# Over the pty: what the kernel keeps of the client's settings.


def test_over_the_pty_odd_parity_is_not_heard(bus_8n1: SimulatedBus) -> None:
    with serial.Serial(bus_8n1.port_path, 9600, parity="O", timeout=2.0) as port:
        silence(bus_8n1, port, "wrong_parity")


def test_over_the_pty_the_stop_bits_show(bus_8n1: SimulatedBus) -> None:
    with serial.Serial(bus_8n1.port_path, 9600, stopbits=2, timeout=2.0) as port:
        port.write(READ_FIRMWARE)
        assert port.read(7) == bytes(6) + FIRMWARE[-1:]
    with (
        open_bus(stopbits=2) as bus_8n2,
        serial.Serial(bus_8n2.port_path, 9600, stopbits=1, timeout=2.0) as port,
    ):
        silence(bus_8n2, port, "wrong_stop_bits")


def test_over_the_pty_the_baud_shows(bus_8n1: SimulatedBus) -> None:
    with serial.Serial(bus_8n1.port_path, 19200, timeout=2.0) as port:
        silence(bus_8n1, port, "wrong_baud")


def test_over_the_pty_even_parity_cannot_show(bus_8n1: SimulatedBus) -> None:
    """The documented limit (docs/field-guide.md): the kernel drops "parity on" from a
    pty's settings, so an 8E1 master on the pty of an 8N1 bus is answered. The RFC 2217
    URL is the door where parity shows."""
    with serial.Serial(bus_8n1.port_path, 9600, parity="E", timeout=2.0) as port:
        port.write(READ_FIRMWARE)
        assert port.read(7) == FIRMWARE


def test_a_broadcast_framed_otherwise_reaches_no_device() -> None:
    gauge = WaterLevelGauge(slave=1)
    with SimulatedBus([gauge], rfc2217=True) as bus:
        assert bus.rfc2217_url is not None
        with client(bus.rfc2217_url, parity="E") as port:
            port.write(modbus.write_single_request(0, 0x0002, 7))  # every slave, none answers
            wait_until(lambda: bus.stats.wrong_parity == 1, timeout_s=WAIT_S, message="judged")
        with client(bus.rfc2217_url) as port:
            port.write(modbus.write_single_request(0, 0x0002, 7))
            wait_until(lambda: gauge.stats.requests == 1, timeout_s=WAIT_S, message="heard")
    assert bus.stats.frames == 2


# The serial line of sentence devices: the same model.


def line_devices() -> list[SentenceDevice]:
    gas = SentenceDevice(SENTENCE_MODELS["gas_detector"](ModelContext(seed=1)), address=1)
    return [gas]


def test_over_rfc2217_a_poll_framed_otherwise_goes_unheard_on_a_line() -> None:
    with SerialLine(line_devices(), rfc2217=True) as line:
        assert line.rfc2217_url is not None
        with client(line.rfc2217_url, parity="E") as port:
            port.write(sentence("POLL,1"))
            wait_until(lambda: line.stats.wrong_parity == 1, timeout_s=WAIT_S, message="judged")
            assert port.in_waiting == 0
        with client(line.rfc2217_url) as port:
            port.write(sentence("POLL,1"))
            assert port.readline().startswith(b"$GAS,1,")
        with client(line.rfc2217_url, stopbits=2) as port:
            port.write(sentence("POLL,1"))
            garbled = port.read(5)
            assert garbled == bytes(5)  # no "$", no line end before the last byte
    assert (line.stats.responses, line.stats.garbled_answers) == (2, 1)


def test_pushed_sentences_reach_a_master_framed_otherwise_as_garbage() -> None:
    context = ModelContext(seed=1, options={"period_s": 0.05})
    smoke = SentenceDevice(SENTENCE_MODELS["smoke_detector"](context), address=1)
    with SerialLine([smoke], rfc2217=True) as line:
        assert line.rfc2217_url is not None
        with client(line.rfc2217_url, parity="E") as port:
            garbage = port.read(40)
            assert garbage == bytes(40)
            assert line.stats.garbled_pushes >= 1
            port.parity = "N"
            port.reset_input_buffer()
            wait_until(
                lambda: port.readline().startswith(b"$SMK,1,"),
                timeout_s=WAIT_S,
                message="a whole sentence at the right parity",
            )


# A scenario's line settings: in the manifest, and in the agent config written from it.

SCENARIO_8E2 = """
name = "strict"
[[buses]]
name = "bus1"
parity = "E"
stopbits = 2
[[buses.devices]]
name = "gauge-1"
model = "water_level"
slave = 1
"""


def test_a_scenarios_line_settings_reach_the_manifest_and_the_agent_config(
    tmp_path: Path,
) -> None:
    (tmp_path / "strict.toml").write_text(SCENARIO_8E2)
    with RunningScenario(load_scenario(str(tmp_path / "strict.toml"))) as running:
        (device,) = manifest(running.devices)["devices"]
        assert (device["parity"], device["stopbits"], device["bytesize"]) == ("E", 2, 8)
        assert device["rfc2217"] == running.buses[0].rfc2217_url
        text = scenario_agent_config("gw-1", 1883, tmp_path / "data", [device], GatewayTiming())
        (port,) = parse_config(text).ports
        assert (port.parity, port.stopbits) == ("E", 2)
        # The agent's port, opened as the config says, through the door where parity shows.
        remote = port.model_copy(update={"url": device["rfc2217"], "timeout_s": 2.0})
        with open_serial(remote) as link:
            link.write(READ_FIRMWARE)
            assert link.read(7) == FIRMWARE
        with open_serial(remote.model_copy(update={"stopbits": 1})) as link:
            link.write(READ_FIRMWARE)
            bus = running.buses[0]
            wait_until(lambda: bus.stats.wrong_stop_bits == 1, timeout_s=WAIT_S, message="1")


def test_a_scenario_with_a_setting_no_uart_has_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(SCENARIO_8E2.replace("stopbits = 2", "stopbits = 3"))
    with pytest.raises(ValueError, match=r"bus 'bus1': stopbits 3 is not 1, 1\.5 or 2"):
        load_scenario(str(tmp_path / "bad.toml"))
