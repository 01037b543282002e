"""Port owners and device pollers: schedules, failures as data, crashes contained."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import serial

from agent.bus.outlook import BusOutlook
from agent.bus.poller import DEVICE_METRIC, DeviceState
from agent.bus.ports import PortOwner
from agent.config import PortConfig
from drivers.base import DeviceConfig, Driver, DriverError, ErrorKind, LineOptions, Measurement
from drivers.registry import parse_device_config
from edgewatch.waiting import wait_until
from firmware_sim.bus import SimulatedBus
from firmware_sim.device import Faults
from tests.clock import FakeClock
from wire import Quality
from wire.clock import SYSTEM_CLOCK

WAIT_S = 5.0


@dataclass
class Sink:
    """Collects what the port owner stores: (device, ts_ms, measurements)."""

    reads: list[tuple[str, int, list[Measurement]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        with self.lock:
            self.reads.append((device, ts_ms, list(measurements)))

    def all(self) -> list[tuple[str, int, list[Measurement]]]:
        with self.lock:
            return list(self.reads)


class ScriptedDriver:
    """A boundary double: answers, raises a DriverError or crashes, in turn."""

    def __init__(self, name: str, script: list[str]) -> None:
        self._name = name
        self._script = script
        self.reads = 0

    @property
    def device_name(self) -> str:
        return self._name

    def read(self) -> list[Measurement]:
        step = self._script[self.reads % len(self._script)]
        self.reads += 1
        if step == "timeout":
            raise DriverError(ErrorKind.TIMEOUT, f"device {self._name!r}: no answer")
        if step == "crash":
            raise RuntimeError("bug in driver")
        return [Measurement("level_cm", 250.0 + self.reads, "cm")]

    def close(self) -> None:
        pass


def device(name: str = "gauge-1", interval_s: float = 0.02) -> DeviceConfig:
    return DeviceConfig(name=name, driver="scripted", port="bus1", interval_s=interval_s)


PORT = PortConfig(name="bus1", url="loop://", timeout_s=0.1)


def loop_port(port: PortConfig) -> serial.Serial:
    return serial.serial_for_url("loop://", timeout=port.timeout_s)


@pytest.fixture
def sink() -> Sink:
    return Sink()


@contextmanager
def running(owner: PortOwner) -> Iterator[PortOwner]:
    owner.start()
    try:
        yield owner
    finally:
        owner.stop()


def test_a_failed_read_is_stored_as_bad_readings_and_counted(sink: Sink) -> None:
    script = ["ok", "timeout", "timeout", "timeout", "ok"]
    drivers: dict[str, ScriptedDriver] = {}

    def factory(config: DeviceConfig, link: serial.Serial, line: LineOptions) -> Driver:
        drivers[config.name] = ScriptedDriver(config.name, script)
        return drivers[config.name]

    owner = PortOwner(
        PORT, [device()], sink, SYSTEM_CLOCK, opener=loop_port, driver_factory=factory
    )
    with running(owner):
        wait_until(lambda: len(sink.all()) >= 5, timeout_s=WAIT_S, message="5 reads")
        health = owner.pollers[0].health()

    reads = sink.all()
    assert reads[0][2] == [Measurement("level_cm", 251.0, "cm")]
    bad = reads[1][2]
    assert [(m.metric, m.value, m.unit, m.quality) for m in bad] == [
        ("level_cm", None, "cm", Quality.BAD)
    ]
    assert bad[0].error == "device 'gauge-1': no answer"
    assert health.errors["timeout"] >= 3
    assert health.reads_ok >= 2
    assert health.last_good_ms is not None
    assert health.last_error == "device 'gauge-1': no answer"


def test_three_failures_in_a_row_make_a_device_failing(sink: Sink) -> None:
    owner = PortOwner(
        PORT,
        [device()],
        sink,
        SYSTEM_CLOCK,
        opener=loop_port,
        driver_factory=lambda c, *_: ScriptedDriver(c.name, ["timeout"]),
    )
    with running(owner):
        wait_until(
            lambda: owner.pollers[0].state() is DeviceState.FAILING,
            timeout_s=WAIT_S,
            message="device failing",
        )
    # Before any answer the metrics are unknown: one reading says the device failed.
    assert sink.all()[0][2][0].metric == DEVICE_METRIC
    assert owner.pollers[0].health().consecutive_failures >= 3


def test_a_crashing_driver_is_counted_and_polling_goes_on(sink: Sink) -> None:
    owner = PortOwner(
        PORT,
        [device()],
        sink,
        SYSTEM_CLOCK,
        opener=loop_port,
        driver_factory=lambda c, *_: ScriptedDriver(c.name, ["crash", "ok"]),
    )
    with running(owner):
        wait_until(lambda: len(sink.all()) >= 6, timeout_s=WAIT_S, message="6 reads")
        health = owner.pollers[0].health()

    assert health.errors["internal"] >= 3
    assert health.reads_ok >= 3


def test_a_port_that_will_not_open_is_retried(sink: Sink) -> None:
    attempts = 0

    def flaky_opener(port: PortConfig) -> serial.Serial:
        nonlocal attempts
        attempts += 1
        if attempts < 2:
            raise serial.SerialException("could not open port /dev/ttyUSB9")
        return loop_port(port)

    owner = PortOwner(
        PORT,
        [device()],
        sink,
        SYSTEM_CLOCK,
        opener=flaky_opener,
        driver_factory=lambda c, *_: ScriptedDriver(c.name, ["ok"]),
    )
    with running(owner):
        wait_until(lambda: owner.pollers[0].health().reads_ok >= 1, timeout_s=WAIT_S, message="ok")
        health = owner.pollers[0].health()

    assert health.errors["io"] >= 1
    assert sink.all()[0][2][0].quality is Quality.BAD


def test_stop_ends_the_owner_thread_in_the_middle_of_a_long_wait(sink: Sink) -> None:
    """The next poll is a minute away: stop() must wake the wait, not sit it out. stop()
    gives the thread STOP_JOIN_S (3 s) to end; a wait that stop could not interrupt would
    leave it running, whatever the machine's load."""
    owner = PortOwner(
        PORT,
        [device(interval_s=60)],
        sink,
        SYSTEM_CLOCK,
        opener=loop_port,
        driver_factory=lambda c, *_: ScriptedDriver(c.name, ["ok"]),
    )
    owner.start()
    wait_until(sink.all, timeout_s=WAIT_S, message="first read")
    owner.stop()
    assert [t.name for t in threading.enumerate() if t.name == f"port-{PORT.name}"] == []
    assert len(sink.all()) == 1  # the minute never came


