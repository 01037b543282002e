"""Stations that push: one agent holding thousands of SL651 stations, alarm latency, bad input.

``python -m bench.stations [--stations 2000] [--period-s 60] [--keepalive-s 40]
[--measure-s 60] [--alarms 30] [--bad-frames 10000] [--bad-connections 100]``

A real mosquitto, the controller and the agent as their own processes (``edgewatch ...
run``), three reference centers (street, district, city) in this process, which also plays
the stations (firmware-sim's, one selector thread) dialing in to the agent's SL651 listener
(``keep_online``: they stay connected and send a 2FH keep-alive every ``--keepalive-s``):

1. load: ``--stations`` stations each reporting every ``--period-s`` (their first reports
   spread over 20 s, the time they take to dial in); once all are connected, the agent's
   CPU (``/proc/PID/stat``) over ``--measure-s`` and its RSS at the end;
2. alarm latency, quiet (the load stations gone): ``--alarms`` stations, each watched by a
   risk point of its own; each in turn sees its river past its alarm bound and sends a 33H;
   from the moment the frame leaves the station to each center receiving the alert;
3. bad input: ``--bad-connections`` connections send ``--bad-frames`` frames between them,
   random and truncated ones, while 20 good stations report every second on the same
   listener: every bad frame counted by reason (the agent's heartbeat), no crash, no
   thread death, and the good stations answered every time.

The last line printed is one JSON object: ``connections``, ``agent_rss_mb``,
``agent_cpu_pct``, ``alarm_p99_ms``, ``bad_frames_counted``, ``crashes``, and the rest.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import alert_latency
from bench.common import machine
from bench.drain import cpu_s, rss_mb
from edgewatch.broker import Mosquitto, free_port, port_accepts
from edgewatch.center import ReferenceCenter
from edgewatch.processes import ProcessGroup
from edgewatch.system import http_ok, wait_for_child
from edgewatch.waiting import wait_until
from firmware_sim.stations import SimStation, StationRunner, StationSpec, build_station
from firmware_sim.stations.sl651 import FrameQuirks, Sl651Encoder

GATEWAY = "gw-bench"  # alert_latency's gateway, at its PLACE
SECRET, PLACE, TIERS = alert_latency.SECRET, alert_latency.PLACE, alert_latency.TIERS
GOOD_STATIONS = 20
RAMP_S = 20.0


KINDS = {"load": 1, "alarm": 2, "good": 3}


def address(kind: str, i: int) -> str:
    """Station addresses: load 001xxxxxxx, alarm 002xxxxxxx, good 003xxxxxxx."""
    return f"00{KINDS[kind]}{i:07d}"


def agent_toml(data_dir: Path, mqtt_port: int, listen_port: int, args: argparse.Namespace) -> str:
    lines = [
        f'[gateway]\nid = "{GATEWAY}"\ndata_dir = "{data_dir}"\n',
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n',
        '[[listeners]]\nname = "sl651-tcp"\nprotocol = "sl651"\nhost = "127.0.0.1"\n'
        f"port = {listen_port}\nkeep_online = true\n"
        f"max_connections = {args.stations + args.bad_connections + 200}\n"
        "bad_frames_per_min = 6000\n",
    ]
    devices = (
        [("load", i, args.period_s) for i in range(args.stations)]
        + [("alarm", i, 30.0) for i in range(args.alarms)]
        + [("good", i, 1.0) for i in range(GOOD_STATIONS)]
    )
    for kind, i, period_s in devices:
        lines.append(
            f'[[devices]]\nname = "{kind}-{i}"\ndriver = "sl651"\nport = "sl651-tcp"\n'
            f'station = "{address(kind, i)}"\npassword = "1234"\ninterval_s = {period_s}\n'
            '[[devices.elements]]\nelement = "Z"\nmetric = "level_m"\nunit = "m"\n'
            '[[devices.elements]]\nelement = "VT"\nmetric = "supply_v"\nunit = "V"\n'
        )
    return "\n".join(lines)


def controller_toml(
    mqtt_port: int, http_port: int, db: Path, urls: dict[str, str], alarms: int
) -> str:
    """alert_latency's controller (signed webhooks to three centers, gw-bench at PLACE)
    with one risk point per alarm station: a 12 m river is green; the station's own 33H
    raises orange."""
    lines = [
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n',
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n',
        f'[storage]\npath = "{db}"\n',
        '[api]\nauth = "demo"\n',  # no tokens: loopback only, as the demo
        alert_latency.controller_extra(urls, 0),
    ]
    for i in range(alarms):
        lines.append(
            f'[[risk_points]]\nid = "a{i}"\ncategory = "other"\nplace = "{PLACE}"\n'
            f'stale_after_s = 86400\n[[risk_points.metrics]]\ndevice = "{GATEWAY}.alarm-{i}"\n'
            'metric = "level_m"\nthresholds = {orange = 20.0, red = 30.0}\n'
        )
    return "\n".join(lines)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def listener_stats(api: str) -> dict[str, Any]:
    """The agent's latest heartbeat's view of its listener (through the controller)."""
    try:
        health = get_json(f"{api}/gateways/{GATEWAY}").get("health") or {}
    except OSError:
        return {}
    stats: dict[str, Any] = (health.get("listeners") or {}).get("sl651-tcp", {})
    return stats


def stations(kind: str, count: int, port: int, **options: Any) -> list[SimStation]:
    rng = random.Random(count)
    return [
        build_station(
            StationSpec(
                f"{kind}-{i}",
                "sl651_river",
                address(kind, i),
                "1234",
                seed=i,
                options={"phase_s": rng.uniform(0, RAMP_S), **options},
            ),
            targets={"sl651": ("127.0.0.1", port)},
        )
        for i in range(count)
    ]


# -- 1. load --------------------------------------------------------------------------------


def load(api: str, port: int, agent_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    sims = stations(
        "load", args.stations, port, period_s=args.period_s, keepalive_s=args.keepalive_s,
        answer_timeout_s=20.0,
    )  # fmt: skip
    with StationRunner(sims) as runner:
        wait_until(
            lambda: listener_stats(api).get("connections", 0) >= args.stations,
            timeout_s=RAMP_S + 120,
            interval_s=1.0,
            message=f"{args.stations} stations connected",
        )
        time.sleep(5)  # a steady state to measure, not a condition to wait for
        before_s, started = cpu_s(agent_pid), time.perf_counter()
        time.sleep(args.measure_s)
        cpu_pct = 100 * (cpu_s(agent_pid) - before_s) / (time.perf_counter() - started)
        rss = rss_mb(agent_pid)
        connections = listener_stats(api).get("connections", 0)
        answered = sum(s.stats.answered for s in sims)
        sent = sum(s.stats.reports for s in sims)
        unanswered = sum(s.stats.unanswered for s in sims)
        print(
            f"load: {connections} connections, RSS {rss:.1f} MB, CPU {cpu_pct:.1f}%"
            f" ({answered}/{sent} reports answered, crashes in the sim: {runner.crashes})",
            file=sys.stderr,
        )
    return {
        "connections": connections,
        "agent_rss_mb": round(rss, 1),
        "agent_cpu_pct": round(cpu_pct, 2),
        "load_reports_sent": sent,
        "load_reports_answered": answered,
        "load_reports_unanswered": unanswered,
    }


# -- 2. alarm latency -----------------------------------------------------------------------


def rules_in_force(api: str) -> bool:
    commands = get_json(f"{api}/gateways/{GATEWAY}/commands")
    return any(c["type"] == "set-rules" and c["state"] == "succeeded" for c in commands)


def alarm_latency(
    api: str, port: int, centers: dict[str, ReferenceCenter], args: argparse.Namespace
) -> dict[str, Any]:
    wait_until(lambda: rules_in_force(api), timeout_s=60, message="rules pushed to the agent")
    sims = stations("alarm", args.alarms, port, period_s=30.0, answer_timeout_s=5.0)
    latencies: dict[str, list[float]] = {tier: [] for tier in centers}
    with StationRunner(sims):
        wait_until(
            lambda: all(s.stats.answered >= 1 for s in sims),
            timeout_s=RAMP_S + 60,
            message="alarm stations reporting",
        )
        for i, sim in enumerate(sims):
            sim.set_values({"Z": 15.8})

            def arrived(tier: str, point: str = f"a{i}") -> int | None:
                return next(
                    (
                        a["received_ms"]
                        for a in list(centers[tier].alerts)
                        if a["point"] == point and a["action"] == "raised"
                    ),
                    None,
                )

            wait_until(
                lambda: all(arrived(t) for t in centers), timeout_s=30, message=f"alarm a{i}"
            )
            for tier in centers:
                received = arrived(tier)
                assert received is not None
                latencies[tier].append(received - sim.stats.last_alarm_ms)
    every = [v for values in latencies.values() for v in values]
    p99 = sorted(every)[min(len(every) - 1, round(0.99 * len(every)) - 1)]
    print(f"alarms: p50 {statistics.median(every):.0f} ms, p99 {p99:.0f} ms", file=sys.stderr)
    return {
        "alarm_p50_ms": round(statistics.median(every), 1),
        "alarm_p99_ms": round(p99, 1),
        "alarm_max_ms": round(max(every), 1),
        "alarms": len(every) // len(centers),
    }


# -- 3. bad input ---------------------------------------------------------------------------


def bad_stream(count: int, rng: random.Random) -> tuple[bytes, int]:
    """``count`` bad frames in one stream: random frames (a station's header, a random body,
    a wrong CRC), runs of random bytes that start no frame, and frames cut short; each
    followed by a stranger's keep-alive (itself refused, and counted: the next item is
    then a thing of its own, never merged with this one into one run of junk)."""
    when = datetime(2025, 6, 18, 8, 0, 5)
    encoder = Sl651Encoder(station=f"{rng.randrange(10**9):010d}", password="1234")
    stranger = Sl651Encoder(station="0099999999", password="1234").keep_alive(1, when)
    out, sent = bytearray(), 0
    while sent < count:
        kind = rng.random()
        if kind < 0.4:
            body = rng.randbytes(rng.randrange(8, 120))
            out += encoder.frame(0x32, body, 0x03, FrameQuirks(corrupt_crc=True))
        elif kind < 0.7:
            noise = bytes(b for b in rng.randbytes(rng.randrange(1, 64)) if b not in (0x7E, 0x01))
            out += noise or b"\x00junk"
        else:
            whole = encoder.keep_alive(1, when)
            out += whole[: rng.randrange(2, len(whole) - 1)]
        out += stranger
        sent += 2
    return bytes(out), sent


def bad_input(api: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    good = stations("good", GOOD_STATIONS, port, period_s=1.0, answer_timeout_s=5.0)
    before: int = sum(listener_stats(api).get("refused", {}).values())
    per_connection = args.bad_frames // args.bad_connections
    streams = [bad_stream(per_connection, random.Random(i)) for i in range(args.bad_connections)]
    sent = sum(n for _, n in streams)

    def send(stream: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(stream)
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(30)
            while conn.recv(4096):  # until the gateway has read it all and closed
                pass

    with StationRunner(good):
        wait_until(lambda: all(s.stats.answered >= 1 for s in good), timeout_s=60)
        answered_before = sum(s.stats.answered for s in good)
        senders = [threading.Thread(target=send, args=(s,)) for s, _ in streams]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(timeout=120)

        def counted() -> int:
            refused: dict[str, int] = listener_stats(api).get("refused", {})
            return sum(refused.values()) - before

        # The heartbeat reports the counts every 5 s: wait until they stop moving.
        last = [-1]

        def settled() -> bool:
            now = counted()
            done = now == last[0] and now > 0
            last[0] = now
            return done

        wait_until(settled, timeout_s=60, interval_s=6.0, message="bad frames counted")
        good_answered = sum(s.stats.answered for s in good) - answered_before
        good_unanswered = sum(s.stats.unanswered for s in good)
        stats = listener_stats(api)
    by_reason = stats.get("refused", {})
    print(
        f"bad input: {sent} sent, {counted()} counted {by_reason};"
        f" good stations: {good_answered} answered, {good_unanswered} unanswered",
        file=sys.stderr,
    )
    return {
        "bad_frames_sent": sent,
        "bad_frames_counted": counted(),
        "bad_frames_by_reason": by_reason,
        "good_reports_answered_meanwhile": good_answered,
        "good_reports_unanswered": good_unanswered,
        "listener_crashes": stats.get("crashes", 0),
        "listener_alive": stats.get("alive"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stations")
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--period-s", type=float, default=60.0)
    parser.add_argument("--keepalive-s", type=float, default=40.0)
    parser.add_argument("--measure-s", type=float, default=60.0)
    parser.add_argument("--alarms", type=int, default=30)
    parser.add_argument("--bad-frames", type=int, default=10_000)
    parser.add_argument("--bad-connections", type=int, default=100)
    args = parser.parse_args(argv)
    started = time.monotonic()
    results: dict[str, Any] = {"stations": args.stations, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="edgewatch-stations-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        broker = stack.enter_context(Mosquitto(work / "broker"))
        centers = {
            tier: stack.enter_context(ReferenceCenter(tier, tier, secret=SECRET)) for tier in TIERS
        }
        procs = stack.enter_context(ProcessGroup(work / "logs"))
        http_port, listen_port = free_port(), free_port()
        config = work / "controller.toml"
        urls = {t: c.url for t, c in centers.items()}
        config.write_text(controller_toml(broker.port, http_port, work / "c.db", urls, args.alarms))
        controller = procs.start_cli("controller", "controller", "run", "--config", str(config))
        api = f"http://127.0.0.1:{http_port}/api/v1"
        root = f"http://127.0.0.1:{http_port}"
        wait_for_child(controller, "controller", lambda: http_ok(f"{root}/healthz"), 60)
        agent_config = work / "agent.toml"
        agent_config.write_text(agent_toml(work / "agent", broker.port, listen_port, args))
        agent = procs.start_cli("agent", "agent", "run", "--config", str(agent_config))
        wait_for_child(agent, "agent listening", lambda: port_accepts("127.0.0.1", listen_port), 60)

        results |= load(api, listen_port, agent.process.pid, args)
        results |= alarm_latency(api, listen_port, centers, args)
        results |= bad_input(api, listen_port, args)
        alive = agent.alive
        results["crashes"] = int(results.pop("listener_crashes")) + (0 if alive else 1)
        results["agent_alive"] = alive
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    keys = ("connections", "agent_rss_mb", "agent_cpu_pct", "alarm_p99_ms", "bad_frames_counted",
            "crashes")  # fmt: skip
    print(json.dumps({**results, **{k: results[k] for k in keys}}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
