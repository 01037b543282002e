"""One simulated pushing station: its schedule, its link, its answers, its faults and quirks.

A station reports every ``period_s`` and, for SL651, sends a 33H the moment its alarm
element rises past its bound (checked every ``ALARM_CHECK_S``). It dials in to a listener
(TCP) or writes on a pty (a serial line wired to the gateway). Like a real RTU:

- SL651 (M2): a report waits ``answer_timeout_s`` for its answer and is sent twice more
  with the same serial number, then the station hangs up. ``EOT`` hangs up (the next
  report dials again) unless ``stay_online``; ``ESC`` keeps the link and the station
  sends a 2FH keep-alive every ``keepalive_s`` with its last serial number. M1 stations
  (``acknowledge = false``) expect nothing.
- HJ212: the logger stays connected, asks for an answer (Flag 5) and resends up to 3
  times, ``answer_timeout_s`` apart; a 1012 from the platform sets its clock.

The station is driven by ``StationRunner``'s one thread (``on_timer``, ``on_event``);
faults, quirks and reading overrides are switched from other threads (the control socket)
by swapping whole values.
"""

from __future__ import annotations

import dataclasses
import errno
import random
import selectors
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from firmware_sim.faults import Faults, mangle
from firmware_sim.pty import PtyPort
from firmware_sim.stations import hj212, sl651
from firmware_sim.stations.models import StationModel

if TYPE_CHECKING:
    from firmware_sim.stations.runner import StationRunner

ALARM_CHECK_S = 0.5
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 5.0
STORM_INTERVAL_S = 0.05
MAX_INBOUND = 8192


@dataclass(frozen=True, slots=True)
class StationQuirks:
    """The shared doc's vendor quirks, switched at run time like faults."""

    lowercase_crc: bool = False  # hex CRC digits in lower case (HJ212, SL651 ASCII)
    no_crlf: bool = False  # HJ212 packets without their CRLF
    wrong_length: bool = False  # the length field says 6 more than there is
    missing_values: bool = False  # values sent as missing (SL651: all F; HJ212: empty)
    clock_offset_s: float = 0.0  # the station's clock is off by this (600: 10 minutes)
    wrong_password: bool = False  # frames carry another password
    reconnect_storm: bool = False  # dial, say hello, hang up, again, every 50 ms

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StationQuirks:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown quirks {unknown} (known: {sorted(known)})")
        for name, value in raw.items():
            if name == "clock_offset_s":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                ok = ok and abs(value) <= 86_400 * 365
            else:
                ok = isinstance(value, bool)
            if not ok:
                raise ValueError(f"quirk {name!r}: bad value {value!r}")
        return cls(**raw)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class StationStats:
    connects: int = 0
    connect_failures: int = 0
    reports: int = 0  # reports sent (first tries)
    alarms: int = 0  # SL651 33H sent
    retries: int = 0
    answered: int = 0
    unanswered: int = 0  # given up after the last try
    keep_alives: int = 0
    clock_set: int = 0  # HJ212 1012 taken
    reboots: int = 0
    responses: int = 0  # for the control socket's status: answers read
    last_alarm_ms: int = 0  # wall clock when the last 33H left the station (latency benches)


@dataclass(frozen=True, slots=True)
class StationOptions:
    period_s: float
    keepalive_s: float = 40.0
    answer_timeout_s: float = 10.0
    tries: int = 3
    stay_online: bool = False  # SL651: keep the link after EOT (always-online stations)
    acknowledge: bool = True  # SL651: M2 (false: M1, nothing expected)
    ascii_frames: bool = False  # SL651: ASCII frames instead of HEX
    phase_s: float | None = None  # the first report's delay (default: random in a period)
    utc_offset_h: float = 8.0


@dataclass(slots=True)
class _Waiting:
    data: bytes  # the frame, resent as it was
    key: str  # SL651: function and serial; HJ212: QN
    deadline_s: float
    tries: int = 1


