"""Drain benchmark: buffered readings through mosquitto into the controller's store.

    python -m bench.drain [--readings 1000000] [--skip-baseline] [--skip-idle]

1. drain: an agent buffer pre-filled with N unsent readings; the agent (a process, no
   devices, backlog cap off) drains it through a private mosquitto into a controller (a
   process); timed from the agent's start until the controller stored all N.
2. baseline: the same transfer by a plain paho-mqtt + sqlite3 publisher process (batches of
   500, QoS 1, 10 in flight) and subscriber process (executemany per message), same run.
3. memory: the agent holding N buffered readings (the controller offline: it holds them)
   while polling 10 simulated devices: its RSS after 10 s.
4. idle CPU: an agent polling 10 devices each second, readings flowing to the controller:
   CPU time over 10 s, as % of one core.

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

from bench import baseline
from bench.fill import fill_buffer
from edgewatch.broker import Mosquitto, free_port
from edgewatch.processes import ProcessGroup
from edgewatch.system import get_json, http_ok, wait_for_child
from edgewatch.waiting import wait_until

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def agent_toml(gateway: str, port: int, data_dir: Path, pty: str | None, devices: int) -> str:
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
    if pty is not None:
        text += f'[[ports]]\nname = "bus1"\nurl = "{pty}"\n'
        for slave in range(1, devices + 1):
            text += (
                f'[[devices]]\nname = "gauge-{slave}"\ndriver = "modbus_rtu"\nport = "bus1"\n'
                f"slave = {slave}\ninterval_s = 1.0\n"
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


def start_controller(procs: ProcessGroup, work: Path, broker: Mosquitto) -> str:
    http_port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    config = work / "controller.toml"
    config.write_text(controller_toml(broker.port, http_port, work / "controller.db"))
    child = procs.start_cli("controller", "controller", "run", "--config", str(config))
    root = f"http://127.0.0.1:{http_port}"
    wait_for_child(child, "controller", lambda: http_ok(f"{root}/healthz"), 30)
    return f"{root}/api/v1"


def drain(work: Path, readings: int) -> float:
    data_dir = work / "drain-agent"
    fill_buffer(data_dir / "buffer.db", readings)
    with Mosquitto(work / "broker-drain") as broker, ProcessGroup(work / "logs-drain") as procs:
        api = start_controller(procs, work / "logs-drain", broker)
        config = work / "drain-agent.toml"
        config.write_text(agent_toml("gw-bench", broker.port, data_dir, None, 0))
        started = time.perf_counter()
        procs.start_cli("agent", "agent", "run", "--config", str(config))
        wait_until(
            lambda: get_json(f"{api}/summary")["readings_stored"] >= readings,
            timeout_s=600,
            interval_s=0.2,
            message=f"{readings} readings stored",
        )
        return readings / (time.perf_counter() - started)


def held_rss_and_idle_cpu(work: Path, readings: int, *, measure_s: float) -> tuple[float, float]:
    with Mosquitto(work / "broker-idle") as broker, ProcessGroup(work / "logs-idle") as procs:
        manifest = work / "sim.json"
        sim = procs.start_cli("sim", "sim", "run", "--devices", "10", "--manifest", str(manifest))
        wait_for_child(sim, "simulator", manifest.exists, 20)
        pty = json.loads(manifest.read_text())["devices"][0]["pty"]
        # Memory: N readings buffered, no controller (so they are held), 10 devices polled.
        held_dir = work / "held-agent"
        fill_buffer(held_dir / "buffer.db", readings)
        config = work / "held-agent.toml"
        config.write_text(agent_toml("gw-held", broker.port, held_dir, pty, 10))
        agent = procs.start_cli("agent-held", "agent", "run", "--config", str(config))
        time.sleep(measure_s)  # a steady state to measure, not a condition to wait for
        rss = rss_mb(agent.process.pid)
        agent.stop()
        # Idle CPU: a fresh agent, 10 devices at 1 Hz, readings flowing to a controller.
        start_controller(procs, work / "logs-idle", broker)
        config = work / "idle-agent.toml"
        config.write_text(agent_toml("gw-idle", broker.port, work / "idle-agent", pty, 10))
        agent = procs.start_cli("agent-idle", "agent", "run", "--config", str(config))
        time.sleep(3)  # past start-up
        before_s, started = cpu_s(agent.process.pid), time.perf_counter()
        time.sleep(measure_s)
        cpu_pct = 100 * (cpu_s(agent.process.pid) - before_s) / (time.perf_counter() - started)
        return rss, cpu_pct


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
        rss, cpu = (0.0, 0.0)
        if not args.skip_idle:
            rss, cpu = held_rss_and_idle_cpu(work, args.readings, measure_s=args.measure_s)
            print(f"agent RSS {rss:.1f} MB, idle CPU {cpu:.2f}%", file=sys.stderr)
    result = {
        "readings": args.readings,
        "readings_per_s": round(rate),
        "baseline_readings_per_s": round(base),
        "ratio": round(rate / base, 3) if base else None,
        "agent_rss_mb": round(rss, 1),
        "idle_cpu_pct": round(cpu, 2),
        "machine": machine(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
