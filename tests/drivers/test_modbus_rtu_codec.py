"""Pure parts of the Modbus RTU driver: request planning and register decoding."""

from __future__ import annotations

import math

import minimalmodbus
import pytest

from drivers.base import ErrorKind
from drivers.modbus_rtu import RegisterConfig, RegisterTable, RegisterType, WordOrder
from drivers.modbus_rtu.codec import decode_raw, decode_value, encode_raw, interpret, plan_blocks
from drivers.modbus_rtu.port import classify


def reg(metric: str, address: int, **fields: object) -> RegisterConfig:
    return RegisterConfig.model_validate({"metric": metric, "address": address, **fields})


def test_adjacent_registers_merge_gaps_and_tables_split() -> None:
    blocks = plan_blocks(
        [
            reg("c", 2),
            reg("a", 0),
            reg("b", 1),
            reg("far", 10, type="u32"),
            reg("next", 12),
            reg("input", 3, function=4),
        ]
    )
    assert [(b.function, b.address, b.count) for b in blocks] == [
        (RegisterTable.HOLDING, 0, 3),
        (RegisterTable.HOLDING, 10, 3),
        (RegisterTable.INPUT, 3, 1),
    ]
    assert [r.metric for r in blocks[0].registers] == ["a", "b", "c"]
    assert blocks[0].describe() == "registers 'a', 'b', 'c' (holding 0-2)"
    assert blocks[2].describe() == "register 'input' (input 3)"


def test_blocks_respect_the_request_limit() -> None:
    blocks = plan_blocks([reg(f"r{n}", n) for n in range(300)])
    assert [b.count for b in blocks] == [125, 125, 50]


@pytest.mark.parametrize(
    ("words", "type_", "order", "expected"),
    [
        ([0xFFFF], RegisterType.U16, WordOrder.HIGH_FIRST, 65535),
        ([0xFFFF], RegisterType.I16, WordOrder.HIGH_FIRST, -1),
        ([0x8000], RegisterType.I16, WordOrder.HIGH_FIRST, -32768),
        ([0x0001, 0x0002], RegisterType.U32, WordOrder.HIGH_FIRST, 0x00010002),
        ([0x0002, 0x0001], RegisterType.U32, WordOrder.LOW_FIRST, 0x00010002),
        ([0xFFFF, 0xFFFE], RegisterType.I32, WordOrder.HIGH_FIRST, -2),
        ([0x3FC0, 0x0000], RegisterType.F32, WordOrder.HIGH_FIRST, 1.5),
        ([0x0000, 0x3FC0], RegisterType.F32, WordOrder.LOW_FIRST, 1.5),
    ],
)
def test_decode_raw(
    words: list[int], type_: RegisterType, order: WordOrder, expected: float
) -> None:
    assert decode_raw(words, type_, order) == expected


def test_decode_value_scales_and_offsets() -> None:
    register = reg("level_cm", 0, type="i16", scale=0.1, offset=-5)
    assert math.isclose(decode_value([2500], register), 245.0)
    assert math.isclose(decode_value([0xFFF6], register), -6.0)


def test_decode_refuses_the_wrong_number_of_words() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode_raw([1], RegisterType.F32, WordOrder.HIGH_FIRST)


# Golden vectors: the same number in each byte/word order, as the words a device returns.
ORDER_VECTORS = [
    # (type, order, words on the wire, value)
    (RegisterType.U32, WordOrder.HIGH_FIRST, [0x0102, 0x0304], 0x01020304),
    (RegisterType.U32, WordOrder.LOW_FIRST, [0x0304, 0x0102], 0x01020304),
    (RegisterType.U32, WordOrder.BYTE_SWAPPED, [0x0201, 0x0403], 0x01020304),
    (RegisterType.U32, WordOrder.LITTLE_ENDIAN, [0x0403, 0x0201], 0x01020304),
    (RegisterType.F32, WordOrder.HIGH_FIRST, [0x42F6, 0xE979], 123.456),
    (RegisterType.F32, WordOrder.LOW_FIRST, [0xE979, 0x42F6], 123.456),
    (RegisterType.F32, WordOrder.BYTE_SWAPPED, [0xF642, 0x79E9], 123.456),
    (RegisterType.F32, WordOrder.LITTLE_ENDIAN, [0x79E9, 0xF642], 123.456),
    (RegisterType.I32, WordOrder.LOW_FIRST, [0xFFFE, 0xFFFF], -2),
    (RegisterType.I16, WordOrder.HIGH_FIRST, [0xFF85], -123),
    (RegisterType.I16, WordOrder.LOW_FIRST, [0xFF85], -123),  # one word: nothing to swap
    (RegisterType.I16, WordOrder.BYTE_SWAPPED, [0x85FF], -123),
    (RegisterType.U16, WordOrder.LITTLE_ENDIAN, [0x3412], 0x1234),
]


