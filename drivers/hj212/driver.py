"""The platform side of one HJ212 link (a TCP connection or a serial line), without I/O.

``Hj212Link.receive(data, now_ms)`` frames packets (``codec.decode``), checks their
syntax, matches the logger by MN and password, turns data uploads (2011, 2051, 2061,
2031) into measurements at their ``DataTime`` and says what to answer:

- an upload with Flag bit A: ``ST=91;CN=9014`` with the same QN, PW and MN, ``Flag=4``,
  ``CP=&&&&``;
- a 1013 (the logger asks for the time): ``CN=9013``, then, if our clock is NTP-synced
  (``LinkOptions.clock_trusted``), a 1012 setting its clock;
- an unknown MN or a wrong password: nothing (counted). A split packet (Flag D) stands alone.

Data flags become qualities: N good; T good (the value is a lower bound: over the
analyser's range, still alarmable; counted as ``over_limit``); M maintenance, C
calibration, S manual and unknown flags uncertain (kept, never an alert); F stopped, D
fault, B analyser link lost bad.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from drivers.base import ErrorKind, Measurement
from drivers.hj212.codec import (
    DEFAULT_MAX_SEGMENT_BYTES,
    Segment,
    SegmentError,
    build_segment,
    decode,
    encode,
    parse_segment,
)
from drivers.hj212.config import COMMAND_NAMES, DATA_COMMANDS, FactorConfig, Hj212StationConfig
from drivers.stations import (
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

ANSWER_FLAG = 4  # version 1 (HJ212-2017), no answer wanted
REQUEST_FLAG = 5  # version 1, answer wanted
GOOD_FLAGS = frozenset({"N"})
OVER_LIMIT_FLAG = "T"
UNCERTAIN_FLAGS = {"M": "maintenance", "C": "calibration", "S": "manual input"}
BAD_FLAGS = {"F": "stopped", "D": "fault", "B": "analyser link lost"}
ASKS_TIME = "1013"
NOTICES = frozenset({ASKS_TIME, "2012", "2022"})
ANSWERS = frozenset({"9011", "9012", "9013", "9014"})
TAKEN = frozenset({*DATA_COMMANDS, "2081", *NOTICES, *ANSWERS})


def qn_time(qn: str) -> datetime:
    """``YYYYMMDDhhmmsszzz`` as a naive local time; ValueError if it is not one."""
    if len(qn) != 17 or not qn.isdigit():
        raise ValueError(f"QN {qn!r} is not YYYYMMDDhhmmsszzz")
    return datetime.strptime(qn[:14], "%Y%m%d%H%M%S").replace(microsecond=int(qn[14:]) * 1000)


def data_time(text: str) -> datetime:
    """``DataTime=YYYYMMDDhhmmss`` as a naive local time; ValueError if it is not one."""
    if len(text) != 14 or not text.isdigit():
        raise ValueError(f"DataTime {text!r} is not YYYYMMDDhhmmss")
    return datetime.strptime(text, "%Y%m%d%H%M%S")


class Hj212Link(FramedLink):
    """One link's platform side; see the module docstring. Not thread-safe (one owner)."""

    def __init__(self, stations: Mapping[str, Hj212StationConfig], options: LinkOptions) -> None:
        super().__init__()
        self._stations = stations
        self._options = options
        self._max_segment = min(options.max_frame_bytes, 9999) or DEFAULT_MAX_SEGMENT_BYTES

    def _take(self, buffer: bytes, now_ms: int, out: LinkOutput) -> int:
        decoded = decode(buffer, max_segment_bytes=self._max_segment)
        if decoded.problem is not None:
            out.problems.append(decoded.problem)
        elif decoded.segment is not None:
            self._packet(decoded.segment, now_ms, out)
        return decoded.used

    def _packet(self, raw: bytes, now_ms: int, out: LinkOutput) -> None:
        try:
            segment = parse_segment(raw)
        except SegmentError as exc:
            out.problems.append(Problem(ProblemKind.MALFORMED, f"segment: {exc}"))
            return
        station = self._stations.get(segment.mn)
        if station is None:
            out.problems.append(
                Problem(
                    ProblemKind.UNKNOWN_STATION,
                    f"MN {segment.mn} is not configured on this listener",
                    segment.mn,
                )
            )
            return
        if segment.pw != station.password:
            out.problems.append(
                Problem(
                    ProblemKind.WRONG_PASSWORD,
                    f"{station.describe()}: PW is not the configured one",
                    segment.mn,
                    station.name,
                )
            )
            return
        name = f"{segment.cn} {COMMAND_NAMES.get(segment.cn, 'command')}"
        sent_ms = None
        if segment.qn is not None:
            try:
                sent_ms = station_time_ms(qn_time(segment.qn), station.utc_offset_h)
            except ValueError as exc:
                out.problems.append(self._malformed(station, segment, f"{name}: {exc}"))
                return
        if segment.cn in ANSWERS:
            return  # the logger answering our 1012: nothing to store, nothing to answer
        if segment.cn in station.data_commands:
            try:
                report = _report(segment, station, name, sent_ms)
            except ValueError as exc:
                out.problems.append(self._malformed(station, segment, f"{name}: {exc}"))
                return
            out.reports.append(report)
        else:
            out.reports.append(StationReport(station.name, segment.mn, name, sent_ms))
            if segment.cn not in TAKEN:
                out.problems.append(
                    Problem(
                        ProblemKind.UNSUPPORTED,
                        f"{station.describe()}: CN {segment.cn} is not taken by the gateway",
                        segment.mn,
                        station.name,
                    )
                )
        if segment.cn in NOTICES:
            out.replies.append(answer(segment, "9013"))
            if segment.cn == ASKS_TIME and self._options.clock_trusted:
                out.replies.append(set_time(segment, now_ms, station.utc_offset_h))
        elif segment.answer_wanted:
            out.replies.append(answer(segment, "9014"))

    @staticmethod
    def _malformed(station: Hj212StationConfig, segment: Segment, detail: str) -> Problem:
        return Problem(
            ProblemKind.MALFORMED, f"{station.describe()}: {detail}", segment.mn, station.name
        )


