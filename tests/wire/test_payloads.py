"""The payload contract: each model refuses what docs/mqtt-contract.md says it refuses (a
number beyond its bound, NaN and Infinity, unknown keys, a wrong version, an oversized
payload, a bad name) and accepts the edges; ``decode`` says under which reason."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import wire
from wire import (
    MAX_INT,
    MAX_PAYLOAD_BYTES,
    MAX_SEQ,
    MAX_TS_MS,
    CommandRequest,
    CommandResult,
    ControllerStatus,
    EdgeAlert,
    Health,
    PayloadError,
    Reading,
    ReadingBatch,
    Status,
    decode,
    encode,
)
from wire.payloads import (
    MAX_BATCH_READINGS,
    MAX_DEVICES,
    MAX_DURATION_S,
    MAX_EXTRA_INT,
    MAX_INTERVAL_S,
    MAX_MAP_ENTRIES,
    MAX_WHERE_CHARS,
)

CONTRACT_DOC = Path(__file__).parents[2] / "docs" / "mqtt-contract.md"

READING: dict[str, Any] = {
    "seq": 1, "ts_ms": 1_700_000_000_000, "device": "gauge-1", "metric": "level_cm",
    "value": 250.5, "unit": "cm", "quality": "good",
}  # fmt: skip
BATCH: dict[str, Any] = {"v": 1, "session": 1, "readings": [READING]}
STATUS: dict[str, Any] = {
    "v": 1, "state": "online", "session": 3, "ts_ms": 1_700_000_000_000,
    "agent_version": "1.0", "heartbeat_interval_s": 5.0,
}  # fmt: skip
DEVICE: dict[str, Any] = {
    "state": "ok", "reads_ok": 3, "reads_failed": 0, "consecutive_failures": 0,
    "errors": {"timeout": 1}, "last_good_ms": 1_700_000_000_000, "last_error": None,
    "registers": {"supply_v": 12.1},
}  # fmt: skip
HEALTH: dict[str, Any] = {
    "v": 1, "session": 3, "ts_ms": 1_700_000_000_000, "uptime_s": 60.0,
    "heartbeat_interval_s": 5.0, "buffer_rows": 10, "buffer_bytes": 4096,
    "oldest_unsent_age_s": 0.5, "last_seq": 10, "dropped": {"buffer_full": 0},
    "devices": {"gauge-1": DEVICE}, "config_hash": "", "versions": {"agent": "1.0"},
}  # fmt: skip
ALERT: dict[str, Any] = {
    "v": 1, "session": 3, "id": "gw-a:slope-7:1", "point": "slope-7", "kind": "risk",
    "colour": "red", "previous": "green", "ts_ms": 1_700_000_000_000, "device": "gauge-1",
    "metric": "level_cm", "value": 900.0, "seq": 10,
}  # fmt: skip
REQUEST: dict[str, Any] = {
    "v": 1, "id": "c0123", "type": "ping", "args": {}, "deadline_ms": 1_700_000_060_000,
}  # fmt: skip
RESULT: dict[str, Any] = {
    "v": 1, "id": "c0123", "outcome": "succeeded", "detail": "", "ts_ms": 1_700_000_000_000,
}  # fmt: skip
CONTROLLER: dict[str, Any] = {"v": 1, "state": "online", "ts_ms": 1_700_000_000_000}

EXAMPLES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (ReadingBatch, BATCH),
    (Status, STATUS),
    (ControllerStatus, CONTROLLER),
    (Health, HEALTH),
    (EdgeAlert, ALERT),
    (CommandRequest, REQUEST),
    (CommandResult, RESULT),
]
MODEL_IDS = [m.__name__ for m, _ in EXAMPLES]


def raw(document: Any) -> bytes:
    """JSON as a sender may write it, NaN and Infinity included (Python's json does)."""
    return json.dumps(document).encode()


def refused(model: type[BaseModel], document: Any) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        decode(model, document if isinstance(document, bytes) else raw(document))
    return caught.value


def with_path(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with the dotted ``path`` set to ``value``."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    *parents, last = path.split(".")
    node = copy
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return copy


# -- the examples are valid and round-trip --------------------------------------------------


@pytest.mark.parametrize(("model", "document"), EXAMPLES, ids=MODEL_IDS)
def test_each_example_decodes_and_round_trips(
    model: type[BaseModel], document: dict[str, Any]
) -> None:
    decoded = decode(model, raw(document))
    assert decode(model, encode(decoded)) == decoded


@pytest.mark.parametrize(("model", "document"), EXAMPLES, ids=MODEL_IDS)
def test_a_wrong_schema_version_is_refused_as_such(
    model: type[BaseModel], document: dict[str, Any]
) -> None:
    for version in (0, 2, "1", None):
        assert refused(model, {**document, "v": version}).reason == "schema_version"


@pytest.mark.parametrize(
    ("model", "document"),
    [e for e in EXAMPLES if e[0] is not Health],
    ids=MODEL_IDS[:3] + MODEL_IDS[4:],
)
def test_an_unknown_key_is_refused(model: type[BaseModel], document: dict[str, Any]) -> None:
    error = refused(model, {**document, "surprise": 1})
    assert error.reason == "invalid"
    assert "surprise" in error.detail


def test_a_reading_with_an_unknown_key_is_refused() -> None:
    error = refused(ReadingBatch, with_path(BATCH, "readings.0.extra", 1))
    assert (error.reason, error.detail.split(":")[0]) == ("invalid", "readings.0.extra")


def test_a_heartbeat_keeps_what_newer_agents_add() -> None:
    health = decode(Health, raw({**HEALTH, "first_unsent_seq": 11, "disk_free_bytes": 10**12}))
    assert health.model_extra == {"first_unsent_seq": 11, "disk_free_bytes": 10**12}


@pytest.mark.parametrize(("model", "document"), EXAMPLES, ids=MODEL_IDS)
def test_what_is_not_json_is_refused_as_such(
    model: type[BaseModel], document: dict[str, Any]
) -> None:
    for payload in (b"", b"{", b"garbage", raw(document)[:-1], b"\xff\xfe"):
        assert refused(model, payload).reason == "not_json"
    assert refused(model, b"[]").reason == "invalid"


# -- size -------------------------------------------------------------------------------------


def test_a_payload_of_exactly_the_limit_decodes_and_one_byte_more_is_oversized() -> None:
    base = raw({**HEALTH, "pad": ""})
    pad = "x" * (MAX_PAYLOAD_BYTES - len(base))
    exactly = raw({**HEALTH, "pad": pad})
    assert len(exactly) == MAX_PAYLOAD_BYTES
    assert decode(Health, exactly).model_extra == {"pad": pad}
    error = refused(Health, raw({**HEALTH, "pad": pad + "x"}))
    assert error.reason == "oversized"
    assert str(MAX_PAYLOAD_BYTES) in error.detail


def test_the_size_is_checked_before_parsing() -> None:
    """An oversized payload is refused as such even when it is not JSON at all."""
    assert refused(ReadingBatch, b"\x00" * (MAX_PAYLOAD_BYTES + 1)).reason == "oversized"


def test_a_batch_holds_one_to_the_maximum_readings() -> None:
    assert refused(ReadingBatch, {**BATCH, "readings": []}).reason == "invalid"
    readings = [{**READING, "seq": s} for s in range(1, MAX_BATCH_READINGS + 1)]
    assert len(decode(ReadingBatch, raw({**BATCH, "readings": readings})).readings) == 2000
    more = [*readings, {**READING, "seq": MAX_BATCH_READINGS + 1}]
    assert refused(ReadingBatch, {**BATCH, "readings": more}).reason == "invalid"


# -- numbers: bounds ------------------------------------------------------------------------

# (model, example, dotted path, lowest accepted, highest accepted)
BOUNDS: list[tuple[type[BaseModel], dict[str, Any], str, float, float]] = [
    (ReadingBatch, BATCH, "readings.0.seq", 1, MAX_SEQ),
    (ReadingBatch, BATCH, "readings.0.ts_ms", 0, MAX_TS_MS),
    (ReadingBatch, BATCH, "session", 0, MAX_INT),
    (Status, STATUS, "session", 0, MAX_INT),
    (Status, STATUS, "ts_ms", 0, MAX_TS_MS),
    (Status, STATUS, "heartbeat_interval_s", 0, MAX_INTERVAL_S),
    (ControllerStatus, CONTROLLER, "ts_ms", 0, MAX_TS_MS),
    (Health, HEALTH, "session", 0, MAX_INT),
    (Health, HEALTH, "ts_ms", 0, MAX_TS_MS),
    (Health, HEALTH, "uptime_s", 0, MAX_DURATION_S),
    (Health, HEALTH, "heartbeat_interval_s", 0.001, MAX_INTERVAL_S),
    (Health, HEALTH, "buffer_rows", 0, MAX_INT),
    (Health, HEALTH, "buffer_bytes", 0, MAX_INT),
    (Health, HEALTH, "oldest_unsent_age_s", 0, MAX_DURATION_S),
    (Health, HEALTH, "last_seq", 0, MAX_SEQ),
    (Health, HEALTH, "dropped.buffer_full", 0, MAX_INT),
    (Health, HEALTH, "devices.gauge-1.reads_ok", 0, MAX_INT),
    (Health, HEALTH, "devices.gauge-1.reads_failed", 0, MAX_INT),
    (Health, HEALTH, "devices.gauge-1.consecutive_failures", 0, MAX_INT),
    (Health, HEALTH, "devices.gauge-1.errors.timeout", 0, MAX_INT),
    (Health, HEALTH, "devices.gauge-1.last_good_ms", 0, MAX_TS_MS),
    (EdgeAlert, ALERT, "session", 0, MAX_INT),
    (EdgeAlert, ALERT, "ts_ms", 0, MAX_TS_MS),
    (EdgeAlert, ALERT, "seq", 1, MAX_SEQ),
    (CommandRequest, REQUEST, "deadline_ms", 0, MAX_TS_MS),
    (CommandResult, RESULT, "ts_ms", 0, MAX_TS_MS),
]
BOUND_IDS = [f"{m.__name__}.{path}" for m, _, path, _, _ in BOUNDS]


@pytest.mark.parametrize(("model", "document", "path", "low", "high"), BOUNDS, ids=BOUND_IDS)
def test_every_number_is_bounded_and_its_edges_accepted(
    model: type[BaseModel], document: dict[str, Any], path: str, low: float, high: float
) -> None:
    decode(model, raw(with_path(document, path, low)))
    decode(model, raw(with_path(document, path, high)))
    below = low - 1 if isinstance(low, int) and low >= 1 else -1
    above = high + 1 if isinstance(high, int) else high * 1.001
    for value in (below, above):
        error = refused(model, with_path(document, path, value))
        assert error.reason == "out_of_range", (value, error)
        assert error.detail.startswith(path), error.detail


@pytest.mark.parametrize(
    "value",
    [2**63 - 1, 2**63, 2**64, 10**30, -(2**63)],
    ids=["i64max", "2^63", "2^64", "1e30", "-2^63"],
)
def test_the_poison_seqs_of_issue_11_are_out_of_range(value: int) -> None:
    error = refused(ReadingBatch, with_path(BATCH, "readings.0.seq", value))
    assert error.reason == "out_of_range"


def test_a_heartbeat_interval_of_zero_is_no_interval() -> None:
    """A birth may leave it unsaid (0); a heartbeat must give one."""
    assert decode(Status, raw({**STATUS, "heartbeat_interval_s": 0})).heartbeat_interval_s == 0
    assert refused(Health, {**HEALTH, "heartbeat_interval_s": 0}).reason == "out_of_range"


def test_integers_are_integers() -> None:
    assert decode(ReadingBatch, raw(with_path(BATCH, "readings.0.seq", 5.0))).readings[0].seq == 5
    assert refused(ReadingBatch, with_path(BATCH, "readings.0.seq", 5.5)).reason == "invalid"
    assert refused(ReadingBatch, with_path(BATCH, "readings.0.seq", "5x")).reason == "invalid"


# -- numbers: NaN and Infinity --------------------------------------------------------------

FLOATS: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (ReadingBatch, BATCH, "readings.0.value"),
    (Status, STATUS, "heartbeat_interval_s"),
    (Health, HEALTH, "uptime_s"),
    (Health, HEALTH, "heartbeat_interval_s"),
    (Health, HEALTH, "oldest_unsent_age_s"),
    (Health, HEALTH, "devices.gauge-1.registers.supply_v"),
    (Health, HEALTH, "disk_free_bytes"),  # an extra: newer agents' fields obey too
    (Health, HEALTH, "clock.offset_s"),  # nested in an extra
    (EdgeAlert, ALERT, "value"),
]


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf], ids=["NaN", "inf", "-inf"])
@pytest.mark.parametrize(
    ("model", "document", "path"), FLOATS, ids=[f"{m.__name__}.{p}" for m, _, p in FLOATS]
)
def test_nan_and_infinity_are_refused_in_every_float(
    model: type[BaseModel], document: dict[str, Any], path: str, special: float
) -> None:
    if path.startswith("clock."):
        document = {**document, "clock": {"offset_s": 0.0}}
    decode(model, raw(with_path(document, path, 1.5)))
    error = refused(model, with_path(document, path, special))
    assert error.reason == "not_finite", error