def test_reads_the_simulated_gauge_on_a_real_pty(sink: Sink, gauge_bus: SimulatedBus) -> None:
    config = parse_device_config(
        {
            "name": "gauge-1",
            "driver": "modbus_rtu",
            "port": "bus1",
            "interval_s": 0.05,
            "slave": 1,
            "registers": [
                {"metric": "level_cm", "address": 0, "scale": 0.1, "unit": "cm"},
                {"metric": "firmware", "address": 2},
            ],
        }
    )
    port = PortConfig(name="bus1", url=gauge_bus.port_path, timeout_s=0.1)
    owner = PortOwner(port, [config], sink, SYSTEM_CLOCK)
    with running(owner):
        wait_until(lambda: len(sink.all()) >= 3, timeout_s=WAIT_S, message="3 reads")
        gauge_bus.devices[0].faults = Faults(silent=True)
        wait_until(
            lambda: owner.pollers[0].state() is DeviceState.FAILING,
            timeout_s=WAIT_S,
            message="silent gauge failing",
        )
        health = owner.pollers[0].health()

    good = sink.all()[0][2]
    assert [m.metric for m in good] == ["level_cm", "firmware"]
    assert good[0].value is not None
    assert 200.0 < good[0].value < 300.0
    assert good[1].value == 0x0102
    assert health.errors["timeout"] >= 3


# -- the outlook: when the port will store its next reading ---------------------------------


class WireTimedDriver:
    """Answers after ``read_s`` of a held clock, as a 9600-baud read takes ~29 ms."""

    def __init__(self, name: str, clock: FakeClock, read_s: float) -> None:
        self._name, self._clock, self._read_s = name, clock, read_s

    @property
    def device_name(self) -> str:
        return self._name

    def read(self) -> list[Measurement]:
        self._clock.advance(self._read_s)
        return [Measurement("level_cm", 1.0, "cm")]

    def close(self) -> None:
        pass


def test_the_outlook_says_when_the_port_will_store_its_next_reading(
    held_clock: FakeClock,
) -> None:
    outlook = BusOutlook()
    seen: list[tuple[str, float, float]] = []  # (device, now, next store) at each store

    def sink(device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        seen.append((device, held_clock.now_s, outlook.next_store_s()))

    owner = PortOwner(
        PORT,
        [device("gauge-1", interval_s=10.0), device("gauge-2", interval_s=10.0)],
        sink,
        held_clock,
        opener=loop_port,
        driver_factory=lambda c, *_: WireTimedDriver(c.name, held_clock, 0.029),
        outlook=outlook,
    )
    with running(owner):
        # One round at 1000 s (both due), then nothing until 1010 s: the clock is held.
        wait_until(lambda: len(seen) == 2, timeout_s=WAIT_S, message="one round")
        idle_expected_s = 1010.0 + 0.029  # the next round's first read, as long as its last
        wait_until(
            lambda: outlook.next_store_s() == pytest.approx(idle_expected_s),
            timeout_s=WAIT_S,
            message="the port's idle outlook",
        )
    first, second = seen
    # gauge-1 stored: gauge-2 is due and on the wire at once (never read: no poll time yet).
    assert first[0] == "gauge-1"
    assert first[2] == pytest.approx(first[1])
    # gauge-2 stored, the round over: the next store is gauge-1's next round.
    assert second[0] == "gauge-2"
    assert second[2] == pytest.approx(idle_expected_s)
    assert outlook.next_store_s() == math.inf  # a stopped port expects nothing
