"""The framed inclinometer form against its simulator on a real pty: #DATA, #READ/#STOP and
several devices sharing one line, each asked by 0xB0 + id and ENQ."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import serial

from drivers.base import DriverError, ErrorKind, Measurement
from drivers.registry import parse_device_config
from drivers.serial_line import SerialLineDeviceConfig, SerialLineDriver
from edgewatch.waiting import wait_until
from firmware_sim import Faults, ModelContext, SerialLine
from firmware_sim.sentence_devices import SENTENCE_MODELS, SentenceDevice
from firmware_sim.signals import constant
from wire import Quality

PORT_TIMEOUT_S = 0.5
READ_TIMEOUT_S = 0.5  # generous: another test run may share this machine


def inclinometer(address: int, x_deg: float, y_deg: float) -> SentenceDevice:
    context = ModelContext(
        inputs={"tilt_x_deg": constant(x_deg), "tilt_y_deg": constant(y_deg)},
        options={"period_s": 0.03},
    )
    return SentenceDevice(SENTENCE_MODELS["inclinometer_framed"](context), address=address)


def driver_for(port: serial.Serial, **overrides: Any) -> SerialLineDriver:
    raw: dict[str, Any] = {
        "name": "tilt-1",
        "driver": "serial_line",
        "port": "line1",
        "style": "poll",
        "format": "framed",
        "timeout_s": READ_TIMEOUT_S,
        "fields": [
            {"metric": "tilt_x_deg", "key": "X", "unit": "deg"},
            {"metric": "tilt_y_deg", "key": "Y", "unit": "deg", "valid_min": -5, "valid_max": 5},
        ],
    }
    raw.update(overrides)
    config = parse_device_config({k: v for k, v in raw.items() if v is not None})
    assert isinstance(config, SerialLineDeviceConfig)
    return SerialLineDriver(config, port)


@contextmanager
def line_of(*devices: SentenceDevice) -> Iterator[tuple[SerialLine, serial.Serial]]:
    with (
        SerialLine(devices) as line,
        serial.Serial(line.port_path, 9600, timeout=PORT_TIMEOUT_S) as port,
    ):
        yield line, port


def values(measurements: list[Measurement]) -> dict[str, float | None]:
    assert all(m.quality is Quality.GOOD for m in measurements), measurements
    return {m.metric: m.value for m in measurements}


def test_poll_with_data_reads_both_angles() -> None:
    tilt = inclinometer(1, 0.43, -0.084)
    with line_of(tilt) as (line, port):
        driver = driver_for(port)
        assert values(driver.read()) == {"tilt_x_deg": 0.43, "tilt_y_deg": -0.084}
        assert values(driver.read()) == {"tilt_x_deg": 0.43, "tilt_y_deg": -0.084}
        assert (line.stats.lines, line.stats.enquiries, line.stats.bad_lines) == (2, 0, 0)
        assert tilt.stats.responses == 2
        assert not tilt.streaming


def test_an_angle_out_of_its_valid_range_is_bad_naming_the_field() -> None:
    with line_of(inclinometer(1, 0.43, -7.5)) as (_line, port):
        x, y = driver_for(port).read()
    assert (x.quality, x.value) == (Quality.GOOD, 0.43)
    assert (y.quality, y.value, y.error_kind) == (Quality.BAD, None, ErrorKind.INVALID_VALUE)
    assert y.error is not None
    assert "field 'tilt_y_deg' (key 'Y')" in y.error
    assert "-7.5 is outside the valid range [-5.0, 5.0]" in y.error


def test_push_sends_read_once_drains_the_stream_and_stop_on_close() -> None:
    tilt = inclinometer(1, 1.25, -0.5)
    with line_of(tilt) as (line, port):
        driver = driver_for(port, style="push")
        assert not tilt.streaming
        for _ in range(3):
            assert values(driver.read()) == {"tilt_x_deg": 1.25, "tilt_y_deg": -0.5}
        assert tilt.streaming
        assert line.stats.lines == 1  # #READ, once
        pushed = line.stats.pushed
        wait_until(lambda: line.stats.pushed > pushed + 2, timeout_s=5, message="the stream")
        driver.close()
        wait_until(lambda: not tilt.streaming, timeout_s=5, message="#STOP heard")
        assert line.stats.lines == 2
        assert tilt.next_push_s() is None  # nothing more comes


def test_push_asks_again_after_a_reboot_silenced_the_stream() -> None:
    tilt = inclinometer(1, 1.25, -0.5)
    with line_of(tilt) as (line, port):
        driver = driver_for(port, style="push", timeout_s=0.2)
        driver.read()
        tilt.reboot()  # forgets #READ: the stream stops
        port.reset_input_buffer()

        def failed_read() -> DriverError | None:
            try:
                driver.read()  # frames sent before the reboot may still be on their way
            except DriverError as exc:
                return exc
            return None

        error = wait_until(failed_read, timeout_s=5, message="a read that fails")
        assert error is not None
        assert error.kind is ErrorKind.TIMEOUT, error
        assert not tilt.streaming
        assert values(driver.read()) == {"tilt_x_deg": 1.25, "tilt_y_deg": -0.5}
        assert tilt.streaming
        assert line.stats.lines == 2  # #READ again


def test_two_devices_on_one_line_each_answer_only_their_own_enq() -> None:
    west, east = inclinometer(1, 0.43, -0.08), inclinometer(2, 0.95, 0.12)
    with line_of(west, east) as (line, port):
        read_west = driver_for(port, addressing="enq", address="1")
        read_east = driver_for(port, name="tilt-2", addressing="enq", address="2")
        for _ in range(2):
            assert values(read_west.read()) == {"tilt_x_deg": 0.43, "tilt_y_deg": -0.08}
            assert values(read_east.read()) == {"tilt_x_deg": 0.95, "tilt_y_deg": 0.12}
        assert (west.stats.requests, east.stats.requests) == (2, 2)  # none heard the other's
        assert (line.stats.enquiries, line.stats.lines, line.stats.responses) == (4, 0, 4)
        nobody = driver_for(port, name="tilt-9", addressing="enq", address="9", timeout_s=0.2)
        with pytest.raises(DriverError) as caught:
            nobody.read()
        assert caught.value.kind is ErrorKind.TIMEOUT
        assert "device 'tilt-9' (serial_line, address 9): timeout" in str(caught.value)
        assert line.stats.responses == 4


def test_a_wrong_checksum_is_counted_as_crc_and_the_next_frame_reads() -> None:
    west, east = inclinometer(1, 0.43, -0.08), inclinometer(2, 0.95, 0.12)
    with line_of(west, east) as (_line, port):
        driver = driver_for(port, name="tilt-2", addressing="enq", address="2", timeout_s=0.2)
        east.faults = Faults(corrupt_crc=True)
        with pytest.raises(DriverError) as caught:
            driver.read()
        assert caught.value.kind is ErrorKind.CRC
        assert "device 'tilt-2' (serial_line, address 2): crc: 1 bad checksums" in str(caught.value)
        assert driver.framer_stats.bad_checksums == 1
        east.faults = Faults()
        assert values(driver.read()) == {"tilt_x_deg": 0.95, "tilt_y_deg": 0.12}
        assert driver.framer_stats.bad_checksums == 1


def test_garbage_then_a_good_frame_in_one_answer_reads_the_frame() -> None:
    # Two devices on a point-to-point command: #DATA makes both answer, the noisy one first.
    noisy, good = inclinometer(1, 9.0, 9.0), inclinometer(2, 0.43, -0.08)
    noisy.faults = Faults(garbage=True)
    with line_of(noisy, good) as (_line, port):
        driver = driver_for(port)
        assert values(driver.read()) == {"tilt_x_deg": 0.43, "tilt_y_deg": -0.08}
        assert driver.framer_stats.noise_bytes == 19  # the noisy answer, a frame's length
        assert driver.framer_stats.bad_checksums == 0
        noisy.faults = Faults(silent=True)
        good.faults = Faults(garbage=True)
        with pytest.raises(DriverError) as caught:
            driver_for(port, timeout_s=0.2).read()
        assert caught.value.kind is ErrorKind.GARBAGE