class SimStation:
    """One station; see the module docstring."""

    def __init__(
        self,
        name: str,
        model: StationModel,
        *,
        key: str,
        password: str,
        options: StationOptions,
        target: tuple[str, int] | None = None,
        centre: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        time_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.model = model
        self.key = key
        self.password = password
        self.options = options
        self.target = target  # None: a pty (a serial line wired to the gateway)
        self._runner: StationRunner | None = None
        self._faults = Faults()
        self._quirks = StationQuirks()
        self._values: dict[str, float | None] = {}  # readings set through the control socket
        self.stats = StationStats()
        self._centre = centre
        self._clock = clock
        self._wall = wall
        self._time_scale = time_scale
        self._rng = random.Random(seed)
        self._made_s = clock()
        self._clock_correction_s = 0.0  # what a 1012 set
        self._serial = 0
        self._sock: socket.socket | None = None
        self._connected = False
        self._pty: PtyPort | None = None
        self._out = bytearray()
        self._in = bytearray()
        self._waiting: _Waiting | None = None
        self._online = False  # SL651: ESC received, keep-alives due
        self._reconnect_s = RECONNECT_MIN_S
        self._reconnect_at: float | None = None
        self._stuck: list[tuple[str, float | None]] | None = None
        self._alarmed = False
        phase = options.phase_s
        if phase is None:
            phase = self._rng.uniform(0, min(options.period_s, 5.0))
        now = clock()
        self._next_report_s = now + phase
        self._next_keepalive_s = now + options.keepalive_s
        self._next_alarm_check_s = now
        self._next_storm_s = now
        self._report_now = False
        self.wake_at = now

    # -- what the control socket and the runner see ---------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = faults
        self._poke()

    @property
    def quirks(self) -> StationQuirks:
        return self._quirks

    @quirks.setter
    def quirks(self, quirks: StationQuirks) -> None:
        self._quirks = quirks
        self._poke()

    @property
    def values(self) -> dict[str, float | None]:
        return dict(self._values)

    def set_values(self, values: Mapping[str, float | None]) -> None:
        """Readings to report instead of the model's (an empty mapping clears them); an
        alarm bound they cross is seen at once."""
        self._values = dict(values)
        self._next_alarm_check_s = self._clock()
        self._poke()

    def _poke(self) -> None:
        if self._runner is not None:
            self._runner.poke(self)

    @property
    def pty(self) -> str:
        return self._pty.port_path if self._pty is not None else ""

    @property
    def connected(self) -> bool:
        return self._pty is not None or self._connected

    def reboot(self) -> None:
        """Power-cycle: the link drops, the serial restarts, the clock correction is lost."""
        self.stats.reboots += 1
        self._serial = 0
        self._clock_correction_s = 0.0
        self._drop()

    def report_now(self) -> None:
        """Send a timed report at once (the control socket's ``report``)."""
        self._report_now = True
        self._poke()

    def attach(self, runner: StationRunner) -> None:
        self._runner = runner
        if self.target is None:
            self._pty = PtyPort()
            self._pty.open()
            runner.selector.register(self._pty.master_fd, selectors.EVENT_READ, self)

    def detach(self) -> None:
        self._drop()
        if self._pty is not None and self._runner is not None:
            self._runner.selector.unregister(self._pty.master_fd)
            self._pty.close()
            self._pty = None

    # -- time ---------------------------------------------------------------------------------

    def local_now(self) -> datetime:
        """The station's own clock: local time, off by its quirk until a 1012 corrects it."""
        offset = self.quirks.clock_offset_s - self._clock_correction_s
        moment = datetime.fromtimestamp(self._wall() + offset, UTC).replace(tzinfo=None)
        return moment + timedelta(hours=self.options.utc_offset_h)

    def _signal_time(self) -> float:
        return (self._clock() - self._made_s) * self._time_scale

    def on_timer(self, now: float) -> float:
        """Do what is due; return when to be called next."""
        if self.quirks.reconnect_storm and self.target is not None:
            if now >= self._next_storm_s:
                self._storm()
                self._next_storm_s = now + STORM_INTERVAL_S
            return self._next_storm_s
        if self.target is not None and not self._connected and self._sock is None:
            wants_link = self.model.protocol == "hj212" or self._out or self._waiting
            if self._reconnect_at is not None and now >= self._reconnect_at:
                self._reconnect_at = None
                self._connect()
            elif self._reconnect_at is None and wants_link:
                self._connect()
        if self._report_now or now >= self._next_report_s:
            self._report_now = False
            self._report(alarm=False)
            self._next_report_s = max(self._next_report_s + self.options.period_s, now)
        if self.model.alarm is not None and now >= self._next_alarm_check_s:
            self._check_alarm()
            self._next_alarm_check_s = now + ALARM_CHECK_S
        waiting = self._waiting
        if waiting is not None and now >= waiting.deadline_s:
            self._retry(waiting, now)
        if self._online and self.connected and now >= self._next_keepalive_s:
            self._keep_alive()
            self._next_keepalive_s = now + self.options.keepalive_s
        due = [self._next_report_s]
        if self.model.alarm is not None:
            due.append(self._next_alarm_check_s)
        if self._waiting is not None:
            due.append(self._waiting.deadline_s)
        if self._online:
            due.append(self._next_keepalive_s)
        if self._reconnect_at is not None:
            due.append(self._reconnect_at)
        return min(due)

    # -- reports ------------------------------------------------------------------------------

    def _readings(self) -> list[tuple[str, float | None]]:
        if self.faults.stuck and self._stuck is not None:
            return self._stuck
        readings = self.model.readings(self._signal_time(), self.faults.out_of_range)
        values = self._values
        readings = [(n, values.get(n, v)) for n, v in readings]
        if self.quirks.missing_values:
            readings = [(n, None if i % 2 == 1 else v) for i, (n, v) in enumerate(readings)]
        self._stuck = readings if self.faults.stuck else None
        return readings

    def _check_alarm(self) -> None:
        assert self.model.alarm is not None
        element, bound = self.model.alarm
        value = dict(self._readings()).get(element)
        above = value is not None and value >= bound
        if above and not self._alarmed:
            self._report(alarm=True)
        self._alarmed = above

    def _next_serial(self) -> int:
        self._serial = self._serial % 65535 + 1
        return self._serial

    def _password(self) -> str:
        if not self.quirks.wrong_password:
            return self.password
        return "9999" if self.model.protocol == "sl651" else "000000"

    def _report(self, *, alarm: bool) -> None:
        now_local = self.local_now()
        readings = self._readings()
        if self.model.protocol == "sl651":
            data, key = self._sl651_report(readings, now_local, alarm=alarm)
        else:
            data, key = self._hj212_report(readings, now_local)
        if alarm:
            self.stats.alarms += 1
            self.stats.last_alarm_ms = int(self._wall() * 1000)
        else:
            self.stats.reports += 1
        if self.model.protocol == "hj212" or self.options.acknowledge:
            deadline = self._clock() + self.options.answer_timeout_s
            self._waiting = _Waiting(data, key, deadline)
        self._send(data)

    def _sl651_report(
        self, readings: list[tuple[str, float | None]], now_local: datetime, *, alarm: bool
    ) -> tuple[bytes, str]:
        encoder = self._sl651_encoder()
        serial = self._next_serial()
        function = sl651.TIMED
        if alarm:
            assert self.model.alarm is not None
            function = sl651.ADDITIONAL
            trigger = self.model.alarm[0]
            readings = sorted(readings, key=lambda item: item[0] != trigger)
            readings.insert(1, ("ZT", float(sl651.ZT_LEVEL_ALARM)))
        observed = now_local.replace(second=0, microsecond=0)
        data = encoder.report(
            function,
            serial=serial,
            sent=now_local,
            observed=observed,
            elements=readings,
            category=self.model.category,
            quirks=self._sl651_quirks(),
        )
        return data, f"{function:02X}-{serial}"

    def _sl651_encoder(self) -> sl651.Sl651Encoder:
        return sl651.Sl651Encoder(
            station=self.key,
            password=self._password(),
            centre=self._centre,
            ascii_frames=self.options.ascii_frames,
        )

    def _sl651_quirks(self) -> sl651.FrameQuirks:
        return sl651.FrameQuirks(
            lowercase_crc=self.quirks.lowercase_crc,
            wrong_length=self.quirks.wrong_length,
            corrupt_crc=self.faults.corrupt_crc,
        )

    def _hj212_report(
        self, readings: list[tuple[str, float | None]], now_local: datetime
    ) -> tuple[bytes, str]:
        encoder = hj212.Hj212Encoder(mn=self.key, password=self._password(), st=self.model.st)
        factors = {code: (value, "N") for code, value in readings}
        data_time = now_local.replace(microsecond=0)
        if self.model.cn != "2011":  # a period's data: DataTime is its start
            data_time = data_time.replace(minute=0, second=0) - timedelta(hours=1)
        quirks = hj212.PacketQuirks(
            lowercase_crc=self.quirks.lowercase_crc,
            no_crlf=self.quirks.no_crlf,
            wrong_length=self.quirks.wrong_length,
            corrupt_crc=self.faults.corrupt_crc,
        )
        data = encoder.data(
            self.model.cn,
            data_time,
            factors,
            flag=5,
            sent=now_local,
            fields=self.model.fields,
            quirks=quirks,
        )
        return data, hj212.qn(now_local)

    def _keep_alive(self) -> None:
        encoder = self._sl651_encoder()
        self._send(encoder.keep_alive(max(1, self._serial), self.local_now(), self._sl651_quirks()))
        self.stats.keep_alives += 1

    def _retry(self, waiting: _Waiting, now: float) -> None:
        if waiting.tries >= self.options.tries:
            self._waiting = None
            self.stats.unanswered += 1
            if self.model.protocol == "sl651":
                self._drop()  # the initiator hangs up after its last try
            return
        waiting.tries += 1
        waiting.deadline_s = now + self.options.answer_timeout_s
        self.stats.retries += 1
        self._send(waiting.data)

    # -- answers ------------------------------------------------------------------------------

    def on_event(self, mask: int) -> None:
        """The runner saw the link readable or writable."""
        if self._pty is not None:
            self._take(self._pty.read_available())
            return
        sock = self._sock
        if sock is None:
            return
        if not self._connected:
            if mask & selectors.EVENT_WRITE:
                self._connect_done()
            return
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                self._drop(reconnect=True)
                return
            if data:
                self._take(data)
        if mask & selectors.EVENT_WRITE:
            self._flush()

    def _take(self, data: bytes) -> None:
        self._in += data
        if len(self._in) > MAX_INBOUND:
            del self._in[:-MAX_INBOUND]
        if self.model.protocol == "sl651":
            self._take_sl651()
        else:
            self._take_hj212()

    def _take_sl651(self) -> None:
        while self._in:
            used, answer = sl651.read_answer(bytes(self._in))
            if used == 0:
                return
            del self._in[:used]
            if answer is None:
                continue
            self.stats.responses += 1
            waiting = self._waiting
            if waiting is None or waiting.key != f"{answer.function:02X}-{answer.serial}":
                continue
            self._waiting = None
            self.stats.answered += 1
            if answer.end == sl651.ESC:
                if not self._online:
                    self._next_keepalive_s = self._clock() + self.options.keepalive_s
                self._online = True
            elif answer.end == sl651.EOT and not self.options.stay_online:
                self._drop()
            elif self.options.stay_online and not self._online:
                self._online = True
                self._next_keepalive_s = self._clock() + self.options.keepalive_s

    def _take_hj212(self) -> None:
        while self._in:
            used, fields = hj212.read_packet(bytes(self._in))
            if used == 0:
                return
            del self._in[:used]
            if fields is None:
                continue
            self.stats.responses += 1
            cn = fields.get("CN")
            waiting = self._waiting
            if cn == "9014" and waiting is not None and fields.get("QN") == waiting.key:
                self._waiting = None
                self.stats.answered += 1
            elif cn == "1012" and "SystemTime" in fields:
                self._set_clock(fields)

    def _set_clock(self, fields: dict[str, str]) -> None:
        try:
            told = datetime.strptime(fields["SystemTime"], "%Y%m%d%H%M%S")
        except ValueError:
            return
        error_s = (self.local_now() - told).total_seconds()
        self._clock_correction_s += error_s
        self.stats.clock_set += 1
        encoder = hj212.Hj212Encoder(mn=self.key, password=self._password(), st=self.model.st)
        request_qn = fields.get("QN", "")
        self._send(encoder.reply(request_qn, "9011", "QnRtn=1"))
        self._send(encoder.reply(request_qn, "9012", "ExeRtn=1"))

    # -- the link -----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        faults = self.faults
        if faults.silent:
            return
        data = mangle(data, faults, self._rng)
        if self._pty is not None:
            self._pty.write_all(data)
            return
        self._out += data
        if self._connected:
            self._flush()
        elif self._sock is None and self._reconnect_at is None:
            self._connect()

    def _connect(self) -> None:
        assert self.target is not None
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        error = sock.connect_ex(self.target)
        if error not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self._failed()
            return
        self._sock = sock
        self._runner.selector.register(sock, selectors.EVENT_WRITE, self)

    def _connect_done(self) -> None:
        assert self._sock is not None
        assert self._runner is not None
        error = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self._runner.selector.unregister(self._sock)
            self._sock.close()
            self._sock = None
            self._failed()
            return
        self._connected = True
        self._reconnect_s = RECONNECT_MIN_S
        self.stats.connects += 1
        self._watch()
        self._flush()

    def _failed(self) -> None:
        self.stats.connect_failures += 1
        self._reconnect_at = self._clock() + self._reconnect_s
        self._reconnect_s = min(self._reconnect_s * 2, RECONNECT_MAX_S)

    def _flush(self) -> None:
        sock = self._sock
        if sock is None or not self._connected:
            return
        while self._out:
            try:
                sent = sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(reconnect=True)
                return
            del self._out[:sent]
        self._watch()

    def _watch(self) -> None:
        if self._sock is not None and self._runner is not None:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._out else 0)
            self._runner.selector.modify(self._sock, events, self)

    def _drop(self, *, reconnect: bool = False) -> None:
        """Hang up (or lose the link); an HJ212 logger (or a station with frames to
        send) dials again after a backoff."""
        self._online = False
        self._in.clear()
        if self._sock is not None:
            if self._runner is not None:
                self._runner.selector.unregister(self._sock)
            self._sock.close()
            self._sock = None
        self._connected = False
        if reconnect:
            self._failed()
        elif self.model.protocol == "sl651":
            self._out.clear()

    def _storm(self) -> None:
        """A reconnect storm: a fresh link, one hello, hung up at the next turn."""
        if self._sock is not None:
            self._drop()
        self._out.clear()
        if self.model.protocol == "sl651":
            encoder = self._sl651_encoder()
            self._out += encoder.keep_alive(max(1, self._serial), self.local_now())
        self._connect()
