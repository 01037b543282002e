"""Pure parts of the Modbus RTU driver: request planning and register decoding."""

from __future__ import annotations

import math

import pytest

from drivers.modbus_rtu import RegisterConfig, RegisterTable, RegisterType, WordOrder
from drivers.modbus_rtu.codec import decode_raw, decode_value, plan_blocks


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
