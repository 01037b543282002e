"""The duty roster page: who is on duty now at each layer, the shifts, overrides and channels
of each roster, and an operator's edits, against a controller whose clock the test sets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from edgewatch.broker import Mosquitto
from tests.clock import FakeClock
from tests.console.support import STREET_A, STREET_B, Secured, secured_controller
from tests.console.test_access_pages import log_in
from tests.controller.support import as_

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEDNESDAY_10H = datetime(2026, 12, 9, 10, 0, tzinfo=SHANGHAI)
DASH = "\u2013"  # the page writes ranges with an en dash: "mon\u2013fri"
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
ALL_WEEK = [*WEEKDAYS, "sat", "sun"]
HOOK_URL = "json://127.0.0.1:9/duty?:to={to}"  # nothing is sent: no alert is raised here
SMS_URL = "json://127.0.0.1:9/sms?:to={to}"
GRID_A1 = f"{STREET_A}/grid-1"
GRID_A2 = f"{STREET_A}/grid-2"
GRID_B1 = f"{STREET_B}/grid-1"


def person(pid: str, name: str, **contacts: str) -> dict[str, Any]:
    listed = [{"channel": channel, "to": to} for channel, to in contacts.items()]
    return {"id": pid, "name": name, "contacts": listed or [{"channel": "hook", "to": pid}]}


def shift(pid: str, days: list[str], start: str, end: str) -> dict[str, Any]:
    return {"person": pid, "days": days, "start": start, "end": end}


def all_week(place: str, pid: str, name: str) -> dict[str, Any]:
    return {
        "place": place,
        "people": [person(pid, name)],
        "shifts": [shift(pid, ALL_WEEK, "00:00", "00:00")],
    }


CONFIG_ROSTERS = [
    {
        "place": GRID_A1,
        "name": "Jiefangbei grid 1",
        "people": [
            person("li-wei", "Li Wei", sms="+8613800000000", hook="li-wei"),
            person("wang-fang", "Wang Fang"),
        ],
        "shifts": [
            shift("li-wei", WEEKDAYS, "08:00", "20:00"),
            shift("wang-fang", WEEKDAYS, "20:00", "08:00"),
        ],
    },
    all_week(STREET_A, "zhang-min", "Zhang Min"),
    all_week(GRID_B1, "sun-li", "Sun Li"),
    all_week("cq/yuzhong", "chen-jie", "Chen Jie"),
    all_week("cq", "zhao-lei", "Zhao Lei"),
]
NOTIFY = {
    "link_secret": "a-link-secret-of-at-least-thirty-two-bytes",
    "allowed_hosts": ["127.0.0.1"],
    "channels": [
        {"name": "hook", "kind": "webhook", "url": HOOK_URL},
        {"name": "sms", "kind": "sms", "url": SMS_URL},
    ],
    "rosters": CONFIG_ROSTERS,
}


@dataclass
class Duty:
    secured: Secured
    clock: FakeClock
    admin: httpx.Client

    def open(self, page: Page, token: str, place: str | None = None) -> None:
        page.goto(f"{self.secured.url}/console/")
        log_in(page, self.secured.tokens[token])
        page.locator("#nav").wait_for()
        page.goto(f"{self.secured.url}/console/#/rosters" + (f"?place={place}" if place else ""))
        page.locator("#rosters").wait_for()

    def roster(self, place: str) -> dict[str, Any]:
        found = self.admin.get(f"/api/v1/rosters/{place}")
        assert found.status_code == 200, found.text
        roster: dict[str, Any] = found.json()
        return roster


@pytest.fixture
def duty(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Duty]:
    start_s = WEDNESDAY_10H.timestamp()
    clock = FakeClock(start_s, wall_start_ms=round(start_s * 1000))
    with (
        secured_controller(tmp_path, mosquitto, {"notify": NOTIFY}, clock) as secured,
        as_(secured.url, secured.tokens["admin"]) as admin,
    ):
        yield Duty(secured, clock, admin)


def roster_of(page: Page, place: str) -> Locator:
    return page.locator(f'details.roster[data-place="{place}"]')


def add_person(roster: Locator, pid: str, name: str, channel: str, to: str) -> None:
    """Fill and send the roster's "Add a person" form, as an operator does."""
    add = roster.locator('form[data-edit="add-person"]')
    add.locator('input[data-field="person-id"]').fill(pid)
    add.locator('input[data-field="person-name"]').fill(name)
    add.locator('select[data-field="channel"]').select_option(channel)
    add.locator('input[data-field="to"]').fill(to)
    add.locator("button[type=submit]").click()


