"""The fast batch encoder: byte for byte what ``encode(ReadingBatch(...))`` writes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import MAX_SEQ, MAX_TS_MS, Quality, Reading, ReadingBatch, decode, encode
from wire.rows import ReadingRow, encode_reading_rows, reading_to_row, row_to_reading

NAME = st.text(alphabet="abcXYZ019_.:-", min_size=1, max_size=64)
UNIT = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)  # any UTF-8 text


@st.composite
def rows(draw: st.DrawFn) -> list[ReadingRow]:
    count = draw(st.integers(min_value=1, max_value=40))
    first = draw(st.integers(min_value=1, max_value=MAX_SEQ - 40))
    out: list[ReadingRow] = []
    for i in range(count):
        quality = draw(st.sampled_from(Quality))
        value = (
            None
            if quality is Quality.BAD
            else draw(st.none() | st.floats(allow_nan=False, allow_infinity=False))
        )
        out.append(
            (
                first + i,
                draw(st.integers(min_value=0, max_value=MAX_TS_MS)),
                draw(NAME),
                draw(NAME),
                value,
                draw(UNIT),
                quality.value,
            )
        )
    return out


def validated(session: int, batch_rows: list[ReadingRow]) -> ReadingBatch:
    """The contract's own path: every row validated as a Reading."""
    readings = [
        Reading.model_validate(dict(zip(Reading.model_fields, r, strict=True))) for r in batch_rows
    ]
    return ReadingBatch(session=session, readings=readings)


@settings(max_examples=300)
@given(session=st.integers(min_value=0, max_value=2**40), batch_rows=rows())
def test_rows_encode_to_the_same_bytes_as_the_model(
    session: int, batch_rows: list[ReadingRow]
) -> None:
    assert encode_reading_rows(session, batch_rows) == encode(validated(session, batch_rows))


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 250.1, 1e15, 1e16, 1e-5, 1.5e-7, 5e-324, 1.7976931348623157e308, None],
)  # fmt: skip
def test_float_edge_cases_encode_like_the_model(value: float | None) -> None:
    row: ReadingRow = (7, 1_700_000_000_000, "gauge-1", "level_cm", value, '°C\n"x"', "good")
    assert encode_reading_rows(3, [row]) == encode(validated(3, [row]))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_row_never_holds_a_non_finite_value(value: float) -> None:
    """Rows are validated as Readings when stored, and a Reading refuses NaN and Infinity:
    the fast encoder never meets them."""
    row: ReadingRow = (7, 1_700_000_000_000, "gauge-1", "level_cm", value, "cm", "good")
    with pytest.raises(ValueError, match="finite"):
        validated(3, [row])


def test_a_drained_batch_decodes_back_to_its_rows() -> None:
    batch_rows: list[ReadingRow] = [
        (seq, 1_700_000_000_000 + seq, f"gauge-{seq % 10}", "level_cm", 250.0 + seq / 10, "cm",
         "good")
        for seq in range(1, 501)
    ]  # fmt: skip
    batch = decode(ReadingBatch, encode_reading_rows(9, batch_rows))
    assert batch.session == 9
    assert [reading_to_row(r) for r in batch.readings] == batch_rows
    assert [reading_to_row(row_to_reading(r)) for r in batch_rows] == batch_rows


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        encode_reading_rows(1, [])
