"""One contract for every driver, run against its simulated device on a real pty.

Good values read; a silent device is a timeout within its timeout; each fault is the
right ErrorKind (or a bad measurement naming the metric); after each fault clears, the
next good answer is read; every README sample parses.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.base import Driver, DriverError, ErrorKind, Measurement
from drivers.registry import DRIVERS, create_driver, parse_device_config
from edgewatch.waiting import wait_until
from firmware_sim import Faults
from wire import Quality

from .conftest import RecordingSerial
from .sims import CASES, FAULT_TIMEOUT_S, Case, Served

PORT_TIMEOUT_S = 0.5


@dataclass
class Rig:
    case: Case
    served: Served
    port: RecordingSerial
    driver: Driver

    def read_good(self) -> list[Measurement]:
        """A good read, once whatever a fault left on the line has drained."""
        measurements = wait_until(self._try_read, timeout_s=3, message=f"{self.case.id} good")
        assert measurements is not None
        return measurements

    def _try_read(self) -> list[Measurement] | None:
        try:
            measurements = self.driver.read()
        except DriverError:
            return None
        if all(m.quality is Quality.GOOD for m in measurements):
            return measurements
        return None

    def switch(self, faults: Faults) -> None:
        self.served.device.faults = faults
        self.served.settle()
        # Whatever was sent before the switch (a push, a late answer on a loaded machine)
        # is not the faulty answer under test.
        self.port.reset_input_buffer()


@contextmanager
def open_rig(case: Case) -> Iterator[Rig]:
    """The case's simulator on a real pty, and its driver on the other end."""
    with case.serve() as served:
        raw = {"name": "dev-1", "port": "p1", "timeout_s": FAULT_TIMEOUT_S, **case.config}
        config = parse_device_config(raw)
        with RecordingSerial(served.port_path, served.baud, timeout=PORT_TIMEOUT_S) as port:
            yield Rig(case, served, port, create_driver(config, port))


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    with open_rig(request.param) as opened:
        yield opened


def test_reads_good_values(rig: Rig) -> None:
    measurements = rig.read_good()
    assert [m.metric for m in measurements] == rig.case.metrics
    assert all(m.value is not None for m in measurements)
    assert rig.driver.device_name == "dev-1"


def test_silent_device_times_out_within_its_timeout(rig: Rig) -> None:
    rig.read_good()
    rig.switch(Faults(silent=True))
    rig.port.reads.clear()
    with pytest.raises(DriverError) as caught:
        rig.driver.read()
    # The reads that found the line silent waited, all told, no longer than the device's
    # timeout (the port's own is PORT_TIMEOUT_S); the port's timeout is back afterwards.
    assert 0 < rig.port.waited_s() <= FAULT_TIMEOUT_S + 1e-9, rig.port.reads
    assert all(t is not None and t <= FAULT_TIMEOUT_S for t, _ in rig.port.reads), rig.port.reads
    assert rig.port.timeout == PORT_TIMEOUT_S
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert "device 'dev-1'" in str(caught.value)
    rig.switch(Faults())
    rig.read_good()


FAULTS: dict[str, Faults] = {
    "silent": Faults(silent=True),
    "corrupt_crc": Faults(corrupt_crc=True),
    "reply_as_slave": Faults(reply_as_slave=9),
    "truncate": Faults(truncate=True),
    "garbage": Faults(garbage=True),
    "late_s": Faults(late_s=FAULT_TIMEOUT_S * 2),
}


# Only the faults a device can show: a key-value line has no checksum or address, and a
# pushing device has no answer to be late with.
FAULT_CASES = [
    (case, fault)
    for case in CASES
    for fault, kind in sorted(case.fault_kinds.items())
    if kind is not None
]


@pytest.mark.parametrize(
    ("case", "fault"), FAULT_CASES, ids=[f"{case.id}-{fault}" for case, fault in FAULT_CASES]
)
def test_fault_is_the_right_kind_and_the_next_answer_reads(case: Case, fault: str) -> None:
    with open_rig(case) as rig:
        check_fault(rig, fault, str(case.fault_kinds[fault]))


def check_fault(rig: Rig, fault: str, expected: str) -> None:
    rig.read_good()
    rig.switch(FAULTS[fault])
    answers = rig.served.answers()
    with pytest.raises(DriverError) as caught:
        rig.driver.read()
    assert caught.value.kind is ErrorKind(expected), str(caught.value)
    assert "device 'dev-1'" in str(caught.value)
    rig.switch(Faults())
    if fault == "late_s":  # the late answer lands after the timeout: let it, then go on
        wait_until(lambda: rig.served.answers() > answers, timeout_s=2, message="late answer")
    rig.read_good()


def test_out_of_range_is_a_bad_measurement_naming_the_metric(rig: Rig) -> None:
    rig.read_good()
    rig.switch(Faults(out_of_range=True))

    def bad_read() -> list[Measurement] | None:
        measurements = {m.metric: m for m in rig.driver.read()}
        bad = measurements[rig.case.out_of_range_metric]
        return list(measurements.values()) if bad.quality is Quality.BAD else None

    measurements = wait_until(bad_read, timeout_s=2, message="an out-of-range read")
    assert measurements is not None
    bad = next(m for m in measurements if m.metric == rig.case.out_of_range_metric)
    assert bad.value is None
    assert bad.error is not None
    assert ErrorKind.INVALID_VALUE in bad.error
    assert repr(rig.case.out_of_range_metric) in bad.error
    rig.switch(Faults())
    rig.read_good()


def test_stuck_value_repeats(rig: Rig) -> None:
    rig.switch(Faults(stuck=True))
    first = [m.value for m in rig.read_good()]
    if rig.case.push:
        rig.port.reset_input_buffer()
    assert [m.value for m in rig.read_good()] == first
    rig.switch(Faults())


def test_reboot_keeps_it_answering(rig: Rig) -> None:
    rig.served.device.reboot()
    assert rig.served.device.stats.reboots == 1
    rig.read_good()


def test_closed_port_is_an_io_error(rig: Rig) -> None:
    rig.port.close()
    with pytest.raises(DriverError) as caught:
        rig.driver.read()
    assert caught.value.kind is ErrorKind.IO


README_SAMPLE = re.compile(r"```toml\n(.*?)```", flags=re.DOTALL)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_readme_samples_parse(name: str) -> None:
    folder = Path(importlib.import_module(f"drivers.{name}").__file__ or "").parent
    samples = README_SAMPLE.findall((folder / "README.md").read_text())
    assert samples
    devices: list[dict[str, Any]] = [d for s in samples for d in tomllib.loads(s)["devices"]]
    assert devices
    for raw in devices:
        assert parse_device_config(raw).driver == name


def test_every_polled_driver_has_a_contract_case() -> None:
    """Station drivers (they push) have their own: test_station_contract.py."""
    polled = {name for name, spec in DRIVERS.items() if not spec.pushed}
    assert {c.config["driver"] for c in CASES} == polled
