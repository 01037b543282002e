"""The port owner: calls run on its thread, isolation, bounded backoff, crashes restarted."""

from __future__ import annotations

import threading

import pytest

from agent.bus.backoff import DEVICE_BACKOFF_MAX_S, backoff_s, device_retry_s
from agent.bus.poller import DevicePoller, DeviceState
from agent.bus.ports import PortOwner, PortUnavailableError
from agent.config import PortConfig
from drivers.base import DriverError, ErrorKind, Measurement
from drivers.registry import parse_device_config
from firmware_sim import Faults
from tests.agent.bus_rig import Rig, Sink, bus_rig, gauge, simulated
from tests.clock import FakeClock
from wire.clock import SYSTEM_CLOCK


def transmitter(slave: int) -> object:
    return parse_device_config(
        {
            "name": f"lt-{slave}",
            "driver": "modbus_rtu",
            "port": "bus1",
            "interval_s": 0.05,
            "slave": slave,
            "write_single_only": True,
            "timeout_s": 0.1,
            "registers": [{"metric": "decimals", "address": 3}],
        }
    )


def test_writes_and_calls_run_on_the_owner_thread() -> None:
    sims = [simulated("level_transmitter", 1), simulated("water_level", 2)]
    with bus_rig(sims, [transmitter(1), gauge(2)]) as rig:  # type: ignore[list-item]
        rig.wait(lambda: rig.sink.good_reads("lt-1") >= 1, "first read")

        rig.owner.write("lt-1", "decimals", 1)
        where = rig.owner.submit(lambda access: threading.current_thread().name)
        read_back = rig.owner.submit(lambda access: access.driver("lt-1").read())
        failure = rig.owner.poll_now("gauge-2")

    assert where == "port-bus1"
    assert read_back == [Measurement("decimals", 1.0)]
    assert failure is None


def test_a_call_that_raises_hands_its_error_back_and_polling_goes_on() -> None:
    with bus_rig([simulated("water_level", 1)], [gauge(1)]) as rig:
        with pytest.raises(KeyError, match="no open device 'nope'"):
            rig.owner.submit(lambda access: access.driver("nope"))
        with pytest.raises(ValueError, match="no register with metric"):
            rig.owner.write("gauge-1", "no_such_metric", 1.0)
        before = rig.sink.good_reads("gauge-1")
        rig.wait(lambda: rig.sink.good_reads("gauge-1") > before + 3, "reads go on")
        assert rig.owner.crashes == 0


def test_a_call_not_started_in_time_times_out_and_never_runs() -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def block(access: object) -> bool:
        started.set()
        return release.wait(5)

    with bus_rig([simulated("water_level", 1)], [gauge(1)]) as rig:
        blocker = threading.Thread(target=lambda: rig.owner.submit(block, timeout_s=5))
        blocker.start()
        rig.wait(started.is_set, "the owner busy with a long call")
        try:
            with pytest.raises(TimeoutError, match="no result within"):
                rig.owner.submit(lambda access: ran.append("late"), timeout_s=0.2)
        finally:
            release.set()
            blocker.join()
        rig.owner.submit(lambda access: None)  # the queue has moved on past the late call
    assert ran == []


def test_calls_fail_at_once_when_the_port_is_not_open() -> None:
    port = PortConfig(name="bus1", url="/dev/edgewatch-no-such-port", timeout_s=0.1)
    owner = PortOwner(port, [gauge(1)], Sink(), SYSTEM_CLOCK)
    with pytest.raises(PortUnavailableError, match="not running"):
        owner.submit(lambda access: None)
    owner.start()
    try:
        with pytest.raises(PortUnavailableError, match="not open"):
            owner.submit(lambda access: None, timeout_s=2)
    finally:
        owner.stop()


