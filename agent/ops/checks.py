"""What ``agent doctor`` reports: one result per check and subject, with the fix for a failure.

Every check has a stable name (``CheckName``); docs/field-guide.md explains each (a test
keeps them in step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PASS = "PASS"  # noqa: S105 (an outcome, not a password)
    WARN = "WARN"  # works, but will bite: read the note
    FAIL = "FAIL"  # the agent cannot do its job until this is fixed
    SKIP = "SKIP"  # could not be checked now (the reason says why)


class CheckName(StrEnum):
    CONFIG = "config"
    PORT_EXISTS = "port-exists"
    PORT_NAME = "port-name"
    PORT_FREE = "port-free"
    PORT_ACCESS = "port-access"
    DEVICE_ANSWERS = "device-answers"
    BROKER_REACHABLE = "broker-reachable"
    BROKER_TLS = "broker-tls"
    BROKER_LOGIN = "broker-login"
    CLOCK = "clock"
    DISK = "disk"
    BUFFER = "buffer"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: CheckName
    outcome: Outcome
    message: str
    subject: str = ""  # the port, device or broker it is about
    fix: str = ""  # what to do, for a FAIL (and a WARN where there is something to do)

    def as_dict(self) -> dict[str, Any]:
        return {key: str(value) for key, value in asdict(self).items()}


def passed(name: CheckName, message: str, subject: str = "") -> CheckResult:
    return CheckResult(name, Outcome.PASS, message, subject)


def warned(name: CheckName, message: str, fix: str = "", subject: str = "") -> CheckResult:
    return CheckResult(name, Outcome.WARN, message, subject, fix)


def failed(name: CheckName, message: str, fix: str, subject: str = "") -> CheckResult:
    return CheckResult(name, Outcome.FAIL, message, subject, fix)


def skipped(name: CheckName, message: str, subject: str = "") -> CheckResult:
    return CheckResult(name, Outcome.SKIP, message, subject)


def human_age(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
