"""Drain benchmark: buffered readings through mosquitto into the controller's store.

    python -m bench.drain [--readings 1000000] [--measure-s 10] [--live-linger-s S]
                          [--skip-baseline] [--skip-idle]

1. drain: an agent buffer pre-filled with N unsent readings; the agent (a process, no
   devices, backlog cap off) drains it through a private mosquitto into a controller (a
   process); timed from the agent's start until the controller stored all N.
2. baseline: the same transfer by a plain paho-mqtt + sqlite3 publisher process (batches of
   500, QoS 1, 10 in flight) and subscriber process (executemany per message), same run.
   Both report what they stored the same way: a `readings_stored` counter row that the
   storing side updates in the transaction of each batch, read by the bench every 0.2 s
   (``bench.common.readings_stored``).
3. memory: the agent holding N buffered readings (the controller offline: it holds them)
   while polling 10 simulated devices: its RSS after 10 s.
4. idle CPU and live latency at 1 Hz: an agent polling 10 devices each second (9600 baud),
   readings flowing to the controller: CPU time over 10 s as % of one core and, over the
   same 10 s, the live lane's latency from each read to a subscriber on the broker
   (``bench.live``: `live_1hz_p50_ms`, `live_1hz_p99_ms`).
5. live latency on a busy bus: 8 devices at 9600 baud polled as fast as the bus goes
   (interval 0.1 s, each read ~29 ms), 10 s: `live_busy_bus_p50_ms`, `_p99_ms` (and the
   agent's CPU meanwhile). `live_p50_ms` and `live_p99_ms` are the worse of 4 and 5.

``--live-linger-s`` sets the agent's ``[buffer] live_linger_s`` (default: the agent's).
The last line printed is one JSON object with the figures and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.config import BufferConfig
from bench import baseline
from bench.common import readings_stored
from bench.fill import fill_buffer
from bench.live import LiveLatency
from edgewatch.broker import Mosquitto, free_port
from edgewatch.processes import Child, ProcessGroup
from edgewatch.system import http_ok, wait_for_child
from edgewatch.waiting import wait_until

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def agent_toml(
    gateway: str,
    port: int,
    data_dir: Path,
    pty: str | None,
    devices: int,
    *,
    interval_s: float = 1.0,
    live_linger_s: float | None = None,
) -> str:
    text = f"""[gateway]
id = "{gateway}"
data_dir = "{data_dir}"
heartbeat_interval_s = 5.0
[mqtt]
host = "127.0.0.1"
port = {port}
[buffer]
backlog_max_readings_per_s = 0
max_bytes = 0
max_age_s = 0
"""
    if live_linger_s is not None:
        text += f"live_linger_s = {live_linger_s}\n"
    if pty is not None:
        text += f'[[ports]]\nname = "bus1"\nurl = "{pty}"\n'
        for slave in range(1, devices + 1):
            text += (
                f'[[devices]]\nname = "gauge-{slave}"\ndriver = "modbus_rtu"\nport = "bus1"\n'
                f"slave = {slave}\ninterval_s = {interval_s}\n"
                '[[devices.registers]]\nmetric = "level_cm"\naddress = 0\nscale = 0.1\n'
                '[[devices.registers]]\nmetric = "status"\naddress = 1\n'
            )
    return text


def controller_toml(port: int, http_port: int, db: Path) -> str:
    return (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nclient_id = "bench-controller"\n'
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n[storage]\npath = "{db}"\n'
        '[api]\nauth = "demo"\n'  # loopback only; the bench reads /summary without a token
    )


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_controller(procs: ProcessGroup, work: Path, broker: Mosquitto) -> Path:
    """A controller process on ``broker``; returns its database."""
    http_port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    config = work / "controller.toml"
    db = work / "controller.db"
    config.write_text(controller_toml(broker.port, http_port, db))
    child = procs.start_cli("controller", "controller", "run", "--config", str(config))
    root = f"http://127.0.0.1:{http_port}"  # probes live at the root, outside /api/v1
    wait_for_child(child, "controller", lambda: http_ok(f"{root}/healthz"), 30)
    return db


def drain(work: Path, readings: int) -> float:
    data_dir = work / "drain-agent"
    fill_buffer(data_dir / "buffer.db", readings)
    with Mosquitto(work / "broker-drain") as broker, ProcessGroup(work / "logs-drain") as procs:
        db = start_controller(procs, work / "logs-drain", broker)
        config = work / "drain-agent.toml"
        config.write_text(agent_toml("gw-bench", broker.port, data_dir, None, 0))
        started = time.perf_counter()
        procs.start_cli("agent", "agent", "run", "--config", str(config))
        wait_until(
            lambda: readings_stored(db) >= readings,
            timeout_s=600,
            interval_s=0.2,
            message=f"{readings} readings stored",
        )
        return readings / (time.perf_counter() - started)


def start_sim(procs: ProcessGroup, work: Path, name: str, devices: int) -> str:
    """A simulator process serving ``devices`` gauges on one 9600-baud bus; returns its pty."""
    manifest = work / f"{name}.json"
    sim = procs.start_cli(
        name, "sim", "run", "--devices", str(devices), "--manifest", str(manifest)
    )
    wait_for_child(sim, "simulator", manifest.exists, 20)
    return str(json.loads(manifest.read_text())["devices"][0]["pty"])


def cpu_and_live_latency(
    agent: Child, live: LiveLatency, name: str, *, measure_s: float
) -> dict[str, float]:
    """The agent's CPU (% of one core) and its live latency over the same ``measure_s``."""
    time.sleep(3)  # past start-up: a steady state to measure, not a condition to wait for
    live.recording = True
    before_s, started = cpu_s(agent.process.pid), time.perf_counter()
    time.sleep(measure_s)
    cpu_pct = 100 * (cpu_s(agent.process.pid) - before_s) / (time.perf_counter() - started)
    live.recording = False
    return {f"{name}_cpu_pct": round(cpu_pct, 2), **live.figures(name)}


