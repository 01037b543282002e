"""The [notify] config: refused in one line naming the key, never half-taken; channels to
hosts nobody listed are refused (no SSRF); rosters checked against their channels."""

from __future__ import annotations

from typing import Any

import pytest

from controller.config import ConfigError, parse_config
from controller.notify.config import Layer
from controller.refusals import refusal

MAIL = {
    "name": "mail",
    "kind": "email",
    "url": "mailtos://noc:pw@smtp.example.org?from=noc@example.org&to={to}",
}


def parse(notify: dict[str, Any], **extra: Any) -> Any:
    return parse_config({"notify": notify, **extra})


def person(channel: str = "mail", to: str | None = "li@example.org") -> dict[str, Any]:
    contact: dict[str, Any] = {"channel": channel}
    if to is not None:
        contact["to"] = to
    return {"id": "li", "name": "Li", "contacts": [contact]}


@pytest.mark.parametrize(
    ("channel", "problem"),
    [
        ({**MAIL, "url": "mailtos://mail.evil.example?to={to}"}, "'mail.evil.example' is not in"),
        ({"name": "h", "kind": "webhook", "url": "json://169.254.169.254/x"}, "169.254.169.254"),
        ({"name": "h", "kind": "webhook", "url": "json://ok.example?smtp=x"}, "'x' is not in"),
        ({"name": "h", "kind": "webhook", "url": "file:///etc/passwd"}, "scheme 'file'"),
        ({"name": "h", "kind": "webhook", "url": "https://ok.example/x"}, "scheme 'https'"),
        ({"name": "m", "kind": "email", "url": "mailtos://smtp.example.org"}, "must hold {to}"),
        ({"name": "g", "kind": "group", "url": "wecombot://key/{to}"}, "has no {to}"),
        ({"name": "m", "kind": "email", "url": "json://smtp.example.org?:to={to}"}, "mailto"),
    ],
)
def test_a_channel_url_outside_what_is_allowed_is_refused(
    channel: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"allowed_hosts": ["smtp.example.org", "ok.example"], "channels": [channel]})
    assert problem in str(caught.value)
    assert "notify.channels[0]" in str(caught.value)


def test_group_bots_and_listed_hosts_are_taken() -> None:
    config = parse(
        {
            "allowed_hosts": ["smtp.example.org", "sms-gw.example.org"],
            "channels": [
                MAIL,
                {"name": "wecom", "kind": "group", "url": "wecombot://a1b2c3d4e5"},
                {"name": "ding", "kind": "group", "url": "dingtalk://abcdef0123456789"},
                {"name": "feishu", "kind": "group", "url": "feishu://abcdef0123456789"},
                {"name": "sms", "kind": "sms", "url": "json://sms-gw.example.org/send?:to={to}"},
            ],
        }
    )
    assert [c.name for c in config.notify.channels] == ["mail", "wecom", "ding", "feishu", "sms"]


@pytest.mark.parametrize(
    ("contact", "problem"),
    [
        (person(to="not-an-address"), "is not an e-mail address"),
        (person(to=None), "needs 'to'"),
        (person(channel="nope"), "channel 'nope' is not a [[notify.channels]] name"),
        (person(channel="wecom", to="x"), "a group channel takes no 'to'"),
        (person(channel="sms", to="+86 138"), "is not a phone number"),
    ],
)
def test_a_contact_must_fit_its_channel(contact: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(
            {
                "allowed_hosts": ["smtp.example.org", "sms"],
                "channels": [
                    MAIL,
                    {"name": "wecom", "kind": "group", "url": "wecombot://a1b2c3d4e5"},
                    {"name": "sms", "kind": "sms", "url": "json://sms/send?:to={to}"},
                ],
                "rosters": [{"place": "cq/yz/jfb/g1", "people": [contact]}],
            }
        )
    assert problem in str(caught.value)


def test_roster_layers_follow_the_place_depth() -> None:
    base = {"allowed_hosts": ["smtp.example.org"], "channels": [MAIL]}
    config = parse({**base, "rosters": [
        {"place": "cq/yz/jfb/shq", "layer": "community", "people": [person()]},
        {"place": "cq/yz/jfb/shq/g3", "people": [person()]},
        {"place": "cq/yz/jfb/g1", "people": [person()]},
        {"place": "cq", "people": [person()]},
    ]})  # fmt: skip
    layers = [r.resolved_layer for r in config.notify.rosters]
    assert layers == [Layer.COMMUNITY, Layer.GRID, Layer.GRID, Layer.CITY]
    with pytest.raises(ConfigError, match="a place 3 levels deep is a street, not a grid"):
        parse({**base, "rosters": [{"place": "cq/yz/jfb", "layer": "grid", "people": [person()]}]})


def test_rosters_are_bounded_and_their_shifts_name_their_people() -> None:
    base = {"allowed_hosts": ["smtp.example.org"], "channels": [MAIL]}
    crowd = [{**person(), "id": f"p{i}"} for i in range(201)]
    with pytest.raises(ConfigError, match="at most 200"):
        parse({**base, "rosters": [{"place": "cq/a/b/c", "people": crowd}]})
    stranger = {"person": "nobody", "days": ["mon"], "start": "08:00", "end": "20:00"}
    with pytest.raises(ConfigError, match="person 'nobody' is not in people"):
        parse({**base, "rosters": [{"place": "cq/a/b/c", "people": [person()],
                                    "shifts": [stranger]}]})  # fmt: skip
    with pytest.raises(ConfigError, match="not a known IANA time zone"):
        parse({**base, "rosters": [{"place": "cq/a/b/c", "people": [person()],
                                    "timezone": "Mars/Olympus"}]})  # fmt: skip


def test_outside_demo_mode_the_links_need_a_secret_and_https() -> None:
    notify = {"allowed_hosts": ["smtp.example.org"], "channels": [MAIL]}
    config = parse(notify, api={"auth": "tokens"})
    problem = refusal(config, active_tokens=1) or ""
    assert "notify.link_secret_file (or notify.link_secret): required" in problem
    plain = parse({**notify, "link_secret": "x" * 40,
                   "link_base_url": "http://duty.example.org"}, api={"auth": "tokens"})  # fmt: skip
    assert "notify.link_base_url: plain http://" in (refusal(plain, active_tokens=1) or "")
    good = parse({**notify, "link_secret": "x" * 40,
                  "link_base_url": "https://duty.example.org"}, api={"auth": "tokens"})  # fmt: skip
    assert refusal(good, active_tokens=1) is None
