"""Duty people told through Apprise, for real: a JSON webhook receiver and an SMTP server on
loopback; graded routing; escalation by layer; a channel that is down delays nobody else."""

from __future__ import annotations

from edgewatch.waiting import wait_until
from tests.notify.conftest import DutyRig, link_of


def test_a_blue_alert_reaches_the_grid_on_duty_by_webhook_and_email(duty: DutyRig) -> None:
    duty.reading(150)  # blue: the grid only
    [message] = duty.wait_messages("li-wei", 1)
    assert message["title"].startswith("[BLUE] alert #1")
    assert "Li Wei, you are on duty (grid cq/yuzhong/jiefangbei/grid-1)" in message["message"]
    assert "gauge-1 level_cm = 150" in message["message"]
    wait_until(lambda: len(duty.smtp.taken()) == 1, timeout_s=10, message="one e-mail")
    [mail] = duty.smtp.taken()
    assert mail.recipients == ["li-wei@example.org"]
    assert mail.sender == "duty@example.org"
    assert mail.subject == message["title"]
    assert link_of(message) in mail.text
    assert duty.hook.to("zhang-min") == []  # the street is not told of a blue alert
    wait_until(
        lambda: {n["state"] for n in duty.notifications(1)} == {"sent"},
        timeout_s=5,
        message="both notifications recorded as sent",
    )
    actions = [t["action"] for t in duty.trail(1)]
    assert actions[:2] == ["raised", "duty_told"]
    assert actions.count("duty_notified") == 2


def test_an_unacknowledged_alert_climbs_the_layers_one_deadline_at_a_time(duty: DutyRig) -> None:
    duty.reading(150)
    duty.wait_messages("li-wei", 1)
    duty.clock.advance(61)
    [street] = duty.wait_messages("zhang-min", 1)
    assert "Not acknowledged in time: now told to you, Zhang Min (street" in street["message"]
    assert duty.hook.to("chen-jie") == []
    duty.clock.advance(61)
    duty.wait_messages("chen-jie", 1)
    duty.clock.advance(61)
    duty.wait_messages("zhao-lei", 1)
    duty.clock.advance(61)
    wait_until(
        lambda: "duty_escalation_ended" in [t["action"] for t in duty.trail(1)],
        timeout_s=5,
        message="the end of the ladder in the trail",
    )
    assert len(duty.hook.to("li-wei")) == 1  # nobody told twice of a step
    steps = [t["note"] for t in duty.trail(1) if t["action"] == "duty_escalated"]
    assert [s.split(": told ")[1].split(" ")[0] for s in steps] == ["street", "district", "city"]
    assert steps[0].endswith("Zhang Min; nobody on duty at community")


def test_a_red_alert_tells_every_layer_at_once(duty: DutyRig) -> None:
    duty.reading(450)
    for person in ("li-wei", "zhang-min", "chen-jie", "zhao-lei"):
        [message] = duty.wait_messages(person, 1)
        assert message["title"].startswith("[RED]")


def test_a_channel_that_is_down_delays_nobody_else_and_delivers_when_back(
    duty: DutyRig,
) -> None:
    duty.hook.failing = True
    duty.reading(450)  # red: li-wei by webhook and e-mail, three more by webhook
    wait_until(lambda: len(duty.smtp.taken()) == 1, timeout_s=10, message="the e-mail went")
    wait_until(lambda: duty.hook.refused >= 1, timeout_s=10, message="the webhook was tried")
    trail = duty.trail(1)
    failed = [t["note"] for t in trail if t["action"] == "duty_notify_failed"]
    assert failed
    assert "retrying" in failed[0]
    channels = {c["name"]: c for c in duty.client.get("/api/v1/notify/channels").json()}
    assert channels["hook"]["failing"] is True
    assert channels["mail"]["failing"] is False
    assert channels["hook"]["last_error"]
    assert "json://" not in str(channels)
    duty.hook.failing = False

    def everyone_told() -> bool:
        duty.clock.advance(0.5)  # past each backoff
        return len({m["to"] for m in duty.hook.taken()}) == 4

    wait_until(everyone_told, timeout_s=15, interval_s=0.1, message="all four by webhook")
    for person in ("li-wei", "zhang-min", "chen-jie", "zhao-lei"):
        assert len(duty.wait_messages(person, 1)) == 1


def test_the_api_names_channels_but_never_their_urls(duty: DutyRig) -> None:
    body = duty.client.get("/api/v1/notify/channels").text
    assert "hook" in body
    assert "mailto" not in body
    assert "json://" not in body
    rosters = duty.client.get("/api/v1/rosters").text
    assert "li-wei@example.org" in rosters  # the people's addresses, to edit them
    assert "json://" not in rosters
    assert "a-link-secret" not in rosters
