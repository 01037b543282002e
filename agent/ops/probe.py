"""Find the Modbus slaves on a cable: which ids answer, at which baud, and what they read.

For a field technician with a laptop on an RS-485 adapter. For each baud asked, the port is
opened at that baud and parity and every slave id is asked for one register (through the
Modbus RTU driver, as the agent would). An id that answers, with a value or with a Modbus
exception (the id exists, the register does not), is found; an id found at one baud is not
asked again at the next. Answers that are noise (bad CRC, another id, garbage) are kept as
``suspect``: something is there, but the line is not right (parity, termination, two
devices at one id).

``config_snippet`` turns what was found into ``[[ports]]`` and ``[[devices]]`` tables that
the agent's config accepts as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import serial

from agent.bus.ports import write_timeout_for
from drivers.base import DriverError, ErrorKind
from drivers.registry import create_driver, parse_device_config

# Tried in this order with --scan-baud: the usual defaults first (FIELD-DEVICES.md).
SCAN_BAUDS = (9600, 19200, 4800, 38400, 57600, 115200, 2400, 1200)
MODBUS_BITS_PER_CHAR = 11
_FRAME_CHARS = 8 + 25 + 7  # a 10-register read with its silences: a timeout that fits it
_NOT_THERE = frozenset({ErrorKind.TIMEOUT})
_FOUND = frozenset({ErrorKind.EXCEPTION})


@dataclass(frozen=True, slots=True)
class Answer:
    """What one slave id said at one baud."""

    slave: int
    baud: int
    parity: str
    register: int
    function: int
    answer: str  # "value", "exception", or the error kind of a suspect answer
    value: int | None = None  # the register's raw u16, when it read
    detail: str = ""


@dataclass
class ProbeResult:
    port: str
    parity: str
    bauds: list[int]
    slaves_scanned: int
    found: list[Answer] = field(default_factory=list)  # answered: a value or an exception
    suspect: list[Answer] = field(default_factory=list)  # noise where an answer should be

    def as_dict(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "parity": self.parity,
            "bauds": self.bauds,
            "slaves_scanned": self.slaves_scanned,
            "found": [asdict(a) for a in self.found],
            "suspect": [asdict(a) for a in self.suspect],
        }


@dataclass(frozen=True, slots=True)
class Progress:
    baud: int
    slave: int
    done: int  # ids asked so far, over every baud
    total: int
    found: int


OpenPort = Callable[[str, int, str, float], serial.Serial]


def open_port(url: str, baud: int, parity: str, timeout_s: float) -> serial.Serial:
    return serial.serial_for_url(
        url,
        baudrate=baud,
        parity=parity,
        timeout=timeout_s,
        write_timeout=write_timeout_for(url, timeout_s),
    )


def parse_slaves(text: str) -> list[int]:
    """``1-247``, ``5``, ``1,3,10-12`` -> sorted ids; ValueError naming the bad part."""
    ids: set[int] = set()
    for raw_part in text.split(","):
        part = raw_part.strip()
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"slaves: {part!r} is not an id or a range like 1-247") from None
        if not 1 <= first <= last <= 247:
            raise ValueError(f"slaves: {part!r} is outside 1-247 (or the range is reversed)")
        ids.update(range(first, last + 1))
    return sorted(ids)


def probe(
    url: str,
    *,
    bauds: Sequence[int] = (9600,),
    parity: str = "N",
    slaves: Iterable[int] = range(1, 248),
    register: int = 0,
    function: int = 3,
    timeout_s: float = 0.1,
    opener: OpenPort = open_port,
    progress: Callable[[Progress], None] | None = None,
) -> ProbeResult:
    """Ask every id in ``slaves`` at every baud in ``bauds`` for one register.

    Raises serial.SerialException when the port cannot be opened.
    """
    ids = list(slaves)
    result = ProbeResult(url, parity, list(bauds), len(ids))
    answered: set[int] = set()
    done, total = 0, len(ids) * len(bauds)
    for baud in bauds:
        with opener(url, baud, parity, timeout_s) as link:
            for slave in ids:
                done += 1
                if progress is not None:
                    progress(Progress(baud, slave, done, total, len(result.found)))
                if slave in answered:
                    continue
                answer = _ask(link, slave, baud, parity, register=register, function=function)
                if answer is None:
                    continue
                if answer.answer in ("value", str(ErrorKind.EXCEPTION)):
                    result.found.append(answer)
                    answered.add(slave)
                else:
                    result.suspect.append(answer)
    return result


def _ask(
    link: serial.Serial, slave: int, baud: int, parity: str, *, register: int, function: int
) -> Answer | None:
    config = parse_device_config(
        {
            "name": f"probe-{slave}",
            "driver": "modbus_rtu",
            "port": "probe",
            "slave": slave,
            "registers": [{"metric": "probe", "address": register, "function": function}],
        }
    )
    driver = create_driver(config, link)

    def answer(kind: str, value: int | None = None, detail: str = "") -> Answer:
        return Answer(slave, baud, parity, register, function, kind, value, detail)

    try:
        measurements = driver.read()
    except DriverError as exc:
        if exc.kind in _NOT_THERE:
            return None
        return answer("exception" if exc.kind in _FOUND else str(exc.kind), detail=str(exc))
    finally:
        driver.close()
    raw = measurements[0].value
    return answer("value", None if raw is None else int(raw))


def suggested_timeout_s(baud: int) -> float:
    """A response timeout for the config: the default 0.3 s, or three frames at low bauds."""
    frame_s = _FRAME_CHARS * MODBUS_BITS_PER_CHAR / baud
    return round(max(0.3, 3 * frame_s), 2)


def config_snippet(
    result: ProbeResult, *, port_name: str = "bus1", interval_s: float = 10.0
) -> str:
    """``[[ports]]`` + one ``[[devices]]`` per slave found, ready for agent.toml."""
    bauds = sorted({a.baud for a in result.found}, key=result.bauds.index)
    lines = [f"# edgewatch agent probe {result.port}: {len(result.found)} slave(s) found"]
    if len(bauds) > 1:
        lines.append(
            "# Devices answer at different bauds on one cable: a bus runs at one baud."
            " Commission them to one baud, then keep one [[ports]] entry."
        )
    for suspect in result.suspect:
        lines.append(
            f"# slave {suspect.slave} at {suspect.baud}: a {suspect.answer} answer"
            " (check parity, termination, duplicate ids)"
        )
    for baud in bauds:
        name = port_name if len(bauds) == 1 else f"{port_name}-{baud}"
        lines += [
            "",
            "[[ports]]",
            f"name = {_toml(name)}",
            f"url = {_toml(result.port)}",
            f"baud = {baud}",
            f"parity = {_toml(result.parity)}",
            f"timeout_s = {suggested_timeout_s(baud)}",
        ]
        for answer in (a for a in result.found if a.baud == baud):
            what = (
                f"read {answer.value}"
                if answer.answer == "value"
                else "refused the register (exception): take an address from its manual"
            )
            lines += [
                "",
                "[[devices]]",
                f"name = {_toml(f'slave-{answer.slave}')}",
                'driver = "modbus_rtu"',
                f"port = {_toml(name)}",
                f"interval_s = {interval_s}",
                f"slave = {answer.slave}",
                "",
                f"[[devices.registers]]           # {what}",
                f"metric = {_toml(f'register_{answer.register}')}",
                f"address = {answer.register}",
                f"function = {answer.function}",
            ]
    return "\n".join(lines) + "\n"


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
