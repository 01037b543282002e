"""Bad input: schemathesis over the OpenAPI spec (no 5xx, ever), and hypothesis over the
MQTT ingest: valid batches with one field mutated at a time, each mutation either still
valid (and exactly its readings stored) or invalid (nothing stored, exactly one refusal
counted under its reason); and arbitrary bytes on every topic kind, never a crash."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel

import wire
from controller.config import MqttConfig
from controller.fleet.health import HealthTracker
from controller.fleet.ingest import IngestRole, MqttIngest, Rejections
from controller.fleet.messages import Fleet
from controller.forwarding.routing import Router
from controller.service import Controller
from controller.store.sqlite import Lane, Store
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import config_for
from wire.payloads import MAX_INT, MAX_SEQ, MAX_TS_MS


@pytest.fixture
def running_api(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[str]:
    config = config_for(tmp_path, mosquitto, gateways={"gw-a": "cq/yuzhong/jiefangbei"})
    with Controller(config) as controller:
        wait_until(lambda: controller.mqtt_connected, timeout_s=5, message="subscribed")
        yield controller.api_url


def test_no_input_makes_the_api_answer_5xx(running_api: str) -> None:
    """Every operation of the OpenAPI spec, with generated (valid and invalid) input."""
    schema = schemathesis.openapi.from_url(f"{running_api}/openapi.json")
    server_errors: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            response = case.call(base_url=running_api, timeout=10)
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}:"
                    f" {response.text[:200]}"
                )

        call()
    assert operations >= 25
    assert server_errors == []


# -- MQTT payloads: one mutation at a time -------------------------------------------------

MISSING = object()  # a mutation that deletes the field
TS_MS = 1_700_000_000_000
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"
names = st.text(NAME_CHARS, min_size=1, max_size=64)
bad_names = st.one_of(
    st.just(""),
    st.text(NAME_CHARS, min_size=65, max_size=80),
    st.builds(lambda a, c, b: a + c + b, names, st.sampled_from(" /#+\u00e9\n\"'"), names),
    st.integers(0, 9),
    st.none(),
    st.lists(names, max_size=1),
)
not_numbers: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.text(max_size=3).filter(lambda t: not _numeric(t)),
    st.lists(st.integers(), max_size=1),
    st.fixed_dictionaries({}),
)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


NOTHING: st.SearchStrategy[object] = st.nothing()


@dataclass(frozen=True)
class Field:
    """One field of the contract: values that keep a batch valid, values that make it invalid
    (each alone, so the reason is known: ``invalid`` for a wrong shape, ``out_of_range`` for a
    number beyond the contract's bounds, ``not_finite`` for NaN and Infinity), and whether
    leaving the field out is valid. Strings or booleans coerced to numbers are in no list:
    tests/wire/test_payloads.py pins those down.
    """

    valid: st.SearchStrategy[object]
    invalid: st.SearchStrategy[object]
    optional: bool = False
    out_of_range: st.SearchStrategy[object] = NOTHING
    not_finite: st.SearchStrategy[object] = NOTHING


not_finite = st.sampled_from([math.nan, math.inf, -math.inf])


READING_FIELDS = {
    "seq": Field(
        valid=st.integers(1, 2**31),
        invalid=st.one_of(st.just(1.5), not_numbers),
        out_of_range=st.one_of(st.integers(max_value=0), st.integers(MAX_SEQ + 1, 2**64)),
    ),
    "ts_ms": Field(
        valid=st.integers(1_500_000_000_000, 2_000_000_000_000),
        invalid=st.one_of(st.just(0.5), not_numbers),
        out_of_range=st.one_of(st.integers(-(2**40), -1), st.integers(MAX_TS_MS + 1, 2**64)),
    ),
    "device": Field(valid=names, invalid=bad_names),
    "metric": Field(valid=names, invalid=bad_names),
    "value": Field(
        valid=st.one_of(st.none(), st.floats(-1e6, 1e6), st.integers(-(10**6), 10**6)),
        invalid=st.one_of(
            st.text(max_size=3).filter(lambda t: not _numeric(t)),
            st.lists(st.integers(), max_size=1),
            st.fixed_dictionaries({}),
        ),
        not_finite=not_finite,
    ),
    "unit": Field(
        valid=st.text(max_size=16),
        invalid=st.one_of(st.text(min_size=17, max_size=40), st.none(), st.integers(0, 9)),
        optional=True,
    ),
    "quality": Field(
        valid=st.sampled_from([q.value for q in wire.Quality]),
        invalid=st.one_of(
            st.sampled_from(["", "GOOD", "weird", "ok"]), st.none(), st.integers(0, 3)
        ),
        optional=True,
    ),
}
BATCH_FIELDS = {
    "session": Field(
        valid=st.integers(0, 2**31),
        invalid=st.one_of(st.just(2.5), not_numbers),
        out_of_range=st.one_of(st.integers(max_value=-1), st.integers(MAX_INT + 1, 2**64)),
    ),
    "readings": Field(
        valid=st.nothing(),  # the readings are mutated one by one instead
        invalid=st.one_of(
            st.just([]), st.none(), st.just({}), st.text(max_size=3), st.just([1, 2])
        ),
    ),
}


@dataclass(frozen=True)
class Case:
    """A batch as a gateway would send it, with at most one thing changed."""

    topic: str
    payload: bytes
    lane: Lane | None  # where its readings go when valid
    readings: int  # how many readings it stores when valid (distinct seqs)
    reason: str | None  # the refusal it must be counted under; None: valid


_gateways = itertools.count(1)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    gateway = f"gw-f{next(_gateways)}"
    count = draw(st.integers(1, 4))
    readings: list[dict[str, object]] = [
        {"seq": seq, "ts_ms": TS_MS + seq, "device": "gauge-1", "metric": "level_cm",
         "value": 250.0 + seq, "unit": "cm", "quality": "good"}
        for seq in range(1, count + 1)
    ]  # fmt: skip
    batch: dict[str, object] = {"v": 1, "session": 1, "readings": readings}
    kind = draw(st.sampled_from([wire.TopicKind.READINGS, wire.TopicKind.BACKLOG]))
    topic = f"edgewatch/v1/{gateway}/{kind.value}"
    reason: str | None = None
    # Readings' fields (the most of them) twice as often as the rest; "none": unchanged.
    where = draw(
        st.sampled_from(["reading", "reading", "batch", "v", "extra", "topic", "bytes", "none"])
    )
    if where in ("reading", "batch"):
        fields = READING_FIELDS if where == "reading" else BATCH_FIELDS
        name = draw(st.sampled_from(sorted(fields)))
        target = readings[draw(st.integers(0, count - 1))] if where == "reading" else batch
        field = fields[name]
        choices = ["valid", "valid", "invalid", "missing"]
        choices += [] if field.out_of_range.is_empty else ["out_of_range"]
        choices += [] if field.not_finite.is_empty else ["not_finite"]
        choice = draw(st.sampled_from(choices))
        if choice == "valid" and not field.valid.is_empty:
            target[name] = draw(field.valid)
        elif choice == "missing":
            del target[name]
            reason = None if field.optional else "invalid"
        elif choice in ("out_of_range", "not_finite"):
            target[name] = draw(getattr(field, choice))
            reason = choice
        else:
            target[name] = draw(field.invalid)
            reason = "invalid"
    elif where == "v":
        version = draw(st.sampled_from([MISSING, 0, 2, None, 1.5, "v1"]))
        if version is MISSING:
            del batch["v"]  # the schema version defaults to 1
        else:
            batch["v"] = version
            reason = "schema_version"
    elif where == "extra":
        target = readings[0] if draw(st.booleans()) else batch
        target[draw(st.sampled_from(["extra", "Seq", "ts", "vv"]))] = draw(st.integers(0, 9))
        reason = "invalid"
    elif where == "topic":
        level = draw(st.sampled_from(["GW_BAD", "controller", "a" * 64, "-gw", "telemetry"]))
        topic = (
            f"edgewatch/v1/{gateway}/{level}"
            if level == "telemetry"
            else f"edgewatch/v1/{level}/{kind.value}"
        )
        reason = "unknown_topic"
    payload = json.dumps(batch).encode()
    if where == "bytes":
        how = draw(st.sampled_from(["truncated", "not_utf8", "oversized"]))
        if how == "truncated":
            payload = payload[: draw(st.integers(0, len(payload) - 1))]
            reason = "not_json"
        elif how == "not_utf8":
            payload = b"\xff" + payload
            reason = "not_json"
        else:  # still valid JSON, only too big: the size is checked before parsing
            payload += b" " * (wire.MAX_PAYLOAD_BYTES - len(payload) + 1)
            reason = "oversized"
    # The store keeps one reading per (gateway, seq): a valid seq mutation may repeat one.
    stored = len({r["seq"] for r in readings}) if reason is None else 0
    lane = Lane.LIVE if kind is wire.TopicKind.READINGS else Lane.BACKLOG
    return Case(topic, payload, lane, stored, reason)


class Sessions:
    """The controller's two MQTT sessions over one store, as the broker feeds them: every
    message goes to both; each handles its own lanes and the backlog session counts
    unknown topics."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rejections = Rejections()
        fleet = Fleet(store=store, tracker=HealthTracker(), router=Router([], {}))
        self.ingests = [
            MqttIngest(MqttConfig(), fleet, rejections=self.rejections, role=role)
            for role in IngestRole
        ]

    def deliver(self, topic: str, payload: bytes) -> None:
        for ingest in self.ingests:
            acks: list[int] = []
            ingest.handle_message(topic, payload, lambda acks=acks: acks.append(1))  # type: ignore[misc]
            self.store.call(lambda db: None)  # what the message queued is written
            assert acks == [1], f"{ingest.role.value} session acked {len(acks)} times"

    def stored_by_lane(self) -> Counter[str]:
        rows = self.store.read(
            lambda conn: conn.execute(
                "SELECT lane, count(*) FROM readings GROUP BY lane"
            ).fetchall()
        )
        return Counter(dict(rows))


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sessions]:
    with Store(tmp_path_factory.mktemp("fuzz") / "c.db") as store:
        yield Sessions(store)


