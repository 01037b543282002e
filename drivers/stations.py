"""The contract of station drivers: stations that push their reports to a centre that listens.

Hydrological remote stations (SL651-2014) and environmental data loggers (HJ212-2017) dial
in to the gateway (TCP) or talk on a serial line wired to it, and push; the gateway answers
as their standard asks. Such a driver is still passive: the agent owns the sockets, the
serial lines, the one thread that serves them all, and time. A driver gives the agent one
``StationLink`` per connection (or serial line): a protocol state machine without I/O, fed
the bytes that arrived with the time they arrived, returning what to answer, the reports of
configured stations (as measurements at the station's own observation time) and the
problems met on the way, each with a countable kind.

Station matching lives in the link (the standard decides what a stranger is answered:
nothing, for both protocols), so a report always names the configured device it came from,
and nothing a stranger sends ever becomes a measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.base import DeviceConfig, Measurement

STATION_DEFAULT_INTERVAL_S = 300.0  # a report every 5 minutes: the usual timed report
LOCAL_UTC_OFFSET_H = 8.0  # no time zone on the wire: stations keep local time (UTC+8)


class ProblemKind(StrEnum):
    """Why bytes from a station were not taken: the label of the counter they move."""

    GARBAGE = "garbage"  # bytes that start no frame (a run of them counts once)
    CRC = "crc"  # a whole frame whose checksum is wrong
    TRUNCATED = "truncated"  # a frame cut short: a new one began inside it, or the link closed
    OVERSIZED = "oversized"  # a length beyond the bound: never buffered
    MALFORMED = "malformed"  # checked, but its content does not parse
    UNKNOWN_STATION = "unknown_station"  # a station address / MN not configured here
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 (a label) - a configured station with another password
    UNSUPPORTED = "unsupported"  # a function / command the gateway does not take


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing refused. ``station`` is the address / MN the frame claimed, if readable;
    ``device`` the configured station it matched, if any (then its health counts it)."""

    kind: ProblemKind
    detail: str
    station: str | None = None
    device: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Measurements the station observed at one instant (its clock, as UTC ms)."""

    ts_ms: int
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True, slots=True)
class Alarm:
    """What made a station raise an alarm report (SL651 33H): its trigger element first."""

    metric: str | None  # None when the trigger element has no metric in config
    element: str
    value: float | None
    ts_ms: int


@dataclass(frozen=True, slots=True)
class StationReport:
    """A configured station was heard: a report with observations, or a keep-alive."""

    device: str
    station: str
    kind: str  # what it was, for logs: "32H timed", "2FH keep-alive", "2011 real-time"
    sent_ms: int | None  # the station's clock when it sent: its offset from ours
    observations: tuple[Observation, ...] = ()
    alarm: Alarm | None = None
    unmapped: tuple[str, ...] = ()  # elements / factors it sent that no metric takes
    over_limit: int = 0  # values flagged over the analyser's limit (HJ212 T): good, counted


@dataclass(slots=True)
class LinkOutput:
    """What one call of a link produced, in order of arrival."""

    replies: list[bytes] = field(default_factory=list)
    reports: list[StationReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def extend(self, other: LinkOutput) -> None:
        self.replies += other.replies
        self.reports += other.reports
        self.problems += other.problems


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """Settings of the listener (the agent's ``[[listeners]]`` entry) a link needs."""

    centre: int = 1  # SL651: our centre address (1-255)
    keep_online: bool = False  # SL651: answer ESC (stay online, 2FH keep-alives), not EOT
    max_frame_bytes: int = 4096  # one frame (or HJ212 packet) at most
    max_message_bytes: int = 65_536  # SL651 M3: one reassembled message at most
    clock_trusted: bool = False  # our clock is NTP-synced: stations may be told the time


class StationLink(Protocol):
    """One connection's (or serial line's) centre side; see the module docstring."""

    def receive(self, data: bytes, now_ms: int) -> LinkOutput: ...

    def close(self, now_ms: int) -> LinkOutput: ...

    @property
    def buffered_bytes(self) -> int: ...


class MetricMap(BaseModel):
    """One station element / factor as one metric: ``value = number * scale + offset``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    unit: str = Field(default="", max_length=16)
    scale: float = 1.0
    offset: float = 0.0


class StationDeviceConfig(DeviceConfig):
    """Fields of every pushing station. ``interval_s`` is how often it reports: the agent
    calls a station stale after three intervals without a report."""

    interval_s: float = Field(default=STATION_DEFAULT_INTERVAL_S, gt=0, le=86_400)
    utc_offset_h: float = Field(
        default=LOCAL_UTC_OFFSET_H, ge=-12, le=14, description="the station's clock zone"
    )

    def station_key(self) -> str:
        """The key the link matches frames on (address, MN)."""
        raise NotImplementedError

    def describe(self) -> str:
        """How errors and logs name the station: ``device 'x' (sl651, station ...)``."""
        return f"device {self.name!r} ({self.driver}, station {self.station_key()})"


def station_time_ms(local: datetime, utc_offset_h: float) -> int:
    """A station's local wall time (naive) as UTC epoch milliseconds."""
    utc = (local - timedelta(hours=utc_offset_h)).replace(tzinfo=UTC)
    return int(utc.timestamp() * 1000)


def local_time(now_ms: int, utc_offset_h: float) -> datetime:
    """Our clock (UTC ms) as the naive local wall time a station keeps."""
    return datetime.fromtimestamp(now_ms / 1000, UTC).replace(tzinfo=None) + timedelta(
        hours=utc_offset_h
    )


C = TypeVar("C", bound=StationDeviceConfig)
L = TypeVar("L")


def index_stations(configs: Sequence[DeviceConfig], model: type[C]) -> dict[str, C]:
    """The stations of one driver by their key; two with one key is a config error."""
    stations: dict[str, C] = {}
    for config in configs:
        if not isinstance(config, model):
            raise TypeError(f"device {config.name!r}: a {type(config).__name__} is no {model}")
        key = config.station_key()
        if key in stations:
            raise ValueError(
                f"devices {stations[key].name!r} and {config.name!r}: both are station {key}"
            )
        stations[key] = config
    return stations


def link_factory_for(
    model: type[C], link: Callable[[Mapping[str, C], LinkOptions], L]
) -> Callable[[Sequence[DeviceConfig], LinkOptions], Callable[[], L]]:
    """A driver's registry factory: for the stations configured on one listener, a maker
    of the link of each connection. The links share one station index (2,000 connections
    must not hold 2,000 copies of it)."""

    def factory(configs: Sequence[DeviceConfig], options: LinkOptions) -> Callable[[], L]:
        stations = index_stations(configs, model)
        return lambda: link(stations, options)

    return factory


class FramedLink:
    """What every link shares: the bytes that arrived, taken one frame (or one problem) at a
    time from the start of a buffer; a run of junk is one problem, not one per byte; a link
    closed inside a frame is a truncated frame. Subclasses say how a frame is taken."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def receive(self, data: bytes, now_ms: int) -> LinkOutput:
        out = LinkOutput()
        self._buffer += data
        while self._buffer:
            used = self._take(bytes(self._buffer), now_ms, out)
            if used == 0:
                break
            del self._buffer[:used]
        self._after(now_ms, out)
        merged: list[Problem] = []
        for problem in out.problems:
            if merged and problem.kind is merged[-1].kind is ProblemKind.GARBAGE:
                continue
            merged.append(problem)
        out.problems[:] = merged
        return out

    def close(self, now_ms: int) -> LinkOutput:
        """The link closed: a frame begun is cut short."""
        out = LinkOutput()
        if self._buffer.strip(b"\r\n\x00 "):
            out.problems.append(
                Problem(
                    ProblemKind.TRUNCATED,
                    f"the link closed {len(self._buffer)} bytes into a frame",
                )
            )
        self._buffer.clear()
        self._closed()
        return out

    def _take(self, buffer: bytes, now_ms: int, out: LinkOutput) -> int:
        """Take one frame or problem from ``buffer``'s start into ``out``; the bytes used
        (0: a frame has begun, wait for more)."""
        raise NotImplementedError

    def _after(self, now_ms: int, out: LinkOutput) -> None:
        """After what arrived was taken (e.g. expire half-done messages)."""

    def _closed(self) -> None:
        """After the link closed (e.g. drop half-done messages)."""
