"""The device families of FIELD-DEVICES.md, request in, frame out (no pty)."""

from __future__ import annotations

import struct

from firmware_sim import modbus, modbus_ascii
from firmware_sim.device import SimulatedDevice
from firmware_sim.faults import Faults
from firmware_sim.modbus import ExceptionCode, Request
from firmware_sim.models import MODELS, ModelContext
from firmware_sim.sentence_devices import SENTENCE_MODELS, SentenceDevice, parse_sentence, sentence
from firmware_sim.signals import constant
from firmware_sim.stx_frames import (
    Enquiry,
    enquiry,
    parse_stx_frame,
    split_requests,
    stx_checksum,
    stx_frame,
)
from tests.clock import FakeClock


def make(model: str, clock: FakeClock, slave: int = 1, **options: object) -> SimulatedDevice:
    return SimulatedDevice(MODELS[model](ModelContext(options=options)), slave=slave, clock=clock)


def ask(device: SimulatedDevice, frame: bytes) -> bytes | None:
    _used, request = modbus.decode_request(frame)
    assert request is not None
    return device.handle(request)


def words(response: bytes | None) -> list[int]:
    assert response is not None
    assert modbus.crc_ok(response)
    data = response[3:-2]
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def test_level_transmitter_map_and_functions() -> None:
    device = make("level_transmitter", FakeClock(), slave=4)
    address, baud_code, unit, decimals, value = words(ask(device, modbus.read_request(4, 3, 0, 5)))
    assert (address, baud_code, unit, decimals) == (4, 3, 1, 2)
    assert 220 <= value <= 280  # metres with 2 decimals
    assert ask(device, modbus.read_request(4, 4, 0, 1)) == modbus.exception_response(
        4, 4, ExceptionCode.ILLEGAL_FUNCTION
    )
    assert ask(device, modbus.write_multiple_request(4, 3, [1])) == modbus.exception_response(
        4, 16, ExceptionCode.ILLEGAL_FUNCTION
    )
    assert ask(device, modbus.write_single_request(4, 0, 0)) == modbus.exception_response(
        4, 6, ExceptionCode.ILLEGAL_DATA_VALUE
    )
    assert ask(device, modbus.write_single_request(4, 1, 9)) == modbus.exception_response(
        4, 6, ExceptionCode.ILLEGAL_DATA_VALUE
    )
    # A new address is taken only once the answer (from the old address) is out.
    assert ask(device, modbus.write_single_request(4, 0, 9)) == modbus.write_single_response(
        4, 0, 9
    )
    assert device.slave == 4
    device.after_answer()
    assert device.slave == 9


def test_slope_displacement_is_f32_low_word_first() -> None:
    device = make("slope_displacement", FakeClock())
    low, high = words(ask(device, modbus.read_request(1, 3, 0x100, 2)))
    (millimetres,) = struct.unpack(">f", (high << 16 | low).to_bytes(4, "big"))
    assert 11.9 < millimetres < 12.1


def test_inclinometer_words() -> None:
    device = make("inclinometer", FakeClock())
    xl, xh, _yl, _yh, strain_hi, strain_lo = words(ask(device, modbus.read_request(1, 3, 0x100, 6)))
    (tilt_x,) = struct.unpack(">f", (xh << 16 | xl).to_bytes(4, "big"))
    (strain,) = struct.unpack(">i", (strain_hi << 16 | strain_lo).to_bytes(4, "big"))
    assert 0.35 < tilt_x < 0.5
    assert 50 < strain < 200


def test_rain_gauge_counts_rolls_over_and_resets_on_reboot() -> None:
    clock = FakeClock()
    gauge = make("rain_gauge", clock, initial_tips=65535)
    assert words(ask(gauge, modbus.read_request(1, 3, 0, 1))) == [65535]
    clock.now_s += 120  # 6 mm/h: one 0.2 mm tip every 120 s
    assert words(ask(gauge, modbus.read_request(1, 3, 0, 1))) == [0]
    clock.now_s += 240
    assert words(ask(gauge, modbus.read_request(1, 3, 0, 1))) == [2]
    gauge.reboot()
    assert words(ask(gauge, modbus.read_request(1, 3, 0, 1))) == [0]
    assert gauge.stats.reboots == 1


def test_sentinel_when_no_temperature_sensor() -> None:
    gauge = make("rain_gauge", FakeClock(), temperature_sensor=False)
    assert words(ask(gauge, modbus.read_request(1, 3, 3, 1))) == [0x8000]


def test_modbus_ascii_golden_frames() -> None:
    assert modbus_ascii.lrc(bytes.fromhex("010300000001")) == 0xFB
    assert modbus_ascii.encode(bytes.fromhex("010300000001")) == b":010300000001FB\r\n"
    assert modbus_ascii.decode_request(b"junk:010300000001FB\r\n") == (4, None)
    assert modbus_ascii.decode_request(b":010300000001FB\r\n") == (
        17,
        Request(1, 3, bytes.fromhex("00000001")),
    )
    assert modbus_ascii.decode_request(b":010300000001FC\r\n") == (17, None)  # bad LRC
    assert modbus_ascii.decode_request(b":0103") == (0, None)
    assert modbus_ascii.decode_request(b":0103:010300000001FB\r\n") == (5, None)  # a runt