def test_an_overflowing_float_literal_is_infinity_and_refused() -> None:
    payload = raw(BATCH).replace(b"250.5", b"1e400")
    assert refused(ReadingBatch, payload).reason == "not_finite"


def test_an_integer_extra_must_fit_64_bits() -> None:
    decode(Health, raw({**HEALTH, "big": MAX_EXTRA_INT, "small": -MAX_EXTRA_INT}))
    assert refused(Health, {**HEALTH, "big": MAX_EXTRA_INT + 1}).reason == "out_of_range"
    assert refused(Health, {**HEALTH, "deep": [{"x": [2**64]}]}).reason == "out_of_range"


def test_a_value_may_be_null_when_the_read_failed() -> None:
    batch = decode(ReadingBatch, raw(with_path(BATCH, "readings.0.value", None)))
    assert batch.readings[0].value is None


# -- names and keys ---------------------------------------------------------------------------

BAD_NAMES = ["", "a" * 65, "gauge 1", "gauge/1", "gauge#1", "gauge+1", "wasser\u00f6", "a\nb"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_device_and_metric_names_follow_the_name_rule(name: str) -> None:
    for path in ("readings.0.device", "readings.0.metric"):
        assert refused(ReadingBatch, with_path(BATCH, path, name)).reason == "invalid"


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_heartbeat_device_keys_follow_the_same_rule(name: str) -> None:
    error = refused(Health, {**HEALTH, "devices": {name: DEVICE}})
    assert error.reason == "invalid"
    assert error.detail.startswith("devices.")
    health = decode(Health, raw({**HEALTH, "devices": {"a" * 64: DEVICE, "x.y:z_1-2": DEVICE}}))
    assert set(health.devices) == {"a" * 64, "x.y:z_1-2"}


def test_a_bad_key_is_never_echoed_in_full() -> None:
    """The key is the sender's: the detail quotes at most a line of it."""
    error = refused(Health, {**HEALTH, "devices": {"!" * 100_000: DEVICE}})
    assert len(error.detail) < MAX_WHERE_CHARS + 200


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("devices", MAX_DEVICES),
        ("dropped", MAX_MAP_ENTRIES),
        ("versions", MAX_MAP_ENTRIES),
        ("devices.gauge-1.errors", MAX_MAP_ENTRIES),
        ("devices.gauge-1.registers", MAX_MAP_ENTRIES),
    ],
)
def test_every_map_in_a_heartbeat_is_bounded(path: str, limit: int) -> None:
    value: Any = {"devices": DEVICE, "versions": "1.0"}.get(path, 1)
    full = {f"k{i}": value for i in range(limit)}
    decode(Health, raw(with_path(HEALTH, path, full)))
    error = refused(Health, with_path(HEALTH, path, {**full, "one-more": value}))
    assert error.reason == "invalid"