@pytest.mark.parametrize(("type_", "order", "words", "expected"), ORDER_VECTORS)
def test_byte_and_word_orders(
    type_: RegisterType, order: WordOrder, words: list[int], expected: float
) -> None:
    assert math.isclose(decode_raw(words, type_, order), expected, rel_tol=1e-6)
    assert encode_raw(expected, type_, order) == words


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit a u16"):
        encode_raw(70000, RegisterType.U16, WordOrder.HIGH_FIRST)
    with pytest.raises(ValueError, match="does not fit a i16"):
        encode_raw(-40000, RegisterType.I16, WordOrder.HIGH_FIRST)


def test_sentinel_is_matched_on_the_raw_bits() -> None:
    register = reg("temp_c", 0, type="i16", scale=0.1, sentinels=[0x8000])
    result = interpret(register, [0x8000])
    assert result.value is None
    assert result.problem == "sentinel 0x8000 (no sensor / invalid)"
    assert interpret(register, [0x00FA]).value == pytest.approx(25.0)
    negative = reg("t", 0, type="i16", sentinels=[-32768])  # the same sentinel, signed
    assert interpret(negative, [0x8000]).problem is not None
    wide = reg("w", 0, type="u32", word_order="CDAB", sentinels=[0xFFFFFFFF])
    assert interpret(wide, [0xFFFF, 0xFFFF]).problem == "sentinel 0xFFFFFFFF (no sensor / invalid)"


def test_valid_range() -> None:
    register = reg("level_m", 0, scale=0.01, valid_min=0, valid_max=10)
    assert interpret(register, [500]).value == pytest.approx(5.0)
    problem = interpret(register, [1500]).problem
    assert problem == "15 is outside the valid range [0.0, 10.0]"
    assert interpret(reg("x", 0, type="i16", valid_min=0), [0xFFFF]).problem == (
        "-1 is outside the valid range [0.0, ]"
    )


def test_decimals_from_another_register() -> None:
    register = reg("level_m", 4, type="i16", decimals_address=3)
    assert interpret(register, [1234], decimals=0).value == 1234
    assert interpret(register, [1234], decimals=2).value == pytest.approx(12.34)
    assert interpret(register, [0xFFF6], decimals=1).value == pytest.approx(-1.0)
    assert interpret(register, [1], decimals=12).problem == "decimals register 3 holds 12, not 0-9"


def test_counter_carries_its_raw_count() -> None:
    register = reg("rain_mm", 0, kind="counter", scale=0.2)
    result = interpret(register, [65535])
    assert result.count == 65535
    assert result.value == pytest.approx(13107.0)
    small = reg("c", 0, kind="counter", modulus=10000)
    assert interpret(small, [10000]).problem == "count 10000 is not below modulus 10000"


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (b"\x05\x06\x00\x20", "timeout"),  # half of a fc 06 echo: cut short
        (b"\x05\x05\x00\x00", "timeout"),  # half of a fc 05 echo
        (b"\x05\x06\x00\x20\x00\x01\x00\x00", "crc"),  # whole echo, wrong CRC
        (b"\x05\x10\x00\x20\x00\x01\x00\x00", "crc"),
    ],
)
def test_a_write_answer_cut_short_is_a_timeout_not_a_crc(answer: bytes, kind: str) -> None:
    error = minimalmodbus.InvalidResponseError("Checksum error in rtu mode")
    assert classify(error, answer, slave=5) is ErrorKind(kind)


@pytest.mark.parametrize(("raw", "shown"), [(2397, 239.7), (2507, 250.7), (3, 0.3), (7, 0.7)])
def test_scaled_values_carry_no_float_noise(raw: int, shown: float) -> None:
    """2397 * 0.1 is 239.70000000000002 in floats; the API and the console showed it so."""
    register = reg("level_cm", 0, scale=0.1)
    assert interpret(register, [raw]).value == shown
    assert repr(interpret(register, [raw]).value) == repr(shown)
