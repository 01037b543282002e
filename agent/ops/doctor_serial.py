"""``agent doctor``: the serial ports and the devices on them.

For each ``[[ports]]`` entry: the device path exists (and whether a stable
``/dev/serial/by-id`` name would be better), no other process has it open, and this user
may open it. Then, when the agent is not running, each device is read once through its
real driver; while the agent runs it owns the ports (RS-485 has one master), so the
devices are not read and the result says so.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import pwd
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import serial

from agent.bus.ports import open_serial
from agent.config import AgentConfig, PortConfig
from agent.ops.checks import CheckName, CheckResult, failed, passed, skipped, warned
from agent.ops.holders import Holder, holders_of
from drivers.base import DeviceConfig, DriverError, ErrorKind, LineOptions
from drivers.registry import create_driver

BY_ID = Path("/dev/serial/by-id")
DEVICE_READ_TIMEOUT_S = 1.0  # a device that is there answers well within this
_UNSTABLE_NAME = re.compile(r"^/dev/tty(USB|ACM)\d+$")
SERVICE_USER = "edgewatch"

READ_FIXES: dict[str, str] = {
    ErrorKind.TIMEOUT: "no answer: check power, the A/B wires (swap them), the slave id, baud"
    " and parity (find them with `edgewatch agent probe --port PORT --scan-baud`)",
    ErrorKind.CRC: "garbled answers: check termination (120 ohm at both ends only), parity,"
    " and that no two devices share the slave id",
    ErrorKind.WRONG_ID: "another slave answered: two devices share an id, or the config's"
    " slave is wrong (`edgewatch agent probe`)",
    ErrorKind.EXCEPTION: "the device refused the register: take the register map from its"
    " manual (0-based addresses)",
    ErrorKind.GARBAGE: "noise: baud or parity wrong, missing bias/termination, or a"
    " non-Modbus device on the bus",
    ErrorKind.INVALID_VALUE: "the device answered with a sentinel or out-of-range value:"
    " check its sensor (disconnected probe?)",
    ErrorKind.IO: "the port failed: replug the adapter, check `dmesg | tail`",
}


def is_device_path(url: str) -> bool:
    return "://" not in url


def stable_names(path: str, *, by_id: Path = BY_ID) -> list[str]:
    """The ``/dev/serial/by-id`` links that point at ``path``."""
    real = os.path.realpath(path)
    try:
        links = sorted(by_id.iterdir())
    except OSError:
        return []
    return [str(link) for link in links if os.path.realpath(link) == real]


def present_ports(*, by_id: Path = BY_ID) -> list[str]:
    """Serial adapters plugged in now, stable names first."""
    found = [str(p) for p in sorted(by_id.glob("*"))] if by_id.is_dir() else []
    dev = Path("/dev")
    for pattern in ("ttyUSB*", "ttyACM*"):
        found += [str(p) for p in sorted(dev.glob(pattern))]
    return found


def check_port(port: PortConfig, *, by_id: Path = BY_ID) -> Iterator[CheckResult]:
    """exists, name, free, access: a failure ends the port's checks."""
    subject = f"{port.name} ({port.url})"
    if not is_device_path(port.url):
        yield skipped(CheckName.PORT_EXISTS, "a pyserial URL, not a device path", subject)
        return
    if not Path(port.url).exists():
        present = present_ports(by_id=by_id)
        if present:
            fix = (
                "plug in the adapter (see `dmesg | tail`), or set ports.url to one present: "
                + ", ".join(present)
            )
        else:
            fix = (
                "no USB serial adapter is plugged in: plug one in and check `dmesg | tail` "
                "shows it, then set ports.url to its /dev/serial/by-id/ name"
            )
        yield failed(CheckName.PORT_EXISTS, f"{port.url} does not exist", fix, subject)
        return
    yield passed(CheckName.PORT_EXISTS, f"{port.url} exists", subject)
    yield _check_name(port, subject, by_id)
    yield from _check_free_and_access(port, subject)


def _check_name(port: PortConfig, subject: str, by_id: Path) -> CheckResult:
    if not _UNSTABLE_NAME.match(port.url):
        return passed(CheckName.PORT_NAME, "a stable name", subject)
    stable = stable_names(port.url, by_id=by_id)
    better = f"use {stable[0]}" if stable else f"use a name from {BY_ID}/ (ls -l {BY_ID})"
    return warned(
        CheckName.PORT_NAME,
        f"{port.url} may change after a reboot or replugging (with two adapters they swap)",
        f"{better}: it names the adapter itself",
        subject,
    )