def test_sentence_checksums_golden() -> None:
    assert sentence("POLL,1") == b"$POLL,1*02\r\n"
    assert sentence("GAS,1,12.5,0") == b"$GAS,1,12.5,0*60\r\n"
    assert parse_sentence(
        b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
    )
    assert parse_sentence(b"$GAS,1,12.5,0*61") is None


def test_gas_detector_answers_its_own_poll() -> None:
    clock = FakeClock()
    context = ModelContext(inputs={"gas_lel_pct": constant(12.5)})
    detector = SentenceDevice(SENTENCE_MODELS["gas_detector"](context), address=2, clock=clock)
    assert detector.answer("POLL,1") is None
    assert detector.answer("POLL,2") == sentence("GAS,2,12.5,0")
    assert (detector.next_push_s(), detector.push()) == (None, None)  # never unasked


def test_smoke_detector_pushes_at_once_when_the_alarm_changes() -> None:
    clock = FakeClock()
    level = [0.1]
    context = ModelContext(
        inputs={"smoke_pct_per_m": lambda _t: level[0]}, options={"period_s": 10}
    )
    detector = SentenceDevice(SENTENCE_MODELS["smoke_detector"](context), address=3, clock=clock)
    assert detector.push() == sentence("SMK,3,0,0.10")
    assert detector.push() is None  # not due for 10 s
    level[0] = 5.0
    clock.now_s += 0.05
    assert detector.push() == sentence("SMK,3,1,5.00")


def test_stx_frames_golden() -> None:
    assert stx_checksum(b"+00.430 -00.084") == 0x2D
    assert stx_frame("+00.430 -00.084") == b"\x02+00.430 -00.084\x17\x2d$"
    assert stx_frame("+00.430 -00.084", corrupt=True)[-2] == 0x2D ^ 0x5A
    assert parse_stx_frame(b"\x02+00.430 -00.084\x17\x2d$") == "+00.430 -00.084"
    assert parse_stx_frame(b"\x02+00.430 -00.084\x17\x2c$") is None
    assert enquiry(3) == b"\xb3\x05"


def test_requests_on_a_line_are_lines_and_enq_polls() -> None:
    assert split_requests(b"#DATA\r\n\xb3\x05\xb1") == ([b"#DATA\r", Enquiry(3)], b"\xb1")
    assert split_requests(b"junk\xb2\x05#RE") == ([b"junk", Enquiry(2)], b"#RE")
    assert split_requests(b"\x05\xb2") == ([], b"\x05\xb2")  # ENQ without an address first


def framed_inclinometer(address: int, clock: FakeClock, **options: object) -> SentenceDevice:
    context = ModelContext(
        inputs={"tilt_x_deg": constant(0.43), "tilt_y_deg": constant(-0.084)}, options=options
    )
    model = SENTENCE_MODELS["inclinometer_framed"](context)
    return SentenceDevice(model, address=address, clock=clock)


def test_framed_inclinometer_answers_data_and_its_own_enq() -> None:
    clock = FakeClock()
    tilt = framed_inclinometer(2, clock)
    frame = stx_frame("+00.430 -00.084")
    assert tilt.command("#DATA") == frame
    assert tilt.enquire(2) == frame
    assert tilt.enquire(3) is None
    assert tilt.answer("POLL,2") is None  # no NMEA
    assert tilt.command("#WHAT") is None
    assert (tilt.next_push_s(), tilt.push()) == (None, None)  # speaks only when asked


def test_framed_inclinometer_streams_from_read_to_stop_or_reboot() -> None:
    clock = FakeClock()
    tilt = framed_inclinometer(1, clock, period_s=0.1)
    assert tilt.command("#READ") is None
    assert tilt.streaming
    assert tilt.push() == stx_frame("+00.430 -00.084")
    assert tilt.push() is None  # not due for 0.1 s
    clock.now_s += 0.1
    assert tilt.push() == stx_frame("+00.430 -00.084")
    assert tilt.command("#STOP") is None
    clock.now_s += 1
    assert (tilt.streaming, tilt.next_push_s(), tilt.push()) == (False, None, None)
    tilt.command("#READ")
    tilt.reboot()  # a reboot forgets #READ
    assert (tilt.streaming, tilt.push()) == (False, None)


def test_framed_inclinometer_faults() -> None:
    clock = FakeClock()
    tilt = framed_inclinometer(1, clock)
    tilt.faults = Faults(corrupt_crc=True)
    answer = tilt.command("#DATA")
    assert answer is not None
    assert parse_stx_frame(answer) is None
    tilt.faults = Faults(out_of_range=True)
    assert tilt.command("#DATA") == stx_frame("+720.000 +720.000")
    tilt.faults = Faults(garbage=True)
    answer = tilt.command("#DATA")
    assert answer is not None
    assert b"\x02" not in answer
    tilt.faults = Faults(truncate=True)
    frame = stx_frame("+00.430 -00.084")
    assert tilt.command("#DATA") == frame[: len(frame) // 2]
    tilt.faults = Faults(silent=True)
    assert (tilt.command("#DATA"), tilt.enquire(1)) == (None, None)
    tilt.command("#READ")
    assert tilt.push() is None