@given(case=cases())
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_each_mutation_of_a_valid_batch_is_stored_exactly_or_counted_under_its_reason(
    sessions: Sessions, case: Case
) -> None:
    stored_before = sessions.stored_by_lane()
    refused_before = Counter(sessions.rejections.counts())
    sessions.deliver(case.topic, case.payload)
    stored = sessions.stored_by_lane() - stored_before
    refused = Counter(sessions.rejections.counts()) - refused_before
    if case.reason is None:
        assert refused == Counter(), "a valid batch was refused"
        assert stored == Counter({case.lane: case.readings})
    else:
        assert stored == Counter(), "an invalid batch stored readings"
        assert refused == Counter({case.reason: 1})
    assert sessions.store.writer_alive


def test_the_mutations_reach_every_outcome() -> None:
    """The strategy is no stronger than its spread: each outcome must come up."""
    seen: Counter[str] = Counter()

    @given(case=cases())
    @settings(max_examples=400, database=None, derandomize=True)
    def collect(case: Case) -> None:
        seen[case.reason or f"valid {case.lane}"] += 1

    collect()
    outcomes = {"valid live", "valid backlog", "invalid", "schema_version", "unknown_topic",
                "not_json", "oversized", "out_of_range", "not_finite"}  # fmt: skip
    assert outcomes <= set(seen), seen
    assert seen["valid live"] + seen["valid backlog"] >= 400 // 4, seen  # ~30 %