def _check_free_and_access(port: PortConfig, subject: str) -> Iterator[CheckResult]:
    holders = holders_of(port.url)
    # The pty's master side is the line's far end (the simulator), not a second master.
    far_ends = [h for h in holders.found if h.is_pty_master]
    agents = [h for h in holders.found if h.is_edgewatch_agent and not h.is_pty_master]
    others = [h for h in holders.found if h not in far_ends and h not in agents]
    if others:
        yield failed(
            CheckName.PORT_FREE,
            "in use by " + ", ".join(h.describe() for h in others),
            f"close it (or `kill {others[0].pid}`): two programs on one port garble each"
            " other's frames",
            subject,
        )
        return
    try:
        fd = os.open(port.url, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            yield failed(
                CheckName.PORT_FREE,
                "opened exclusively by another process (TIOCEXCL)",
                "find it with `sudo fuser -v PORT` and close it",
                subject,
            )
        elif exc.errno in (errno.EACCES, errno.EPERM):
            yield failed(CheckName.PORT_ACCESS, *_access_problem(port.url), subject)
        else:
            yield failed(
                CheckName.PORT_ACCESS, f"cannot open: {exc}", "replug the adapter", subject
            )
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield failed(
                CheckName.PORT_FREE,
                "locked by another process (an exclusive open)",
                "find it with `sudo fuser -v PORT` and close it",
                subject,
            )
            return
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if agents:
        yield passed(
            CheckName.PORT_FREE, f"in use by the edgewatch agent (pid {agents[0].pid})", subject
        )
    elif far_ends:
        yield passed(
            CheckName.PORT_FREE,
            f"a pseudo-terminal: its other end is {far_ends[0].describe()}, the simulated line",
            subject,
        )
    elif holders.unseen and os.geteuid() != 0:
        yield passed(
            CheckName.PORT_FREE,
            f"not open by any process this user can see ({holders.unseen} others'"
            " not visible: sudo to be sure)",
            subject,
        )
    else:
        yield passed(CheckName.PORT_FREE, "no other process has it open", subject)
    yield passed(CheckName.PORT_ACCESS, _access_note(port.url), subject)


def _owner(path: str) -> tuple[str, str, int]:
    info = os.stat(path)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    return user, group, stat.S_IMODE(info.st_mode)


def _service_user_note(group: str) -> str:
    try:
        members = grp.getgrnam(group).gr_mem
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return ""
    inside = SERVICE_USER in members
    return f"; the service user {SERVICE_USER} is {'' if inside else 'NOT '}in {group}"


def _access_problem(path: str) -> tuple[str, str]:
    user, group, mode = _owner(path)
    me = pwd.getpwuid(os.geteuid()).pw_name
    return (
        f"permission denied: {path} is {user}:{group} {mode:o}; {me} is not in {group}",
        f"sudo usermod -aG {group} {me}, then log out and in again"
        f" (the service user gets {group} from `edgewatch agent install`)",
    )


def _access_note(path: str) -> str:
    user, group, mode = _owner(path)
    return f"read/write for this user ({user}:{group} {mode:o}){_service_user_note(group)}"


def agent_holding(data_dir: Path) -> Holder | None:
    """The running agent of this data_dir: the process that has its buffer.db open."""
    found = holders_of(data_dir / "buffer.db").found
    return found[0] if found else None


def check_devices(
    config: AgentConfig,
    usable_ports: set[str],
    *,
    progress: Callable[[str], None] = lambda text: None,
) -> Iterator[CheckResult]:
    """Read each device once, port by port; none while the agent runs."""
    running = agent_holding(config.gateway.data_dir)
    total = len(config.devices)
    done = 0
    for port in config.ports:
        devices = config.devices_on(port.name)
        if running is not None or port.name not in usable_ports:
            why = (
                f"the agent (pid {running.pid}) is running and owns the ports: not read"
                " (`sudo systemctl stop edgewatch-agent` to read them, or see"
                " `edgewatch agent status`)"
                if running is not None
                else f"port {port.name} is not usable (see above)"
            )
            for device in devices:
                yield skipped(CheckName.DEVICE_ANSWERS, why, device.name)
            done += len(devices)
            continue
        short = port.model_copy(update={"timeout_s": min(port.timeout_s, DEVICE_READ_TIMEOUT_S)})
        try:
            link = open_serial(short)
        except (serial.SerialException, OSError) as exc:
            for device in devices:
                yield failed(
                    CheckName.DEVICE_ANSWERS,
                    f"cannot open {port.url}: {exc}",
                    READ_FIXES[ErrorKind.IO],
                    device.name,
                )
            continue
        try:
            for device in devices:
                done += 1
                progress(f"reading device {done}/{total}: {device.name} on {port.name}")
                yield _read_once(device, link, LineOptions(port.inter_frame_silence))
        finally:
            link.close()


def _read_once(device: DeviceConfig, link: serial.Serial, line: LineOptions) -> CheckResult:
    name = device.name
    try:
        driver = create_driver(device, link, line)
        try:
            measurements = driver.read()
        finally:
            driver.close()
    except DriverError as exc:
        return failed(
            CheckName.DEVICE_ANSWERS,
            f"{exc.kind}: {exc}",
            READ_FIXES.get(exc.kind, "see the driver's README"),
            name,
        )
    except Exception as exc:
        return failed(CheckName.DEVICE_ANSWERS, f"read failed: {exc!r}", "a bug: report it", name)
    values = ", ".join(
        f"{m.metric}={m.value:g}{m.unit and ' ' + m.unit}"
        if m.value is not None
        else f"{m.metric}: {m.quality.value} ({m.error or 'no value'})"
        for m in measurements
    )
    bad = [m for m in measurements if m.value is None]
    if bad:
        return warned(
            CheckName.DEVICE_ANSWERS,
            f"answered, but not every value: {values}",
            READ_FIXES.get(bad[0].error_kind or ErrorKind.INVALID_VALUE, ""),
            name,
        )
    return passed(CheckName.DEVICE_ANSWERS, f"answered: {values}", name)
