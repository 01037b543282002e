"""Acknowledging from a phone through the signed link: no token, no login; used, expired,
forged and replayed links are refused with a page that says so."""

from __future__ import annotations

import re

import httpx

from controller.notify.links import Link, LinkSigner
from edgewatch.waiting import wait_until
from tests.notify.conftest import DutyRig, link_of


def _open(duty: DutyRig, url: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=5) as phone:  # no Authorization header
        return phone.get(url)


def _press(duty: DutyRig, url: str, action: str, seen: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=5) as phone:
        return phone.post(url, data={"action": action, "seen": seen})


def _seen(page: httpx.Response) -> str:
    found = re.search(r"name='seen' value='(\d+)'", page.text)
    assert found, page.text
    return found[1]


def test_the_link_acknowledges_as_that_person_and_stops_the_escalation(duty: DutyRig) -> None:
    duty.reading(150)
    url = link_of(duty.wait_messages("li-wei", 1)[0])
    page = _open(duty, url)
    assert page.status_code == 200
    assert "BLUE alert: Jialing river at Jiefangbei" in page.text
    assert "Acknowledge and start handling" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src" not in page.headers["Content-Security-Policy"]
    done = _press(duty, url, "acknowledge", _seen(page))
    assert done.status_code == 200
    assert "Acknowledged: thank you, Li Wei." in done.text
    assert "Start handling" in done.text
    alert = duty.alert(1)
    assert alert["state"] == "acknowledged"
    ack = next(t for t in alert["trail"] if t["action"] == "acknowledged")
    assert ack["by"] == "Li Wei (grid cq/yuzhong/jiefangbei/grid-1)"
    assert ack["note"] == "by acknowledgement link"
    handling = _press(duty, url, "handling", _seen(done))
    assert "Handling: thank you, Li Wei." in handling.text
    assert duty.alert(1)["state"] == "handling"
    used = _open(duty, url)
    assert used.status_code == 410
    assert "This link has been used" in used.text
    duty.clock.advance(200)  # past every deadline: nobody else is told
    duty.controller.notify.tick()
    assert duty.hook.to("zhang-min") == []
    assert "duty_escalated" not in [t["action"] for t in duty.trail(1)]


def test_a_form_sent_twice_is_refused_as_replayed(duty: DutyRig) -> None:
    duty.reading(150)
    url = link_of(duty.wait_messages("li-wei", 1)[0])
    seen = _seen(_open(duty, url))
    assert _press(duty, url, "acknowledge", seen).status_code == 200
    again = _press(duty, url, "acknowledge", seen)
    assert again.status_code == 409
    assert "This form was already sent" in again.text
    trail = [t["action"] for t in duty.trail(1)]
    assert trail.count("acknowledged") == 1


def test_an_expired_link_is_refused_and_the_alert_goes_on(duty: DutyRig) -> None:
    duty.reading(150)
    url = link_of(duty.wait_messages("li-wei", 1)[0])
    duty.clock.advance(61)
    page = _open(duty, url)
    assert page.status_code == 410
    assert "This link has expired" in page.text
    assert _press(duty, url, "acknowledge", "0").status_code == 410
    assert duty.alert(1)["state"] == "raised"
    duty.wait_messages("zhang-min", 1)


def test_a_forged_or_damaged_link_is_refused(duty: DutyRig) -> None:
    duty.reading(150)
    url = link_of(duty.wait_messages("li-wei", 1)[0])
    token = url.rsplit("/", 1)[1]
    base = url.rsplit("/", 1)[0]
    flipped = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    other_key = LinkSigner(b"another-key-that-is-long-enough-32b").token(Link(1, 2_000_000_000))
    for bad in (flipped, token[:-1], other_key, "x" * 32, "%2e%2e"):
        page = _open(duty, f"{base}/{bad}")
        assert page.status_code in (400, 404), bad
    refused = _open(duty, f"{base}/{flipped}")
    assert "This link is not valid" in refused.text
    assert _press(duty, f"{base}/{flipped}", "acknowledge", "0").status_code == 400
    assert duty.alert(1)["state"] == "raised"
    metrics = duty.client.get("/metrics").text
    assert 'edgewatch_ack_links_refused_total{reason="forged"}' in metrics


def test_someone_elses_link_cannot_act_for_them(duty: DutyRig) -> None:
    """A link is one person's: the trail names whoever's link was used, nobody else."""
    duty.reading(450)  # red: every layer
    grid = link_of(duty.wait_messages("li-wei", 1)[0])
    street = link_of(duty.wait_messages("zhang-min", 1)[0])
    assert grid != street
    _press(duty, street, "ack_handling", _seen(_open(duty, street)))
    wait_until(lambda: duty.alert(1)["state"] == "handling", timeout_s=5)
    acts = [
        (t["action"], t["by"]) for t in duty.trail(1) if t["action"] in ("acknowledged", "handling")
    ]
    assert acts == [
        ("acknowledged", "Zhang Min (street cq/yuzhong/jiefangbei)"),
        ("handling", "Zhang Min (street cq/yuzhong/jiefangbei)"),
    ]
    # The grid's link still shows the alert, and has nothing left to do.
    page = _open(duty, grid)
    assert page.status_code == 200
    assert "<form" not in page.text
    assert "handling by Zhang Min (street cq/yuzhong/jiefangbei)" in page.text


def test_an_oversized_or_strange_form_is_refused(duty: DutyRig) -> None:
    duty.reading(150)
    url = link_of(duty.wait_messages("li-wei", 1)[0])
    with httpx.Client(trust_env=False, timeout=5) as phone:
        big = phone.post(url, content=b"a=" + b"x" * 5000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert big.status_code == 413
        odd = phone.post(url, data={"action": "resolve", "seen": "0"})
        assert odd.status_code == 400
    assert duty.alert(1)["state"] == "raised"
