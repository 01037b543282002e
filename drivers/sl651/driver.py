"""The centre side of one SL651 link (a TCP connection or a serial line), without I/O.

``Sl651Link.receive(data, now_ms)`` frames what arrived (``codec.decode``), matches the
station by address and password, reassembles M3 messages, decodes the report bodies
(``body``) into measurements at the station's observation time, and says what to answer:

- M2 (STX frames): each good report is answered: ACK after ETB, EOT after ETX (ESC when the
  listener keeps stations online, ``keep_online``); the answer echoes the serial number,
  password and function and carries our time. A 2FH keep-alive is never answered.
- M3 (SYN frames): one answer at the end (EOT/ESC, seq = total), or a NAK naming the first
  packet missing or refused; the station resends it ending ETX.
- An unknown station, a wrong password, a bad CRC, a body that does not parse: no answer
  (the standard has the centre stay silent); each is a ``Problem`` with its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from drivers.base import ErrorKind, Measurement
from drivers.counters import CounterValue
from drivers.sl651 import body as bodies
from drivers.sl651.codec import (
    ACK,
    EOT,
    ESC,
    ETB,
    ETX,
    NAK,
    Decoded,
    Frame,
    decode,
    encode,
    with_body,
)
from drivers.sl651.config import ElementConfig, Sl651StationConfig
from drivers.sl651.elements import (
    FLOW_ELEMENTS,
    FLOW_METER_FAULT_BIT,
    FUNCTION_NAMES,
    LEVEL_ELEMENTS,
    LEVEL_METER_FAULT_BIT,
    REPORTS,
    SERIES_STEP_MS,
    STATUS,
    Function,
)
from drivers.stations import (
    Alarm,
    FramedLink,
    LinkOptions,
    LinkOutput,
    Observation,
    Problem,
    ProblemKind,
    StationReport,
    local_time,
    station_time_ms,
)
from wire import Quality

MAX_MESSAGES = 4  # M3 messages in progress on one link at once
MESSAGE_TIMEOUT_MS = 10 * 60 * 1000  # an M3 message not finished in 10 min is dropped
FIRST_VALUE_FUNCTIONS = frozenset({Function.EQUAL_INTERVAL, Function.HOURLY})


@dataclass(slots=True)
class _Message:
    """An M3 message being reassembled: packets by seq."""

    total: int
    started_ms: int
    packets: dict[int, Frame] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)
    size: int = 0


class Sl651Link(FramedLink):
    """One link's centre side; see the module docstring. Not thread-safe (one owner)."""

    def __init__(self, stations: Mapping[str, Sl651StationConfig], options: LinkOptions) -> None:
        super().__init__()
        self._stations = stations
        self._options = options
        self._messages: dict[tuple[str, int], _Message] = {}

    def _take(self, buffer: bytes, now_ms: int, out: LinkOutput) -> int:
        decoded = decode(buffer, max_frame_bytes=self._options.max_frame_bytes)
        if decoded.used:
            self._decoded(decoded, now_ms, out)
        return decoded.used

    def _after(self, now_ms: int, out: LinkOutput) -> None:
        self._expire(now_ms, out)

    def _closed(self) -> None:
        self._messages.clear()  # half-done M3 messages die with their link

    # -- frames ---------------------------------------------------------------------------

    def _decoded(self, decoded: Decoded, now_ms: int, out: LinkOutput) -> None:
        if decoded.problem is not None:
            station = self._stations.get(decoded.problem.station or "")
            problem = decoded.problem
            if station is not None:
                problem = Problem(problem.kind, problem.detail, problem.station, station.name)
            out.problems.append(problem)
            refused = decoded.refused
            if refused is not None and refused.packet is not None and station is not None:
                self._refused_packet(refused.station, refused.function, refused.packet, now_ms)
            return
        frame = decoded.frame
        if frame is None:
            return
        if not frame.uplink:
            out.problems.append(
                Problem(
                    ProblemKind.UNSUPPORTED, "a downlink frame sent to the centre", frame.station
                )
            )
            return
        station = self._match(frame, out)
        if station is None:
            return
        if frame.packet is not None:
            self._packet(frame, station, now_ms, out)
        else:
            self._message(frame, station, now_ms, out)

    def _match(self, frame: Frame, out: LinkOutput) -> Sl651StationConfig | None:
        station = self._stations.get(frame.station)
        if station is None:
            out.problems.append(
                Problem(
                    ProblemKind.UNKNOWN_STATION,
                    f"station {frame.station} is not configured on this listener",
                    frame.station,
                )
            )
            return None
        if frame.password != station.password.upper():
            out.problems.append(
                Problem(
                    ProblemKind.WRONG_PASSWORD,
                    f"{station.describe()}: password {frame.password} is not the configured one",
                    frame.station,
                    station.name,
                )
            )
            return None
        return station

    def _message(
        self, frame: Frame, station: Sl651StationConfig, now_ms: int, out: LinkOutput
    ) -> None:
        """A whole message (an M2 frame, or an M3 message reassembled)."""
        name = f"{frame.function:02X}H {FUNCTION_NAMES.get(frame.function, 'function')}"
        try:
            if frame.ascii:
                parsed = bodies.parse_ascii(frame.body)
            else:
                parsed = bodies.parse_hex(frame.body, negative_counted=station.negative_counted)
        except bodies.BodyError as exc:
            out.problems.append(
                Problem(
                    ProblemKind.MALFORMED,
                    f"{station.describe()}: {name}: {exc}",
                    frame.station,
                    station.name,
                )
            )
            return
        if parsed.station is not None and parsed.station != frame.station:
            out.problems.append(
                Problem(
                    ProblemKind.MALFORMED,
                    f"{station.describe()}: {name}: the body names station {parsed.station}",
                    frame.station,
                    station.name,
                )
            )
            return
        sent_ms = station_time_ms(parsed.sent, station.utc_offset_h)
        if frame.function == Function.KEEP_ALIVE:
            out.reports.append(StationReport(station.name, frame.station, name, sent_ms))
            return  # never answered
        if frame.function not in REPORTS:
            out.problems.append(
                Problem(
                    ProblemKind.UNSUPPORTED,
                    f"{station.describe()}: {name} is not taken by the gateway (answered)",
                    frame.station,
                    station.name,
                )
            )
            out.reports.append(StationReport(station.name, frame.station, name, sent_ms))
        else:
            out.reports.append(_report(frame, parsed, station, name, sent_ms))
        if station.acknowledge:
            out.replies.append(self._answer(frame, parsed.serial, station, now_ms))

    def _answer(
        self,
        frame: Frame,
        serial: int,
        station: Sl651StationConfig,
        now_ms: int,
        *,
        end: int | None = None,
        packet: tuple[int, int] | None = None,
    ) -> bytes:
        if end is None:
            if frame.end == ETB and frame.packet is None:
                end = ACK
            else:
                end = ESC if self._options.keep_online else EOT
        ours = local_time(now_ms, station.utc_offset_h)
        if frame.ascii:
            body = f"{serial:04X}{ours:%y%m%d%H%M%S}".encode()
        else:
            body = serial.to_bytes(2, "big") + bytes.fromhex(f"{ours:%y%m%d%H%M%S}")
        answer = Frame(
            uplink=False,
            centre=frame.centre,
            station=frame.station,
            password=frame.password,  # the uplink's own: some stations ignore others
            function=frame.function,
            body=body,
            end=end,
            ascii=frame.ascii,
            packet=packet,
        )
        return encode(answer)

    # -- M3 -------------------------------------------------------------------------------

    def _packet(
        self, frame: Frame, station: Sl651StationConfig, now_ms: int, out: LinkOutput
    ) -> None:
        assert frame.packet is not None
        total, seq = frame.packet
        if not 1 <= seq <= total:
            out.problems.append(
                Problem(
                    ProblemKind.MALFORMED,
                    f"{station.describe()}: M3 packet {seq} of {total}",
                    frame.station,
                    station.name,
                )
            )
            return
        message = self._message_for(frame.station, frame.function, total, now_ms)
        if seq not in message.packets:
            message.size += len(frame.body)
        message.packets[seq] = frame
        message.refused.discard(seq)
        if message.size > self._options.max_message_bytes:
            del self._messages[(frame.station, frame.function)]
            out.problems.append(
                Problem(
                    ProblemKind.OVERSIZED,
                    f"{station.describe()}: an M3 message over {self._options.max_message_bytes}"
                    " bytes: dropped",
                    frame.station,
                    station.name,
                )
            )
            return
        if frame.end != ETX and seq != total:
            return  # more to come: one answer at the end
        first = message.packets.get(1)
        serial = int.from_bytes(first.body[:2], "big") if first and not first.ascii else 0
        if first is not None and first.ascii:
            serial = int(first.body[:4] or b"0", 16)
        missing = [n for n in range(1, total + 1) if n not in message.packets]
        if missing:
            if station.acknowledge:
                answer = self._answer(
                    frame, serial, station, now_ms, end=NAK, packet=(total, missing[0])
                )
                out.replies.append(answer)
            return
        del self._messages[(frame.station, frame.function)]
        whole = b"".join(message.packets[n].body for n in range(1, total + 1))
        assert first is not None
        self._message(with_body(first, whole), station, now_ms, out)
        if out.replies and station.acknowledge:
            # The answer of a reassembled message names the whole: seq = total.
            end = ESC if self._options.keep_online else EOT
            out.replies[-1] = self._answer(
                frame, serial, station, now_ms, end=end, packet=(total, total)
            )

    def _message_for(self, station: str, function: int, total: int, now_ms: int) -> _Message:
        key = (station, function)
        message = self._messages.get(key)
        if message is None or message.total != total:
            if len(self._messages) >= MAX_MESSAGES and key not in self._messages:
                oldest = min(self._messages, key=lambda k: self._messages[k].started_ms)
                del self._messages[oldest]
            message = _Message(total, now_ms)
            self._messages[key] = message
        return message

    def _refused_packet(
        self, station: str, function: int, packet: tuple[int, int], now_ms: int
    ) -> None:
        total, seq = packet
        if 1 <= seq <= total:
            self._message_for(station, function, total, now_ms).refused.add(seq)

    def _expire(self, now_ms: int, out: LinkOutput) -> None:
        for key, message in list(self._messages.items()):
            if now_ms - message.started_ms > MESSAGE_TIMEOUT_MS:
                del self._messages[key]
                station = self._stations.get(key[0])
                out.problems.append(
                    Problem(
                        ProblemKind.TRUNCATED,
                        f"an M3 message of {message.total} packets never completed"
                        f" ({len(message.packets)} came)",
                        key[0],
                        station.name if station else None,
                    )
                )