def add_override(roster: Locator, start: str, end: str, pid: str | None = None) -> None:
    """Fill and send the roster's "Add a one-off override" form (times on its wall clock)."""
    form = roster.locator('form[data-edit="add-override"]')
    if pid is not None:
        form.locator('select[data-field="person"]').select_option(pid)
    form.locator('input[data-field="start"]').fill(start)
    form.locator('input[data-field="end"]').fill(end)
    form.locator("button[type=submit]").click()


def on_duty_at(page: Page, layer: str) -> str:
    return page.locator(f'#on-duty tr[data-layer="{layer}"] td[data-field="on-duty"]').inner_text()


def test_the_page_shows_who_is_on_duty_now_at_each_layer(duty: Duty, page: Page) -> None:
    duty.open(page, "admin")
    page.locator('#on-duty tr[data-layer="grid"] li[data-person="li-wei"]').wait_for()
    grid = on_duty_at(page, "grid")
    assert "Li Wei" in grid
    assert "Sun Li" in grid
    assert "Wang Fang" not in grid  # her shift is the night one
    assert "Zhang Min" in on_duty_at(page, "street")
    assert "Chen Jie" in on_duty_at(page, "district")
    assert "Zhao Lei" in on_duty_at(page, "city")
    assert on_duty_at(page, "community") == "no roster"

    grid_1 = roster_of(page, GRID_A1)
    assert (
        grid_1.locator('table.people tr[data-person="li-wei"]').get_attribute("data-on-duty")
        == "yes"
    )
    assert (
        grid_1.locator('table.people tr[data-person="wang-fang"]').get_attribute("data-on-duty")
        == "no"
    )
    assert f"mon{DASH}fri" in grid_1.locator("table.shifts").inner_text()
    assert f"20:00{DASH}08:00 next day" in grid_1.locator("table.shifts").inner_text()
    # Each person's channels, by name and address; never a channel's URL.
    channels = grid_1.locator('table.people tr[data-person="li-wei"] .channel')
    assert channels.all_inner_texts() == ["sms +8613800000000", "hook li-wei"]
    text = page.locator("main").inner_text()
    assert "json://" not in text
    assert "127.0.0.1:9" not in text

    # Who is on duty is the controller's answer at its own time: at 21:00 the night shift.
    duty.clock.advance(11 * 3600)
    page.reload()
    page.locator('#on-duty tr[data-layer="grid"] li[data-person="wang-fang"]').wait_for()
    assert "Li Wei" not in on_duty_at(page, "grid")


