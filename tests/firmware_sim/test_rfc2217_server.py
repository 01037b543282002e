"""The RFC 2217 door of a simulated bus under hostile or clumsy clients: one at a time,
bounded, loopback only, and a bad client never takes the line from the next one."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import serial
from serial import rfc2217

from edgewatch.waiting import wait_until
from firmware_sim import SimulatedBus, WaterLevelGauge, modbus
from firmware_sim.rfc2217_server import (
    MAX_PENDING_OUT_BYTES,
    MAX_SUBOPTION_BYTES,
    Rfc2217Server,
)

READ_FIRMWARE = modbus.read_request(1, 3, 2, 1)
FIRMWARE = modbus.read_response(1, 3, [0x0102])
WAIT_S = 5.0


@pytest.fixture
def bus() -> Iterator[SimulatedBus]:
    with SimulatedBus([WaterLevelGauge(slave=1)], rfc2217=True) as served:
        yield served


def url_of(bus: SimulatedBus) -> str:
    assert bus.rfc2217_url is not None
    return bus.rfc2217_url


def address_of(bus: SimulatedBus) -> tuple[str, int]:
    return "127.0.0.1", server_of(bus).port


def server_of(bus: SimulatedBus) -> Rfc2217Server:
    assert bus.rfc2217 is not None
    return bus.rfc2217


def works(bus: SimulatedBus) -> None:
    """A well-behaved client is served."""
    with serial.serial_for_url(url_of(bus), 9600, timeout=2.0) as port:
        port.write(READ_FIRMWARE)
        assert port.read(7) == FIRMWARE


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes the connection (True) or the deadline passes."""
    sock.settimeout(WAIT_S)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_it_listens_on_loopback_only(bus: SimulatedBus) -> None:
    assert bus.rfc2217 is not None
    assert url_of(bus) == f"rfc2217://127.0.0.1:{bus.rfc2217.port}"


def test_a_second_client_is_refused_while_one_holds_the_line(bus: SimulatedBus) -> None:
    with serial.serial_for_url(url_of(bus), 9600, timeout=2.0) as first:
        with socket.create_connection(address_of(bus)) as second:
            assert closed_by_server(second)
        assert bus.rfc2217 is not None
        assert bus.rfc2217.stats.refused == 1
        first.write(READ_FIRMWARE)
        assert first.read(7) == FIRMWARE  # the first never noticed
    works(bus)  # the line is free again once the first left
    assert bus.rfc2217.stats.clients == 2


@pytest.mark.parametrize(
    "telnet",
    [
        rfc2217.IAC + rfc2217.SB + rfc2217.COM_PORT_OPTION + rfc2217.SET_PARITY + b"\x09"
        + rfc2217.IAC + rfc2217.SE,  # a parity code RFC 2217 does not have
        rfc2217.IAC + rfc2217.SE,  # the end of a subnegotiation never begun
        rfc2217.IAC + rfc2217.SB + rfc2217.COM_PORT_OPTION + rfc2217.SET_LINESTATE_MASK
        + rfc2217.IAC + rfc2217.SE,  # a mask without its byte
    ],
    ids=["unknown-parity", "se-without-sb", "empty-mask"],
)  # fmt: skip
def test_a_malformed_telnet_command_drops_the_client_not_the_line(
    bus: SimulatedBus, telnet: bytes
) -> None:
    with socket.create_connection(address_of(bus)) as bad:
        bad.sendall(telnet)
        assert closed_by_server(bad)
    assert bus.rfc2217 is not None
    assert bus.rfc2217.stats.bad_telnet == 1
    works(bus)


def test_an_endless_subnegotiation_drops_the_client(bus: SimulatedBus) -> None:
    with socket.create_connection(address_of(bus)) as bad:
        bad.sendall(rfc2217.IAC + rfc2217.SB + b"x" * (MAX_SUBOPTION_BYTES + 1))
        assert closed_by_server(bad)
    assert bus.rfc2217 is not None
    assert bus.rfc2217.stats.bad_telnet == 1
    works(bus)


def test_a_client_that_never_reads_its_answers_is_dropped(bus: SimulatedBus) -> None:
    """Each "DO <an unknown option>" is answered "WONT": a client asking without reading
    makes answers pile up; past the bound it is dropped, and the memory with it."""
    asking = rfc2217.IAC + rfc2217.DO + b"\x99"
    with socket.socket() as greedy:
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.connect(address_of(bus))
        try:
            for _ in range(4 * MAX_PENDING_OUT_BYTES // 4096):
                greedy.sendall(asking * (4096 // len(asking)))
        except OSError:
            pass  # dropped while still sending: the reset reaches us
        server = server_of(bus)
        wait_until(lambda: server.stats.slow_clients == 1, timeout_s=WAIT_S, message="drop")
    works(bus)


def test_an_absurd_baud_is_a_wrong_baud(bus: SimulatedBus) -> None:
    with serial.serial_for_url(url_of(bus), 2**32 - 1, timeout=2.0) as port:
        port.write(READ_FIRMWARE)
        wait_until(lambda: bus.stats.wrong_baud == 1, timeout_s=WAIT_S, message="judged")
        assert port.in_waiting == 0


def test_stopping_with_a_client_connected_ends_the_session(bus: SimulatedBus) -> None:
    with socket.create_connection(address_of(bus)) as stuck:
        server = server_of(bus)
        wait_until(lambda: server.stats.clients == 1, timeout_s=WAIT_S, message="accepted")
        bus.stop()  # the thread-leak guard checks that the server's thread ended
        assert closed_by_server(stuck)
        assert bus.rfc2217 is None