# -- reports to measurements ----------------------------------------------------------------


def _report(
    frame: Frame,
    parsed: bodies.Body,
    station: Sl651StationConfig,
    name: str,
    sent_ms: int,
) -> StationReport:
    mapping = station.element_map()
    by_ts: dict[int, list[Measurement]] = {}
    unmapped: list[str] = []
    alarm: Alarm | None = None
    for group in parsed.groups:
        ts_ms = station_time_ms(group.observed, station.utc_offset_h)
        faults = _meter_faults(group)
        for element in group.elements:
            config = mapping.get(element.ident) if element.ident is not None else None
            if config is None:
                unmapped.append(element.label)
            elif element.series:
                _series(element, config, ts_ms, frame.function, station, into=by_ts)
            else:
                fault = faults.get(element.ident) if element.ident is not None else None
                by_ts.setdefault(ts_ms, []).append(_measurement(element, config, station, fault))
            if frame.function == Function.ADDITIONAL and alarm is None:
                value = _scaled(element.value, config) if config is not None else element.value
                alarm = Alarm(config.metric if config else None, element.label, value, ts_ms)
    observations = tuple(Observation(ts, tuple(ms)) for ts, ms in sorted(by_ts.items()))
    return StationReport(
        station.name,
        frame.station,
        name,
        sent_ms,
        observations,
        alarm,
        tuple(dict.fromkeys(unmapped)),
    )