def test_an_operator_adds_an_override_and_sees_it_take_effect(duty: Duty, page: Page) -> None:
    made = duty.admin.put(
        f"/api/v1/rosters/{GRID_A2}",
        json={
            "people": [person("he", "He Jun"), person("ma", "Ma Lin")],
            "shifts": [shift("he", WEEKDAYS, "08:00", "20:00")],
        },
    )
    assert made.status_code == 200, made.text
    duty.open(page, "op-a", GRID_A2)
    roster = roster_of(page, GRID_A2)
    roster.locator('table.people tr[data-person="he"][data-on-duty="yes"]').wait_for()

    add_override(roster, "2026-12-09T09:00", "2026-12-09T18:00", "ma")
    roster.locator(".message.ok", has_text="added an override of ma").wait_for()
    # An override replaces the weekly pattern while it runs: Ma is on duty, He is not.
    roster.locator('table.people tr[data-person="ma"][data-on-duty="yes"]').wait_for()
    assert roster.locator('table.people tr[data-person="he"]').get_attribute("data-on-duty") == "no"
    assert roster.locator("summary [data-field=on-duty]").inner_text() == "Ma Lin"
    page.locator('#on-duty tr[data-layer="grid"] li[data-person="ma"]').wait_for()
    stored = duty.roster(GRID_A2)
    assert stored["on_duty_now"] == ["ma"]
    assert stored["overrides"] == [
        {"person": "ma", "start": "2026-12-09T09:00:00", "end": "2026-12-09T18:00:00"}
    ]
    assert "2026-12-09 09:00" in roster.locator("table.overrides").inner_text()

    roster.locator('table.overrides button[data-edit="remove-override"]').click()
    roster.locator('table.people tr[data-person="he"][data-on-duty="yes"]').wait_for()
    assert duty.roster(GRID_A2)["overrides"] == []

    # A person with a channel, a weekly shift of theirs, then both removed again.
    add_person(roster, "qian", "Qian Bo", "sms", "+8613900000000")
    roster.locator('table.people tr[data-person="qian"] .channel[data-channel="sms"]').wait_for()
    add_shift = roster.locator('form[data-edit="add-shift"]')
    add_shift.locator('select[data-field="person"]').select_option("qian")
    for day in WEEKDAYS:
        add_shift.locator(f'input[data-day="{day}"]').uncheck()
    add_shift.locator('input[data-day="sat"]').check()
    add_shift.locator('input[data-field="start"]').fill("22:00")
    add_shift.locator('input[data-field="end"]').fill("06:00")
    add_shift.locator("button[type=submit]").click()
    roster.locator(
        'table.shifts tr[data-person="qian"]', has_text=f"22:00{DASH}06:00 next day"
    ).wait_for()
    assert duty.roster(GRID_A2)["shifts"][-1] == shift("qian", ["sat"], "22:00", "06:00")
    roster.locator('table.shifts tr[data-person="qian"] button[data-edit="remove-shift"]').click()
    roster.locator(".message.ok", has_text="removed a shift of qian").wait_for()
    roster.locator('table.people tr[data-person="qian"] button[data-edit="remove-person"]').click()
    roster.locator(".message.ok", has_text="removed Qian Bo").wait_for()
    assert [p["id"] for p in duty.roster(GRID_A2)["people"]] == ["he", "ma"]
    assert len(duty.roster(GRID_A2)["shifts"]) == 1


def test_the_page_bounds_what_it_sends_and_shows_the_apis_refusals(duty: Duty, page: Page) -> None:
    weekdays = [shift("he", WEEKDAYS, "08:00", "20:00")]
    made = duty.admin.put(
        f"/api/v1/rosters/{GRID_A2}", json={"people": [person("he", "He Jun")], "shifts": weekdays}
    )
    assert made.status_code == 200, made.text
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.method) if r.method == "PUT" else None)
    duty.open(page, "op-a", GRID_A2)
    roster = roster_of(page, GRID_A2)
    roster.locator('table.people tr[data-person="he"]').wait_for()

    # What the API bounds, the page bounds before sending: an override past a year.
    add_override(roster, "2026-12-09T09:00", "2027-12-11T09:00")
    roster.locator(".message.error", has_text="longer than a year").wait_for()
    add_override(roster, "2026-12-09T09:00", "2026-12-09T08:00")
    roster.locator(".message.error", has_text="the end is not after the start").wait_for()
    assert requests == []
    assert duty.roster(GRID_A2)["overrides"] == []

    # What only the API can judge comes back as its 422, naming the field.
    add_person(roster, "qian", "Qian Bo", "hook", "qian bo")
    refused = roster.locator(".message.error", has_text="body.people:")
    refused.wait_for()
    assert "channel 'hook': 'to' = 'qian bo': letters, digits" in refused.inner_text()
    assert requests == ["PUT"]

    # Someone else changed the roster since the page read it: refused, shown as it is now.
    before = duty.roster(GRID_A2)
    changed = duty.admin.put(
        f"/api/v1/rosters/{GRID_A2}",
        json={"people": [*before["people"], person("wu", "Wu Lan")], "shifts": before["shifts"]},
        headers={"If-Match": f'"{before["revision"]}"'},
    )
    assert changed.status_code == 200, changed.text
    add_override(roster, "2026-12-09T09:00", "2026-12-09T12:00")
    roster.locator(".message.error", has_text="someone changed this roster").wait_for()
    roster.locator('table.people tr[data-person="wu"]').wait_for()
    assert duty.roster(GRID_A2)["overrides"] == []
    assert [p["id"] for p in duty.roster(GRID_A2)["people"]] == ["he", "wu"]

    # A new roster: the API's word on its time zone, then one made, never over another.
    page.locator("#new-roster > summary").click()
    new = page.locator('form[data-edit="new-roster"]')
    new.locator('input[data-field="place"]').fill(f"{STREET_A}/grid-3")
    new.locator('input[data-field="timezone"]').fill("Mars/Olympus")
    new.locator('input[data-field="person-id"]').fill("ma")
    new.locator('input[data-field="person-name"]').fill("Ma Lin")
    new.locator('input[data-field="to"]').fill("ma")
    new.locator("button[type=submit]").click()
    page.locator(
        "#new-roster .message.error", has_text="'Mars/Olympus' is not a known IANA time zone"
    ).wait_for()
    new.locator('input[data-field="timezone"]').fill("Asia/Shanghai")
    new.locator("button[type=submit]").click()
    page.locator("#new-roster .message.ok", has_text=f"roster of {STREET_A}/grid-3").wait_for()
    assert duty.roster(f"{STREET_A}/grid-3")["people"][0]["id"] == "ma"
    new.locator('input[data-field="place"]').fill(GRID_A2)
    new.locator("button[type=submit]").click()
    page.locator("#new-roster .message.error", has_text="already a duty roster").wait_for()
    assert [p["id"] for p in duty.roster(GRID_A2)["people"]] == ["he", "wu"]
    new.locator('input[data-field="place"]').fill(f"{STREET_B}/grid-7")
    new.locator("button[type=submit]").click()
    page.locator("#new-roster .message.error", has_text="outside the place of token").wait_for()