@pytest.mark.parametrize(
    ("field", "value"),
    [("dropped", {"": 1}), ("dropped", {"r" * 65: 1}), ("versions", {"agent": "v" * 65})],
)
def test_labels_of_small_maps_are_bounded(field: str, value: dict[str, Any]) -> None:
    assert refused(Health, {**HEALTH, field: value}).reason == "invalid"


@pytest.mark.parametrize("command_id", ["", "c" * 65, "c/1", "c+1", "c 1"])
def test_command_ids_obey_the_topic_rule(command_id: str) -> None:
    assert refused(CommandRequest, {**REQUEST, "id": command_id}).reason == "invalid"
    assert refused(CommandResult, {**RESULT, "id": command_id}).reason == "invalid"


# -- any reading within the bounds round-trips ------------------------------------------------

NAMES = st.from_regex(r"\A[A-Za-z0-9_.:-]{1,64}\Z")
FINITE = st.floats(allow_nan=False, allow_infinity=False)


@given(
    seq=st.integers(1, MAX_SEQ),
    ts_ms=st.integers(0, MAX_TS_MS),
    session=st.integers(0, MAX_INT),
    device=NAMES,
    metric=NAMES,
    value=st.none() | FINITE,
    quality=st.sampled_from(wire.Quality),
)
def test_any_reading_within_the_bounds_round_trips(
    seq: int, ts_ms: int, session: int, device: str, metric: str, value: float | None,
    quality: wire.Quality,
) -> None:  # fmt: skip
    reading = Reading(
        seq=seq, ts_ms=ts_ms, device=device, metric=metric, value=value, quality=quality
    )
    batch = ReadingBatch(session=session, readings=[reading])
    assert decode(ReadingBatch, encode(batch)) == batch


