"""Supervised loops for the agent's and the controller's threads: restarted with a capped
backoff after a crash, and logged once per change of state, not once per failure.

A loop that fails every tick of a persistent fault (a database away, a bug hit by every
call) must not write a traceback four times a second: ``FailureLog`` writes the first
failure with its traceback, counts the ones that follow quietly, and writes one line when
the thing works again (with how many failures it took). ``supervise`` restarts a crashed
loop after a doubling wait capped at ``max_s`` (never minutes of blackout);
``run_every`` runs a periodic job and keeps going whatever one run does.

This lives in ``wire`` because both sides use it and ``wire`` is the one package they share.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Backoff:
    """A doubling wait between ``min_s`` and ``max_s``; ``reset`` after a success."""

    min_s: float
    max_s: float

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ValueError(f"backoff needs 0 < min_s <= max_s: {self.min_s}, {self.max_s}")
        self.delay_s = self.min_s

    def next_s(self) -> float:
        """The wait to use now; the one after is twice as long (up to ``max_s``)."""
        delay_s = self.delay_s
        self.delay_s = min(self.delay_s * 2, self.max_s)
        return delay_s

    def reset(self) -> None:
        self.delay_s = self.min_s


class FailureLog:
    """One log line when ``what`` starts failing (with the traceback) and one when it
    recovers; failures in between are counted (``failures``), logged at DEBUG only."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self.what = what
        self.failures = 0  # every failure so far
        self._in_a_row = 0
        self._lock = threading.Lock()

    @property
    def failing(self) -> bool:
        return self._in_a_row > 0

    def failed(self, exc: BaseException, *, then: str = "") -> None:
        with self._lock:
            self.failures += 1
            self._in_a_row += 1
            first = self._in_a_row == 1
        suffix = f"; {then}" if then else ""
        if first:
            self._log.error(
                "%s failed%s (logged once until it works again)",
                self.what,
                suffix,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        else:
            self._log.debug("%s failed again (%d in a row): %r", self.what, self._in_a_row, exc)

    def succeeded(self) -> None:
        with self._lock:
            in_a_row, self._in_a_row = self._in_a_row, 0
        if in_a_row:
            self._log.info("%s works again after %d failures in a row", self.what, in_a_row)


def supervise(
    loop: Callable[[], None],
    *,
    failures: FailureLog,
    stopped: Callable[[], bool],
    wait: Callable[[float], bool],
    backoff: Backoff,
    on_crash: Callable[[BaseException], None] | None = None,
    monotonic_s: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``loop`` until it returns or ``stopped()``; when it raises, ``on_crash`` is told,
    the failure logged (once per state change), and the loop restarted after
    ``wait(backoff)`` (which returns True when the thread must stop instead).

    A loop that ran longer than ``backoff.max_s`` before it crashed had recovered: that
    crash is a new failure (logged with its traceback) and the backoff starts again."""
    while not stopped():
        started_s = monotonic_s()
        try:
            loop()
            return
        except Exception as exc:
            if monotonic_s() - started_s > backoff.max_s:
                failures.succeeded()
                backoff.reset()
            if on_crash is not None:
                on_crash(exc)
            delay_s = backoff.next_s()
            failures.failed(exc, then=f"restarting in {delay_s:.1f} s")
            if wait(delay_s):
                return


def run_every(
    interval_s: float,
    job: Callable[[], None],
    *,
    failures: FailureLog,
    stop: threading.Event,
) -> None:
    """Run ``job`` every ``interval_s`` until ``stop`` is set; a run that raises is logged
    once per change of state (``failures``) and the next run comes on time."""
    while not stop.wait(interval_s):
        run_once(job, failures)


def run_once(job: Callable[[], None], failures: FailureLog) -> bool:
    """Run ``job``; a failure is logged once per change of state. True when it worked."""
    try:
        job()
    except Exception as exc:
        failures.failed(exc, then="going on")
        return False
    failures.succeeded()
    return True