def test_a_dead_slave_costs_only_its_own_bounded_tries() -> None:
    sims = [simulated("water_level", s) for s in (1, 2, 3)]
    sims[1].faults = Faults(silent=True)
    with bus_rig(sims, [gauge(1), gauge(2), gauge(3)]) as rig:
        rig.wait(lambda: rig.sink.good_reads("gauge-3") >= 20, "live slaves read")
        dead = rig.poller("gauge-2")
        tries = dead.health().reads_failed
        assert rig.sink.good_reads("gauge-1") >= 20
        assert dead.state() is DeviceState.FAILING
        # The others read every 20 ms; the dead one backs off to 0.2 s between tries.
        assert tries <= 12, tries

        sims[1].faults = Faults()
        rig.wait(lambda: dead.state() is DeviceState.OK, "back on its interval")


class BreakableClock(FakeClock):
    """The one fake clock, whose next reading on a port owner's thread can be made to raise
    (``explode``): a bug inside the owner loop."""

    explode = False

    def monotonic_s(self) -> float:
        if self.explode and threading.current_thread().name.startswith("port-"):
            self.explode = False
            raise RuntimeError("injected: the clock broke")
        return self.now_s


class DeadDriver:
    answering = False

    @property
    def device_name(self) -> str:
        return "gauge-1"

    def read(self) -> list[Measurement]:
        if self.answering:
            return [Measurement("level_cm", 1.0)]
        raise DriverError(ErrorKind.TIMEOUT, "no answer")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("max_s", [DEVICE_BACKOFF_MAX_S, 5.0])
def test_backoff_doubles_to_its_cap_and_an_answer_restores_the_interval(max_s: float) -> None:
    clock = FakeClock()
    poller = DevicePoller(gauge(1), Sink(), clock, backoff_max_s=max_s)
    driver = DeadDriver()
    poller.driver = driver
    waits = []
    for _ in range(30):  # a whole night of a dead device, on an injected clock
        clock.now_s = poller.next_due_s
        poller.poll()
        poller.advance_schedule()
        waits.append(round(poller.next_due_s - clock.now_s, 6))
    assert waits[:4] == [0.02, min(max_s, 0.5), 1.0, 2.0]  # one retry, then from 0.5 s
    assert max(waits) == max_s  # reached, never passed
    assert waits[-1] == max_s

    driver.answering = True
    clock.now_s = poller.next_due_s
    poller.poll()
    poller.advance_schedule()
    assert poller.next_due_s - clock.now_s == pytest.approx(0.02)


def test_backoff_rule() -> None:
    assert backoff_s(1, base_s=0.5, max_s=30) == 0.5
    assert backoff_s(7, base_s=0.5, max_s=30) == 30
    assert backoff_s(10_000, base_s=0.5, max_s=30) == 30
    assert device_retry_s(0, interval_s=60) == 60  # a slow gauge keeps its interval
    assert device_retry_s(5, interval_s=60) == 60  # and is never tried more often
    assert device_retry_s(1, interval_s=1) == 1  # one lost answer: no backoff yet
    assert device_retry_s(2, interval_s=1) == 1
    assert device_retry_s(3, interval_s=1) == 2
    assert device_retry_s(2, interval_s=0.01) == 0.5
    with pytest.raises(ValueError, match="positive"):
        backoff_s(1, base_s=0, max_s=1)


def test_a_crashed_owner_loop_is_counted_and_restarted(rig_clock: BreakableClock) -> None:
    clock = rig_clock
    with bus_rig([simulated("water_level", 1)], [gauge(1)], clock=clock) as rig:
        _tick_until(rig, clock, lambda: rig.sink.good_reads("gauge-1") >= 2)
        clock.explode = True
        _tick_until(rig, clock, lambda: rig.owner.crashes == 1)
        before = rig.sink.good_reads("gauge-1")
        _tick_until(rig, clock, lambda: rig.sink.good_reads("gauge-1") > before + 2)
        assert rig.owner.alive


@pytest.fixture
def rig_clock() -> BreakableClock:
    return BreakableClock()


def _tick_until(rig: Rig, clock: FakeClock, condition: object) -> None:
    """Move the injected clock on while waiting, so every schedule comes due."""

    def tick() -> bool:
        clock.now_s += 0.05
        return bool(condition())  # type: ignore[operator]

    rig.wait(tick, "condition on the injected clock")