def _meter_faults(group: bodies.Group) -> dict[int, str]:
    """Elements made bad by a ZT status in the same group: a level or flow meter fault."""
    status = next((e for e in group.elements if e.ident == STATUS and e.raw is not None), None)
    if status is None or status.raw is None:
        return {}
    faults: dict[int, str] = {}
    if status.raw >> LEVEL_METER_FAULT_BIT & 1:
        faults |= dict.fromkeys(
            LEVEL_ELEMENTS, "the station reports a level-meter fault (ZT bit 6)"
        )
    if status.raw >> FLOW_METER_FAULT_BIT & 1:
        faults |= dict.fromkeys(FLOW_ELEMENTS, "the station reports a flow-meter fault (ZT bit 5)")
    return faults


def _scaled(value: float | None, config: ElementConfig) -> float | None:
    return None if value is None else value * config.scale + config.offset


def _bad(config: ElementConfig, station: Sl651StationConfig, label: str, why: str) -> Measurement:
    where = f"{station.describe()}: element {label} ({config.metric!r})"
    error = f"{where}: {ErrorKind.INVALID_VALUE}: {why}"
    return Measurement(
        config.metric, None, config.unit, Quality.BAD, error, error_kind=ErrorKind.INVALID_VALUE
    )


def _measurement(
    element: bodies.ElementValue,
    config: ElementConfig,
    station: Sl651StationConfig,
    fault: str | None,
) -> Measurement:
    if fault is not None:
        return _bad(config, station, element.label, fault)
    if element.value is None:
        return _bad(config, station, element.label, element.problem or "missing")
    value = element.value * config.scale + config.offset
    counter = None
    if config.counter and element.raw is not None and element.raw >= 0 and element.digits:
        scale = config.scale / 10**element.decimals
        counter = CounterValue(element.raw, 10**element.digits, scale)
    return Measurement(config.metric, value, config.unit, counter=counter)


def _series(
    element: bodies.ElementValue,
    config: ElementConfig,
    ts_ms: int,
    function: int,
    station: Sl651StationConfig,
    *,
    into: dict[int, list[Measurement]],
) -> None:
    """DRP / DRZ1: 12 values 5 minutes apart, from the observation time (31H, 34H: the
    first value's time) or up to it (other reports: the period's end)."""
    count = len(element.series)
    for i, value in enumerate(element.series):
        offset = i if function in FIRST_VALUE_FUNCTIONS else i - (count - 1)
        at_ms = ts_ms + offset * SERIES_STEP_MS
        if value is None:
            measurement = _bad(config, station, element.label, f"value {i + 1} of 12 is missing")
        else:
            measurement = Measurement(
                config.metric, value * config.scale + config.offset, config.unit
            )
        into.setdefault(at_ms, []).append(measurement)
