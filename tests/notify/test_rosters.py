"""Who is on duty: weekly shifts (past midnight too), overrides that replace them, time zones."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from controller.notify.config import RosterConfig
from controller.notify.rosters import on_duty_ids

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str, zone: ZoneInfo = SHANGHAI) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() * 1000)


def roster(**extra: object) -> RosterConfig:
    people = [{"id": p, "name": p, "contacts": [{"channel": "hook", "to": p}]}
              for p in ("day", "night", "cover")]  # fmt: skip
    return RosterConfig.model_validate({
        "place": "cq/yz/jfb/g1",
        "people": people,
        "shifts": [
            {"person": "day", "days": ["mon", "tue", "wed", "thu", "fri"],
             "start": "08:00", "end": "20:00"},
            {"person": "night", "days": ["fri"], "start": "20:00", "end": "08:00"},
        ],
        **extra,
    })  # fmt: skip


def test_a_day_shift_covers_its_hours_on_its_days() -> None:
    r = roster()
    assert on_duty_ids(r, at("2026-12-07T08:00")) == {"day"}  # a Monday
    assert on_duty_ids(r, at("2026-12-07T19:59")) == {"day"}
    assert on_duty_ids(r, at("2026-12-07T20:00")) == set()
    assert on_duty_ids(r, at("2026-12-12T10:00")) == set()  # Saturday


def test_a_night_shift_runs_past_midnight_into_the_next_day() -> None:
    r = roster()
    assert on_duty_ids(r, at("2026-12-11T21:00")) == {"night"}  # Friday evening
    assert on_duty_ids(r, at("2026-12-12T03:00")) == {"night"}  # Saturday morning
    assert on_duty_ids(r, at("2026-12-12T08:00")) == set()
    assert on_duty_ids(r, at("2026-12-11T03:00")) == set()  # Friday morning: Thursday's none


def test_an_override_replaces_the_weekly_shifts_while_it_runs() -> None:
    r = roster(overrides=[{"person": "cover", "start": "2026-12-07T12:00",
                           "end": "2026-12-07T14:00"}])  # fmt: skip
    assert on_duty_ids(r, at("2026-12-07T11:59")) == {"day"}
    assert on_duty_ids(r, at("2026-12-07T12:00")) == {"cover"}
    assert on_duty_ids(r, at("2026-12-07T14:00")) == {"day"}


def test_times_are_the_rosters_time_zone_unless_they_carry_an_offset() -> None:
    utc = roster(timezone="UTC")
    assert on_duty_ids(utc, at("2026-12-07T08:30", ZoneInfo("UTC"))) == {"day"}
    assert on_duty_ids(utc, at("2026-12-07T08:30")) == set()  # 00:30 UTC
    offset = roster(overrides=[{"person": "cover", "start": "2026-12-07T00:00+00:00",
                                "end": "2026-12-07T01:00+00:00"}])  # fmt: skip
    assert on_duty_ids(offset, at("2026-12-07T08:30")) == {"cover"}  # 00:30 UTC