@given(seq=st.integers(MAX_SEQ + 1, 2**70) | st.integers(-(2**70), 0))
def test_any_seq_beyond_the_bounds_is_refused(seq: int) -> None:
    assert refused(ReadingBatch, with_path(BATCH, "readings.0.seq", seq)).reason == "out_of_range"


# -- the docs say what the code does ----------------------------------------------------------


def test_the_contract_page_states_the_bounds_the_code_enforces() -> None:
    text = CONTRACT_DOC.read_text()
    for name, value in {
        "MAX_PAYLOAD_BYTES": MAX_PAYLOAD_BYTES,
        "MAX_INT": MAX_INT,
        "MAX_SEQ": MAX_SEQ,
        "MAX_TS_MS": MAX_TS_MS,
        "MAX_INTERVAL_S": int(MAX_INTERVAL_S),
        "MAX_DURATION_S": int(MAX_DURATION_S),
        "MAX_DEVICES": MAX_DEVICES,
        "MAX_MAP_ENTRIES": MAX_MAP_ENTRIES,
        "MAX_BATCH_READINGS": MAX_BATCH_READINGS,
        "MAX_CONFIG_BYTES": wire.MAX_CONFIG_BYTES,
    }.items():
        row = re.search(rf"^\| `{name}` \| ([0-9,]+) ", text, re.MULTILINE)
        assert row is not None, f"docs/mqtt-contract.md has no row for {name}"
        assert int(row.group(1).replace(",", "")) == value, name
