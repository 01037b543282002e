"""Readings batches straight from row tuples: the fast path of ``encode(ReadingBatch(...))``.

A stored reading is a row ``(seq, ts_ms, device, metric, value, unit, quality)`` (the agent's
buffer columns, quality as its string value). Rows that were validated as ``Reading`` when
they were stored need no model objects to be sent again: ``encode_reading_rows`` serialises
them with pydantic-core's own JSON serializer (the one ``BaseModel.model_dump_json`` uses),
so the bytes are exactly those of ``encode(ReadingBatch(session=..., readings=[...]))``:
same key order, same float and string formatting. A row never holds NaN or Infinity (a
``Reading`` refuses them); were one to slip in, it would go as ``null``, as pydantic's default
``ser_json_inf_nan`` writes it. tests/wire/test_rows.py checks the equivalence.
"""

from __future__ import annotations

from collections.abc import Sequence

import pydantic_core

from wire.payloads import SCHEMA_VERSION, Quality, Reading

ReadingRow = tuple[int, int, str, str, float | None, str, str]
# Reading's fields in declaration order: the order model_dump_json writes them in, and the
# order of a row's columns.
READING_FIELDS: tuple[str, ...] = tuple(Reading.model_fields)


def encode_reading_rows(session: int, rows: Sequence[ReadingRow]) -> bytes:
    """The JSON of ``ReadingBatch(session=session, readings=rows)``, without model objects.

    The rows must already satisfy ``Reading`` (they were validated when stored)."""
    if not rows:
        raise ValueError("a readings batch holds at least one reading")
    batch = {
        "v": SCHEMA_VERSION,
        "session": session,
        "readings": [dict(zip(READING_FIELDS, row, strict=True)) for row in rows],
    }
    return pydantic_core.to_json(batch, inf_nan_mode="null")


def row_to_reading(row: ReadingRow) -> Reading:
    """A ``Reading`` from a stored (already validated) row, without validating it again."""
    seq, ts_ms, device, metric, value, unit, quality = row
    return Reading.model_construct(
        seq=seq,
        ts_ms=ts_ms,
        device=device,
        metric=metric,
        value=value,
        unit=unit,
        quality=Quality(quality),
    )


def reading_to_row(reading: Reading) -> ReadingRow:
    return (
        reading.seq,
        reading.ts_ms,
        reading.device,
        reading.metric,
        reading.value,
        reading.unit,
        reading.quality.value,
    )