def test_a_viewer_sees_no_edit_buttons(duty: Duty, page: Page) -> None:
    made = duty.admin.put(
        f"/api/v1/rosters/{STREET_B}/grid-2", json={"people": [person("wu", "Wu Lan")]}
    )
    assert made.status_code == 200, made.text
    duty.open(page, "viewer-b")
    roster = roster_of(page, GRID_B1)
    roster.locator('table.people tr[data-person="sun-li"][data-on-duty="yes"]').wait_for()
    # A roster made through the API, which an operator could change: not this token.
    made_here = roster_of(page, f"{STREET_B}/grid-2")
    assert made_here.get_attribute("data-source") == "api"
    assert made_here.locator('table.people tr[data-person="wu"]').count() == 1
    assert roster.locator("table.shifts").inner_text().count("every day") == 1
    main = page.locator("main")
    for control in ("button", "input", "select", "form", "[data-edit]", "#new-roster"):
        assert main.locator(control).count() == 0, control


def test_a_street_token_sees_only_its_streets_rosters(duty: Duty, page: Page) -> None:
    duty.open(page, "op-a")
    roster_of(page, GRID_A1).wait_for()
    places = page.locator("details.roster").evaluate_all("(all) => all.map(d => d.dataset.place)")
    assert places == [STREET_A, GRID_A1]
    text = page.locator("main").inner_text()
    for elsewhere in ("Sun Li", "Chen Jie", "Zhao Lei", STREET_B):
        assert elsewhere not in text
    assert on_duty_at(page, "district") == "no roster"

    page.goto(f"{duty.secured.url}/console/#/rosters?place={STREET_B}")
    page.locator("#rosters", has_text=f"No duty rosters at or below {STREET_B}").wait_for()
    assert page.locator("details.roster").count() == 0


def test_a_config_roster_is_read_only(duty: Duty, page: Page) -> None:
    made = duty.admin.put(f"/api/v1/rosters/{GRID_A2}", json={"people": [person("he", "He Jun")]})
    assert made.status_code == 200, made.text
    duty.open(page, "op-a")
    configured = roster_of(page, GRID_A1)
    configured.locator('table.people tr[data-person="li-wei"]').wait_for()
    assert configured.get_attribute("data-source") == "config"
    assert "from the config · read-only" in configured.locator("summary").inner_text()
    note = configured.locator('[data-field="read-only"]').inner_text()
    assert "[[notify.rosters]]" in note
    assert "read-only here" in note
    assert configured.locator("[data-edit], button, input, select").count() == 0
    # Beside it, a roster made through the API is the operator's to change.
    assert roster_of(page, GRID_A2).locator('form[data-edit="add-override"]').count() == 1
    assert roster_of(page, GRID_A2).locator('button[data-edit="delete-roster"]').count() == 1
