"""The ``[notify]`` config: channels, duty rosters, routing rules and the acknowledgement
links (docs/notify.md).

```toml
[notify]
link_base_url = "https://edgewatch.example.org"   # what a phone opens; default: the API's URL
link_secret_file = "/etc/edgewatch/link.key"      # signs the links (or link_secret = "...")
allowed_hosts = ["smtp.example.org", "sms-gw.example.org"]  # hosts a channel URL may name

[[notify.channels]]
name = "mail"
kind = "email"                  # email, sms, group (a WeCom/DingTalk/Feishu group bot), webhook
url = "mailtos://noc:PASSWORD@smtp.example.org?from=noc@example.org&to={to}"

[[notify.routes]]               # first match wins; these are the defaults
colours = ["blue"]
layers = ["grid"]
[[notify.routes]]
colours = ["yellow"]
layers = ["grid", "street"]
[[notify.routes]]
colours = ["orange", "red"]
layers = ["grid", "community", "street", "district", "city"]

[[notify.rosters]]
place = "cq/yuzhong/jiefangbei/grid-1"
timezone = "Asia/Shanghai"
[[notify.rosters.people]]
id = "li-wei"
name = "Li Wei"
contacts = [{channel = "mail", to = "li@example.org"}]
[[notify.rosters.shifts]]      # weekly; an end at or before the start runs past midnight
person = "li-wei"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "08:00"
end = "20:00"
[[notify.rosters.overrides]]   # one-offs: while one runs, the weekly shifts do not
person = "li-wei"
start = 2026-12-24T20:00:00
end = 2026-12-25T08:00:00
```

Channel URLs are Apprise URLs and may hold credentials: they live in the config only, are
never logged and never answered by the API (which names a channel, never its URL).
"""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from controller.config_types import Place, Section
from controller.notify.channels import ChannelKind, check_address, check_channel_url
from wire.risk import Category, Colour

MAX_PEOPLE_PER_ROSTER = 200
MAX_SHIFTS_PER_ROSTER = 1000
MAX_OVERRIDES_PER_ROSTER = 500
MAX_CONTACTS_PER_PERSON = 4
MAX_ROSTERS = 20_000
MAX_CHANNELS = 1000

ChannelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
PersonId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
PersonName = Annotated[str, Field(min_length=1, max_length=64)]
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]


class Layer(StrEnum):
    """Where a duty roster sits, bottom up: escalation climbs this ladder."""

    GRID = "grid"
    COMMUNITY = "community"
    STREET = "street"
    DISTRICT = "district"
    CITY = "city"

    @property
    def rank(self) -> int:
        return LAYER_ORDER.index(self)


LAYER_ORDER = (Layer.GRID, Layer.COMMUNITY, Layer.STREET, Layer.DISTRICT, Layer.CITY)
# What a place path's depth allows: a 4-level path is a grid under its street, or a community
# with grids below it (5 levels).
LAYERS_AT_DEPTH: dict[int, tuple[Layer, ...]] = {
    1: (Layer.CITY,),
    2: (Layer.DISTRICT,),
    3: (Layer.STREET,),
    4: (Layer.GRID, Layer.COMMUNITY),
    5: (Layer.GRID,),
}


def place_depth(place: str) -> int:
    return place.count("/") + 1