# -- MQTT payloads: arbitrary bytes on every topic kind -------------------------------------

KINDS: dict[str, type[BaseModel]] = {
    "status": wire.Status,
    "health": wire.Health,
    "readings": wire.ReadingBatch,
    "backlog": wire.ReadingBatch,
    "alerts": wire.EdgeAlert,
    "cmd-result/c1": wire.CommandResult,
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@given(kind=st.sampled_from(sorted(KINDS)), payload=payloads)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_arbitrary_bytes_on_every_topic_are_handled_or_counted_once_never_a_crash(
    sessions: Sessions, kind: str, payload: bytes
) -> None:
    """Whatever the contract's decoder refuses is counted once under the reason it gives;
    what it takes is handled and counted nowhere."""
    before = Counter(sessions.rejections.counts())
    sessions.deliver(f"edgewatch/v1/gw-a/{kind}", payload)
    refused = Counter(sessions.rejections.counts()) - before
    assert refused == Counter(contract_refusal(kind, payload))
    assert sessions.store.writer_alive


def contract_refusal(kind: str, payload: bytes) -> dict[str, int]:
    """{reason: 1} if the contract's decoder refuses ``payload`` on ``kind``, else {}."""
    if kind == "status" and not payload:  # an empty retained status only clears it
        return {}
    try:
        decoded: BaseModel = wire.decode(KINDS[kind], payload)
    except wire.PayloadError as exc:
        return {exc.reason: 1}
    if isinstance(decoded, wire.CommandResult) and decoded.id != "c1":
        return {"invalid": 1}  # the answer of another command than its topic's
    return {}


def test_the_fuzz_counts_reasons(sessions: Sessions) -> None:
    before = sessions.rejections.counts().get("not_json", 0)
    sessions.deliver("edgewatch/v1/gw-a/readings", b"\xff\xfe")
    assert sessions.rejections.counts()["not_json"] == before + 1