def answer(segment: Segment, cn: str) -> bytes:
    """A 9014 (data answer) or 9013 (notice answer) to ``segment``."""
    reply = build_segment(
        qn=segment.qn, st="91", cn=cn, pw=segment.pw, mn=segment.mn, flag=ANSWER_FLAG
    )
    return encode(reply)


def set_time(segment: Segment, now_ms: int, utc_offset_h: float) -> bytes:
    """A 1012 request setting the logger's clock to ours (its local time)."""
    ours = local_time(now_ms, utc_offset_h)
    qn = f"{ours:%Y%m%d%H%M%S}{ours.microsecond // 1000:03d}"
    request = build_segment(
        qn=qn,
        st=segment.st,
        cn="1012",
        pw=segment.pw,
        mn=segment.mn,
        flag=REQUEST_FLAG,
        cp=f"SystemTime={ours:%Y%m%d%H%M%S}",
    )
    return encode(request)


def _report(
    segment: Segment, station: Hj212StationConfig, name: str, sent_ms: int | None
) -> StationReport:
    text = segment.cp_value("DataTime")
    if text is None:
        raise ValueError("no DataTime")
    ts_ms = station_time_ms(data_time(text), station.utc_offset_h)
    values = dict(segment.cp)
    mapping = station.factor_map()
    measurements: list[Measurement] = []
    over_limit = 0
    for key, config in mapping.items():
        if key not in values:
            continue
        measurement = _measurement(
            config, values[key], values.get(f"{config.factor}-Flag"), station
        )
        over_limit += (
            measurement.quality is Quality.GOOD
            and values.get(f"{config.factor}-Flag") == OVER_LIMIT_FLAG
        )
        measurements.append(measurement)
    mapped = {f.factor for f in station.factors}
    unmapped = tuple(
        dict.fromkeys(
            key
            for key, _ in segment.cp
            if "-" in key and key.split("-", 1)[0] not in mapped and not key.endswith("Flag")
        )
    )
    observations = (Observation(ts_ms, tuple(measurements)),) if measurements else ()
    return StationReport(
        station.name, segment.mn, name, sent_ms, observations, None, unmapped, over_limit
    )


def _measurement(
    config: FactorConfig, text: str, flag: str | None, station: Hj212StationConfig
) -> Measurement:
    where = f"{station.describe()}: {config.key} ({config.metric!r})"
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        error = f"{where}: {ErrorKind.INVALID_VALUE}: {text[:20]!r} is not a number"
        return Measurement(
            config.metric, None, config.unit, Quality.BAD, error, error_kind=ErrorKind.INVALID_VALUE
        )
    value = number * config.scale + config.offset
    if flag is None or flag in GOOD_FLAGS or flag == OVER_LIMIT_FLAG:
        return Measurement(config.metric, value, config.unit)
    if flag in BAD_FLAGS:
        error = f"{where}: {ErrorKind.INVALID_VALUE}: flag {flag} ({BAD_FLAGS[flag]})"
        return Measurement(
            config.metric, None, config.unit, Quality.BAD, error, error_kind=ErrorKind.INVALID_VALUE
        )
    why = UNCERTAIN_FLAGS.get(flag, "an unknown flag")
    return Measurement(
        config.metric, value, config.unit, Quality.UNCERTAIN, f"{where}: flag {flag[:4]} ({why})"
    )
