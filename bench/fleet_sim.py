"""A load generator: many simulated gateways speaking MQTT 3.1.1 at once, from one thread.

For load and fleet-health benchmarks (``bench.ingest``, ``bench.fleet_health``): thousands
of broker sessions, each with its own client id, will (retained offline status) and birth,
publishing heartbeats and reading batches of the edgewatch contract. Topics and payloads
come from ``wire`` (births, wills and heartbeats are ``wire`` models; a readings batch is
written by hand on the hot path, and tests/bench/test_fleet_sim.py checks that it decodes
as a ``wire.ReadingBatch``). A paho client per gateway would need a thread each; this speaks
the few packets it needs (CONNECT, PUBLISH at QoS 1, PUBACK, PINGREQ, DISCONNECT) over
non-blocking sockets and one selector. It is not device firmware: that is firmware_sim.

A gateway can be killed two ways: ``close`` (the process dies: the socket closes and the
broker sends the will at once) or ``silent`` (the gateway loses power or its link: nothing
more arrives, and the broker sends the will after 1.5 keepalives).
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

import wire
from wire import GatewayState, Health, Status, TopicKind, topic_for

CONNECT, CONNACK, PUBLISH, PUBACK, PINGREQ, DISCONNECT = 1, 2, 3, 4, 12, 14


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def connect_packet(
    client_id: str,
    *,
    keepalive_s: int,
    will: tuple[str, bytes] | None = None,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    flags = 0x02  # clean session
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | (1 << 3) | 0x20  # will, QoS 1, retained
        payload += _string(will[0]) + _string(will[1])
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    variable = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s)
    body = variable + payload
    return bytes([CONNECT << 4]) + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int, *, retain: bool = False) -> bytes:
    body = _string(topic) + struct.pack("!H", packet_id) + payload
    header = (PUBLISH << 4) | (1 << 1) | (1 if retain else 0)  # QoS 1
    return bytes([header]) + _remaining_length(len(body)) + body


@dataclass
class SimGateway:
    gateway_id: str
    sock: socket.socket
    session: int = 1
    seq: int = 0
    next_packet_id: int = 1
    out: bytearray = field(default_factory=bytearray)
    inbox: bytearray = field(default_factory=bytearray)
    unacked: int = 0
    connected: bool = False
    alive: bool = True
    last_sent_s: float = 0.0

    def packet_id(self) -> int:
        pid = self.next_packet_id
        self.next_packet_id = pid % 65535 + 1
        return pid


def status_payload(state: GatewayState, session: int, heartbeat_interval_s: float) -> bytes:
    status = Status(
        state=state,
        session=session,
        ts_ms=time.time_ns() // 1_000_000,
        agent_version="fleet-sim",
        heartbeat_interval_s=heartbeat_interval_s,
    )
    return wire.encode(status)


def readings_payload(session: int, first_seq: int, count: int, ts_ms: int) -> bytes:
    """A live batch of ``count`` readings from ``first_seq`` (the hot path: plain JSON)."""
    rows = [
        {
            "seq": seq,
            "ts_ms": ts_ms,
            "device": "gauge-1",
            "metric": "level_cm",
            "value": 100.0 + seq % 50,
            "unit": "cm",
            "quality": "good",
        }
        for seq in range(first_seq, first_seq + count)
    ]
    batch = {"v": wire.SCHEMA_VERSION, "session": session, "readings": rows}
    return json.dumps(batch, separators=(",", ":")).encode()


class FleetSim:
    """``with FleetSim(host, port, ids) as fleet:`` connects every gateway (will + birth)."""

    def __init__(
        self,
        host: str,
        port: int,
        gateway_ids: list[str],
        *,
        keepalive_s: int = 10,
        heartbeat_interval_s: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.keepalive_s = keepalive_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.selector = selectors.DefaultSelector()
        self.gateways: dict[str, SimGateway] = {}
        self._ids = gateway_ids
        self.acked = 0
        self.resets = 0
        self._next_ping_check_s = 0.0

    def __enter__(self) -> FleetSim:
        for index, gateway_id in enumerate(self._ids):
            self._connect(gateway_id)
            if index % 200 == 199:
                self.pump(0)
        deadline = time.monotonic() + 60
        while not all(g.connected for g in self.gateways.values()):
            if time.monotonic() > deadline:
                missing = sum(not g.connected for g in self.gateways.values())
                raise TimeoutError(f"{missing} simulated gateways got no CONNACK in 60 s")
            self.pump(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        for gateway in self.gateways.values():
            if gateway.alive:
                try:
                    gateway.sock.setblocking(True)
                    gateway.sock.sendall(bytes([DISCONNECT << 4, 0]))
                except OSError:
                    pass
            gateway.sock.close()
        self.selector.close()

    def _connect(self, gateway_id: str) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        gateway = SimGateway(gateway_id, sock)
        will_topic = topic_for(gateway_id, TopicKind.STATUS)
        will = (will_topic, status_payload(GatewayState.OFFLINE, gateway.session, 0))
        gateway.out += connect_packet(f"sim-{gateway_id}", keepalive_s=self.keepalive_s, will=will)
        birth = status_payload(GatewayState.ONLINE, gateway.session, self.heartbeat_interval_s)
        gateway.out += publish_packet(will_topic, birth, gateway.packet_id(), retain=True)
        gateway.unacked += 1
        gateway.last_sent_s = time.monotonic()
        self.gateways[gateway_id] = gateway
        self.selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, gateway)

    # -- traffic -------------------------------------------------------------------------

    def publish(self, gateway_id: str, kind: TopicKind, payload: bytes) -> None:
        gateway = self.gateways[gateway_id]
        if not gateway.alive:
            return
        topic = topic_for(gateway_id, kind)
        gateway.out += publish_packet(topic, payload, gateway.packet_id())
        gateway.unacked += 1
        self._want_write(gateway)

    def _want_write(self, gateway: SimGateway) -> None:
        gateway.last_sent_s = time.monotonic()
        self.selector.modify(gateway.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, gateway)

    def _keep_alive(self) -> None:
        """PINGREQ for every live gateway that sent nothing for half a keepalive."""
        now = time.monotonic()
        if now < self._next_ping_check_s:
            return
        self._next_ping_check_s = now + 1.0
        idle_s = self.keepalive_s / 2
        for gateway in self.gateways.values():
            if gateway.alive and gateway.connected and now - gateway.last_sent_s > idle_s:
                gateway.out += bytes([PINGREQ << 4, 0])
                self._want_write(gateway)

    def heartbeat(self, gateway_id: str) -> None:
        gateway = self.gateways[gateway_id]
        now_ms = time.time_ns() // 1_000_000
        health = Health(
            session=gateway.session,
            ts_ms=now_ms,
            uptime_s=1.0,
            heartbeat_interval_s=self.heartbeat_interval_s,
            buffer_rows=0,
            buffer_bytes=0,
            oldest_unsent_age_s=0.0,
            last_seq=gateway.seq,
            devices={"gauge-1": wire.DeviceHealth(state="ok", last_good_ms=now_ms)},
        )
        self.publish(gateway_id, TopicKind.HEALTH, wire.encode(health))

    def readings(self, gateway_id: str, count: int) -> int:
        """Publish one live batch of ``count`` readings; returns the readings sent."""
        gateway = self.gateways[gateway_id]
        payload = readings_payload(
            gateway.session, gateway.seq + 1, count, time.time_ns() // 1_000_000
        )
        gateway.seq += count
        self.publish(gateway_id, TopicKind.READINGS, payload)
        return count

    def kill(self, gateway_id: str, *, mode: str = "silent") -> None:
        """``close``: the socket closes now; ``silent``: nothing more is sent or read."""
        gateway = self.gateways[gateway_id]
        gateway.alive = False
        self.selector.unregister(gateway.sock)
        if mode == "close":
            gateway.sock.close()

    def pending(self) -> int:
        return sum(g.unacked for g in self.gateways.values() if g.alive)

    def pump(self, timeout_s: float) -> None:
        """Write what is queued and read what arrived, for at most ``timeout_s``."""
        self._keep_alive()
        for key, events in self.selector.select(timeout_s):
            gateway: SimGateway = key.data
            if events & selectors.EVENT_WRITE and gateway.out:
                try:
                    sent = gateway.sock.send(gateway.out)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self._lost(gateway)
                    continue
                del gateway.out[:sent]
                if not gateway.out:
                    self.selector.modify(gateway.sock, selectors.EVENT_READ, gateway)
            if events & selectors.EVENT_READ:
                try:
                    data = gateway.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._lost(gateway)
                    continue
                gateway.inbox += data
                self._parse(gateway)

    def _lost(self, gateway: SimGateway) -> None:
        """The broker closed the session (e.g. a missed keepalive): count it, carry on."""
        if gateway.alive:
            self.resets += 1
            gateway.alive = False
            self.selector.unregister(gateway.sock)

    def _parse(self, gateway: SimGateway) -> None:
        inbox = gateway.inbox
        while len(inbox) >= 2:
            kind = inbox[0] >> 4
            length, multiplier, index = 0, 1, 1
            while True:
                if index >= len(inbox):
                    return
                byte = inbox[index]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                index += 1
                if not byte & 0x80:
                    break
            if len(inbox) < index + length:
                return
            if kind == CONNACK:
                gateway.connected = inbox[index + 1] == 0
            elif kind == PUBACK:
                gateway.unacked -= 1
                self.acked += 1
            del inbox[: index + length]


def gateway_ids(count: int, prefix: str = "gw-sim") -> list[str]:
    return [f"{prefix}-{index:05d}" for index in range(count)]


def run_ingest(args: argparse.Namespace) -> dict[str, float]:
    """Publish ``--readings`` readings in batches from ``--gateways`` gateways, round robin;
    with ``--rate`` no faster than that many readings a second (else as fast as it can)."""
    ids = gateway_ids(args.gateways)
    with FleetSim(args.host, args.port, ids, keepalive_s=60) as fleet:
        print(json.dumps({"connected": len(ids)}), flush=True)
        started_s = time.monotonic()
        sent = 0
        while sent < args.readings:
            for gateway_id in ids:
                if sent >= args.readings:
                    break
                sent += fleet.readings(gateway_id, min(args.batch, args.readings - sent))
                # Pacing: while ahead of --rate, serve the sockets (acks) instead of sending.
                while (
                    args.rate and (ahead_s := started_s + sent / args.rate - time.monotonic()) > 0
                ):
                    fleet.pump(ahead_s)
            while fleet.pending() > args.max_in_flight:
                fleet.pump(0.01)
            fleet.pump(0)
        deadline = time.monotonic() + 120
        while fleet.pending() and time.monotonic() < deadline:
            fleet.pump(0.05)
        elapsed_s = time.monotonic() - started_s
    return {"sent": sent, "publish_s": elapsed_s, "sent_per_s": sent / elapsed_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--max-in-flight", type=int, default=2000, help="batches not yet acked")
    parser.add_argument("--rate", type=float, default=0.0, help="readings/s (0: flat out)")
    args = parser.parse_args(argv)
    print(json.dumps(run_ingest(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
