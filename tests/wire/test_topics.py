"""The topic contract: every kind round-trips through its builder and its parser; anything
else is refused with a TopicError (or GatewayIdError) that says what is wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wire
from wire import (
    CONTROLLER_STATUS_TOPIC,
    PREFIX,
    GatewayIdError,
    Topic,
    TopicError,
    TopicKind,
    gateway_subscription,
    parse_topic,
    topic_for,
    validate_gateway_id,
)

GATEWAY_IDS = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z").filter(
    lambda g: g != "controller"
)
COMMAND_IDS = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
WITH_COMMAND_ID = (TopicKind.CMD, TopicKind.CMD_RESULT)
WITHOUT_COMMAND_ID = tuple(k for k in TopicKind if k not in WITH_COMMAND_ID)


@given(gateway=GATEWAY_IDS, kind=st.sampled_from(WITHOUT_COMMAND_ID))
def test_every_gateway_topic_round_trips(gateway: str, kind: TopicKind) -> None:
    text = topic_for(gateway, kind)
    assert text == f"{PREFIX}/{gateway}/{kind.value}"
    assert parse_topic(text) == Topic(gateway, kind)
    assert str(parse_topic(text)) == text


@given(gateway=GATEWAY_IDS, kind=st.sampled_from(WITH_COMMAND_ID), command_id=COMMAND_IDS)
def test_every_command_topic_round_trips(gateway: str, kind: TopicKind, command_id: str) -> None:
    text = topic_for(gateway, kind, command_id)
    assert text == f"{PREFIX}/{gateway}/{kind.value}/{command_id}"
    assert parse_topic(text) == Topic(gateway, kind, command_id)
    assert str(parse_topic(text)) == text


def test_the_kinds_are_the_documented_ones() -> None:
    """DESIGN.md's topic table: a new kind is a change of the contract, made on purpose."""
    assert {k.value for k in TopicKind} == {
        "status", "health", "readings", "backlog", "alerts", "cmd", "cmd-result",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("topic", "says"),
    [
        ("edgewatch/v2/gw-a/readings", "is not under edgewatch/v1/"),
        ("other/v1/gw-a/readings", "is not under edgewatch/v1/"),
        ("edgewatch/v1/gw-a", "1 levels"),
        ("edgewatch/v1/gw-a/cmd/c1/extra", "4 levels"),
        ("edgewatch/v1/gw-a/telemetry", "unknown kind 'telemetry'"),
        ("edgewatch/v1/gw-a/Readings", "unknown kind 'Readings'"),
        ("edgewatch/v1/GW-A/readings", "is not a DNS label"),
        ("edgewatch/v1/gw_a/readings", "is not a DNS label"),
        ("edgewatch/v1/-gw/readings", "is not a DNS label"),
        ("edgewatch/v1/gw-/readings", "is not a DNS label"),
        ("edgewatch/v1//readings", "is not a DNS label"),
        (f"edgewatch/v1/{'a' * 64}/readings", "is not a DNS label"),
        ("edgewatch/v1/+/readings", "is not a DNS label"),
        ("edgewatch/v1/controller/readings", "is reserved"),
        ("edgewatch/v1/gw-a/cmd", "needs a command id"),
        ("edgewatch/v1/gw-a/cmd-result", "needs a command id"),
        ("edgewatch/v1/gw-a/cmd/+", "needs a command id"),
        ("edgewatch/v1/gw-a/cmd/#", "needs a command id"),
        (f"edgewatch/v1/gw-a/cmd/{'c' * 65}", "needs a command id"),
        ("edgewatch/v1/gw-a/cmd/c.1", "needs a command id"),
        ("edgewatch/v1/gw-a/readings/c1", "takes no command id"),
        ("edgewatch/v1/gw-a/status/", "takes no command id"),
    ],
)
def test_a_topic_outside_the_contract_is_refused_saying_why(topic: str, says: str) -> None:
    with pytest.raises(TopicError, match=says.replace("+", r"\+")):
        parse_topic(topic)


def test_the_controller_status_topic_is_not_a_gateway_topic() -> None:
    """It is the controller's own: ingest compares it before parsing, and parsing refuses
    it, since no gateway may be called 'controller'."""
    assert CONTROLLER_STATUS_TOPIC == "edgewatch/v1/controller/status"
    with pytest.raises(TopicError, match="reserved"):
        parse_topic(CONTROLLER_STATUS_TOPIC)


@pytest.mark.parametrize(
    ("gateway", "kind", "command_id", "error"),
    [
        ("GW", TopicKind.READINGS, None, GatewayIdError),
        ("controller", TopicKind.STATUS, None, GatewayIdError),
        ("gw-a", TopicKind.CMD, None, TopicError),
        ("gw-a", TopicKind.CMD, "a/b", TopicError),
        ("gw-a", TopicKind.HEALTH, "c1", TopicError),
    ],
)
def test_the_builder_refuses_what_the_parser_refuses(
    gateway: str, kind: TopicKind, command_id: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        topic_for(gateway, kind, command_id)


@given(gateway=GATEWAY_IDS)
def test_a_valid_gateway_id_is_returned_as_it_is(gateway: str) -> None:
    assert validate_gateway_id(gateway) == gateway


@pytest.mark.parametrize("gateway", ["", "a" * 64, "Gw", "gw.a", "gw a", "-a", "a-", "controller"])
def test_an_invalid_gateway_id_is_named_in_the_error(gateway: str) -> None:
    with pytest.raises(GatewayIdError, match=repr(gateway)):
        validate_gateway_id(gateway)


def test_subscriptions() -> None:
    assert gateway_subscription() == "edgewatch/v1/+/#"
    assert gateway_subscription(kind="readings") == "edgewatch/v1/+/readings"
    assert gateway_subscription("gw-a", "cmd/+") == "edgewatch/v1/gw-a/cmd/+"
    with pytest.raises(GatewayIdError):
        gateway_subscription("GW-A")


def test_the_package_exports_the_topic_contract() -> None:
    for name in ("PREFIX", "Topic", "TopicKind", "parse_topic", "topic_for", "TopicError"):
        assert name in wire.__all__
