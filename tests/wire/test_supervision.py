"""Supervised loops: restarted with a capped backoff, logged once per change of state."""

from __future__ import annotations

import logging
import threading

import pytest

from wire.supervision import Backoff, FailureLog, run_every, run_once, supervise


class HeldTime:
    def __init__(self) -> None:
        self.now_s = 0.0
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now_s += seconds
        return False


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next_s() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_s() == 0.1
    with pytest.raises(ValueError, match="min_s <= max_s"):
        Backoff(2, 1)


def test_a_persistent_failure_is_logged_once_and_its_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = FailureLog(logging.getLogger("test.supervision"), "gap check")
    calls = iter([ValueError("db away")] * 40 + [None, None])

    def job() -> None:
        outcome = next(calls)
        if outcome is not None:
            raise outcome

    with caplog.at_level(logging.INFO, logger="test.supervision"):
        results = [run_once(job, failures) for _ in range(42)]
    assert results == [False] * 40 + [True, True]
    lines = [r for r in caplog.records if r.name == "test.supervision"]
    assert [r.levelno for r in lines] == [logging.ERROR, logging.INFO]
    assert lines[0].exc_info is not None  # the first failure keeps its traceback
    assert "works again after 40 failures in a row" in lines[1].getMessage()
    assert failures.failures == 40
    assert not failures.failing


def test_a_crashing_loop_is_restarted_with_a_capped_backoff_until_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = HeldTime()
    runs: list[int] = []
    crashes: list[str] = []

    def loop() -> None:
        runs.append(1)
        if len(runs) < 6:
            raise RuntimeError(f"crash {len(runs)}")

    with caplog.at_level(logging.DEBUG, logger="test.supervision"):
        supervise(
            loop,
            failures=FailureLog(logging.getLogger("test.supervision"), "owner loop"),
            stopped=lambda: False,
            wait=time.wait,
            backoff=Backoff(0.1, 0.4),
            on_crash=lambda exc: crashes.append(str(exc)),
            monotonic_s=lambda: time.now_s,
        )
    assert len(runs) == 6
    assert crashes == [f"crash {n}" for n in range(1, 6)]
    assert time.waits == [0.1, 0.2, 0.4, 0.4, 0.4]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1


def test_a_loop_that_ran_a_while_before_crashing_again_is_a_new_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = HeldTime()
    runs: list[int] = []

    def loop() -> None:
        runs.append(1)
        if len(runs) == 2:
            time.now_s += 3600  # an hour of good work before the second crash
        if len(runs) < 3:
            raise RuntimeError("crash")

    with caplog.at_level(logging.INFO, logger="test.supervision"):
        supervise(
            loop,
            failures=FailureLog(logging.getLogger("test.supervision"), "delivery loop"),
            stopped=lambda: False,
            wait=time.wait,
            backoff=Backoff(0.1, 5.0),
            monotonic_s=lambda: time.now_s,
        )
    levels = [r.levelno for r in caplog.records if r.name == "test.supervision"]
    assert levels == [logging.ERROR, logging.INFO, logging.ERROR]
    assert time.waits == [0.1, 0.1]  # the backoff started again


def test_stop_ends_supervision_and_periodic_runs() -> None:
    stop = threading.Event()
    ran: list[int] = []

    def job() -> None:
        ran.append(1)
        if len(ran) == 3:
            stop.set()

    run_every(0.001, job, failures=FailureLog(logging.getLogger("t"), "job"), stop=stop)
    assert len(ran) == 3
    supervise(
        lambda: ran.append(2),
        failures=FailureLog(logging.getLogger("t"), "x"),
        stopped=lambda: True,
        wait=lambda _s: True,
        backoff=Backoff(0.1, 1),
    )
    assert ran == [1, 1, 1]  # a stopped supervisor never starts its loop