class Day(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def weekday(self) -> int:
        return list(Day).index(self)


class ChannelConfig(Section):
    name: ChannelName
    kind: ChannelKind
    url: Annotated[str, Field(min_length=4, max_length=2048)]


class Contact(Section):
    """How to reach one person: a channel by name and, for e-mail and SMS, their address."""

    channel: ChannelName
    to: Annotated[str, Field(min_length=1, max_length=254)] | None = None


class Person(Section):
    id: PersonId
    name: PersonName
    contacts: Annotated[list[Contact], Field(min_length=1, max_length=MAX_CONTACTS_PER_PERSON)]


class WeeklyShift(Section):
    """Every week on ``days``, from ``start`` to ``end`` in the roster's time zone; an end at
    or before the start runs past midnight into the next day."""

    person: PersonId
    days: Annotated[list[Day], Field(min_length=1, max_length=7)]
    start: ClockTime
    end: ClockTime

    def start_time(self) -> time:
        return _clock(self.start)

    def end_time(self) -> time:
        return _clock(self.end)


class Override(Section):
    """A one-off: ``person`` is on duty from ``start`` to ``end`` (local times of the roster
    unless they carry an offset), and while any override runs, the weekly shifts do not."""

    person: PersonId
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.end <= self.start:
            raise ValueError(f"override of {self.person!r}: end is not after start")
        if (self.end - self.start).days > 366:
            raise ValueError(f"override of {self.person!r}: longer than a year")
        return self


class RosterBody(Section):
    """A roster without its place: what the API's PUT takes."""

    layer: Layer | None = None  # default: from the place's depth (4 levels: a grid)
    name: Annotated[str, Field(max_length=128)] = ""
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "Asia/Shanghai"
    people: Annotated[list[Person], Field(min_length=1, max_length=MAX_PEOPLE_PER_ROSTER)]
    shifts: Annotated[list[WeeklyShift], Field(max_length=MAX_SHIFTS_PER_ROSTER)] = []
    overrides: Annotated[list[Override], Field(max_length=MAX_OVERRIDES_PER_ROSTER)] = []

    @model_validator(mode="after")
    def _consistent(self) -> RosterBody:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA time zone") from None
        ids = [p.id for p in self.people]
        seen: set[str] = set()
        for person in ids:
            if person in seen:
                raise ValueError(f"people: {person!r} is listed twice")
            seen.add(person)
        named = [("shifts", i, s.person) for i, s in enumerate(self.shifts)]
        named += [("overrides", i, o.person) for i, o in enumerate(self.overrides)]
        for kind, index, person in named:
            if person not in seen:
                raise ValueError(f"{kind}[{index}]: person {person!r} is not in people")
        return self

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class RosterConfig(RosterBody):
    place: Place

    @model_validator(mode="after")
    def _layer_fits_place(self) -> RosterConfig:
        allowed = LAYERS_AT_DEPTH[place_depth(self.place)]
        if self.layer is not None and self.layer not in allowed:
            names = " or ".join(layer.value for layer in allowed)
            raise ValueError(
                f"roster {self.place!r}: a place {place_depth(self.place)} levels deep is a"
                f" {names}, not a {self.layer.value}"
            )
        return self

    @property
    def resolved_layer(self) -> Layer:
        return self.layer or LAYERS_AT_DEPTH[place_depth(self.place)][0]


class NotifyRoute(Section):
    """Who is told at once for an alert of these colours (and categories): the duty people
    of these layers; unacknowledged after ``escalate_after_s`` (default: the colour's
    ``[alert_routing]`` deadline), the next layer up is told."""

    colours: Annotated[list[Colour], Field(min_length=1)]
    categories: list[Category] = []  # empty: every category
    layers: Annotated[list[Layer], Field(min_length=1)]
    escalate_after_s: Annotated[float, Field(gt=0, le=86400)] | None = None

    def matches(self, colour: Colour, category: str) -> bool:
        return colour in self.colours and (
            not self.categories or category in {c.value for c in self.categories}
        )


DEFAULT_ROUTES = (
    NotifyRoute(colours=[Colour.BLUE], layers=[Layer.GRID]),
    NotifyRoute(colours=[Colour.YELLOW], layers=[Layer.GRID, Layer.STREET]),
    NotifyRoute(colours=[Colour.ORANGE, Colour.RED], layers=list(LAYER_ORDER)),
)


class NotifyConfig(Section):
    link_base_url: (
        Annotated[str, Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", max_length=512)] | None
    ) = None
    link_secret: Annotated[str, Field(min_length=32, max_length=512)] | None = None
    link_secret_file: Path | None = None
    allowed_hosts: Annotated[
        list[Annotated[str, Field(max_length=253)]], Field(max_length=256)
    ] = []
    request_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    backoff_initial_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    backoff_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    give_up_after_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 86400.0
    senders: Annotated[int, Field(ge=1, le=64)] = 4
    in_flight_per_channel: Annotated[int, Field(ge=1, le=64)] = 2
    channels: Annotated[list[ChannelConfig], Field(max_length=MAX_CHANNELS)] = []
    routes: list[NotifyRoute] = list(DEFAULT_ROUTES)
    rosters: Annotated[list[RosterConfig], Field(max_length=MAX_ROSTERS)] = []

    @model_validator(mode="after")
    def _consistent(self) -> NotifyConfig:
        if self.link_secret is not None and self.link_secret_file is not None:
            raise ValueError("notify.link_secret and notify.link_secret_file: set one, not both")
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("notify.backoff_initial_s is above notify.backoff_max_s")
        channels: dict[str, ChannelConfig] = {}
        for index, channel in enumerate(self.channels):
            if channel.name in channels:
                raise ValueError(f"notify.channels[{index}].name: {channel.name!r} is twice")
            problem = check_channel_url(channel.url, channel.kind, self.allowed_hosts)
            if problem is not None:
                raise ValueError(f"notify.channels[{index}] ({channel.name!r}): {problem}")
            channels[channel.name] = channel
        places: set[str] = set()
        for index, roster in enumerate(self.rosters):
            if roster.place in places:
                raise ValueError(f"notify.rosters[{index}].place: {roster.place!r} is twice")
            places.add(roster.place)
            problem = contacts_problem(roster, {n: c.kind for n, c in channels.items()})
            if problem is not None:
                raise ValueError(f"notify.rosters[{index}] ({roster.place!r}): {problem}")
        return self

    def channel_kinds(self) -> dict[str, ChannelKind]:
        return {c.name: c.kind for c in self.channels}


def contacts_problem(roster: RosterBody, channels: dict[str, ChannelKind]) -> str | None:
    """Every contact names a configured channel, with the address its kind needs."""
    for person in roster.people:
        for contact in person.contacts:
            kind = channels.get(contact.channel)
            if kind is None:
                known = ", ".join(sorted(channels)) or "none configured"
                return (
                    f"person {person.id!r}: channel {contact.channel!r} is not a"
                    f" [[notify.channels]] name ({known})"
                )
            problem = check_address(kind, contact.to)
            if problem is not None:
                return f"person {person.id!r}, channel {contact.channel!r}: {problem}"
    return None


def _clock(text: str) -> time:
    if text == "24:00":
        return time.max
    hours, minutes = (int(part) for part in re.split(":", text))
    return time(hours, minutes)
