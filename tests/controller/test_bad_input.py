"""Bad input: schemathesis over the OpenAPI spec (no 5xx, ever), and hypothesis over the
MQTT ingest (every payload is stored, or refused and counted by reason; nothing crashes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from controller.config import MqttConfig
from controller.fleet.health import HealthTracker
from controller.fleet.ingest import MqttIngest, Rejections
from controller.fleet.messages import Fleet
from controller.forwarding.routing import Router
from controller.service import Controller
from controller.store.sqlite import Store
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from tests.controller.support import config_for


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


# -- MQTT payloads --------------------------------------------------------------------------

KINDS = ["status", "health", "readings", "backlog", "alerts", "cmd-result/c1", "telemetry"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def reading_like() -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {
            "seq": st.integers(min_value=-2, max_value=2**63),
            "ts_ms": st.integers(min_value=-1, max_value=2**62),
            "device": st.text(max_size=70),
            "metric": st.sampled_from(["level_cm", "", "x" * 70]),
            "value": st.none() | st.floats(allow_nan=True) | st.text(max_size=3),
            "quality": st.sampled_from(["good", "bad", "stale", "weird"]),
        }
    )


payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "v": st.sampled_from([1, 2]),
            "session": st.integers(-1, 5),
            "readings": st.lists(reading_like(), max_size=3),
        }
    ).map(lambda d: json.dumps(d).encode()),
)


@pytest.fixture(scope="module")
def ingest(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MqttIngest, Rejections, Store]]:
    path = tmp_path_factory.mktemp("fuzz") / "c.db"
    with Store(path) as store:
        fleet = Fleet(store=store, tracker=HealthTracker(), router=Router([], {}))
        rejections = Rejections()
        yield MqttIngest(MqttConfig(), fleet, rejections=rejections), rejections, store


@given(
    gateway=st.sampled_from(["gw-a", "GW_BAD", "controller", "", "a/b"]),
    kind=st.sampled_from(KINDS),
    payload=payloads,
)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_mqtt_payloads_are_stored_or_counted_never_a_crash(
    ingest: tuple[MqttIngest, Rejections, Store], gateway: str, kind: str, payload: bytes
) -> None:
    mqtt_ingest, rejections, store = ingest
    acks: list[int] = []
    before = sum(rejections.counts().values())
    mqtt_ingest.handle_message(f"edgewatch/v1/{gateway}/{kind}", payload, lambda: acks.append(1))
    store.call(lambda db: None)  # the writer has handled what the message queued
    assert acks == [1]  # every message is acknowledged exactly once
    assert "internal_error" not in rejections.counts()
    assert sum(rejections.counts().values()) >= before
    assert store.writer_alive


def test_the_fuzz_counts_reasons(ingest: tuple[MqttIngest, Rejections, Store]) -> None:
    mqtt_ingest, rejections, _ = ingest
    mqtt_ingest.handle_message("edgewatch/v1/gw-a/readings", b"\xff\xfe", lambda: None)
    assert rejections.counts()["not_json"] >= 1