def agent_at_work(
    work: Path, readings: int, *, measure_s: float, live_linger_s: float | None
) -> dict[str, float]:
    """Sections 3-5 of the module docstring: memory, idle CPU, live latency."""
    figures: dict[str, float] = {}
    with Mosquitto(work / "broker-idle") as broker, ProcessGroup(work / "logs-idle") as procs:
        pty = start_sim(procs, work, "sim", 10)
        # Memory: N readings buffered, no controller (so they are held), 10 devices polled.
        held_dir = work / "held-agent"
        fill_buffer(held_dir / "buffer.db", readings)
        config = work / "held-agent.toml"
        config.write_text(agent_toml("gw-held", broker.port, held_dir, pty, 10))
        agent = procs.start_cli("agent-held", "agent", "run", "--config", str(config))
        time.sleep(measure_s)  # a steady state to measure, not a condition to wait for
        figures["agent_rss_mb"] = round(rss_mb(agent.process.pid), 1)
        agent.stop()
        # Idle CPU and live latency: a fresh agent, 10 devices at 1 Hz, to a controller.
        start_controller(procs, work / "logs-idle", broker)
        config = work / "idle-agent.toml"
        config.write_text(
            agent_toml("gw-idle", broker.port, work / "idle-agent", pty, 10,
                       live_linger_s=live_linger_s)
        )  # fmt: skip
        with LiveLatency(broker.port, "gw-idle") as live:
            agent = procs.start_cli("agent-idle", "agent", "run", "--config", str(config))
            figures |= cpu_and_live_latency(agent, live, "1hz", measure_s=measure_s)
        figures["idle_cpu_pct"] = figures.pop("1hz_cpu_pct")
        agent.stop()
        # Live latency on a bus polled as fast as it goes: 8 devices, always due.
        pty = start_sim(procs, work, "sim-busy", 8)
        config = work / "busy-agent.toml"
        config.write_text(
            agent_toml("gw-busy", broker.port, work / "busy-agent", pty, 8, interval_s=0.1,
                       live_linger_s=live_linger_s)
        )  # fmt: skip
        with LiveLatency(broker.port, "gw-busy") as live:
            agent = procs.start_cli("agent-busy", "agent", "run", "--config", str(config))
            figures |= cpu_and_live_latency(agent, live, "busy_bus", measure_s=measure_s)
    for quantile in ("p50", "p99"):
        worse = max(figures[f"live_1hz_{quantile}_ms"], figures[f"live_busy_bus_{quantile}_ms"])
        figures[f"live_{quantile}_ms"] = worse
    return figures


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drain")
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--measure-s", type=float, default=10.0)
    parser.add_argument("--live-linger-s", type=float, help="the agents' [buffer] live_linger_s")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-idle", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgewatch-drain-") as tmp:
        work = Path(tmp)
        rate = drain(work, args.readings)
        print(f"drain: {rate:,.0f} readings/s", file=sys.stderr)
        base = 0.0
        if not args.skip_baseline:
            base = baseline.run(work / "baseline", args.readings)
            print(f"baseline: {base:,.0f} readings/s", file=sys.stderr)
        at_work: dict[str, float] = {}
        if not args.skip_idle:
            at_work = agent_at_work(
                work, args.readings, measure_s=args.measure_s, live_linger_s=args.live_linger_s
            )
            print(
                f"agent RSS {at_work['agent_rss_mb']:.1f} MB, idle CPU "
                f"{at_work['idle_cpu_pct']:.2f}%, live p50/p99 {at_work['live_1hz_p50_ms']}/"
                f"{at_work['live_1hz_p99_ms']} ms at 1 Hz, {at_work['live_busy_bus_p50_ms']}/"
                f"{at_work['live_busy_bus_p99_ms']} ms on a busy bus",
                file=sys.stderr,
            )
    result = {
        "readings": args.readings,
        "readings_per_s": round(rate),
        "baseline_readings_per_s": round(base),
        "ratio": round(rate / base, 3) if base else None,
        "live_linger_s": (
            BufferConfig().live_linger_s if args.live_linger_s is None else args.live_linger_s
        ),
        **at_work,
        "machine": machine(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
