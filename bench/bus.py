"""Bus efficiency and isolation: how close the agent runs an RS-485 bus to the wire's limit.

``python -m bench.bus [--runs 3] [--seconds 5] [--isolation-seconds 10]``

Both through the real path: the agent's ``PortOwner`` (earliest-deadline-first over 8
slaves, every read on its owner thread) and the Modbus RTU driver (minimalmodbus), on a
simulated bus (``firmware_sim``, a real pty) whose slaves answer with zero response time,
paced at the baud rate. Every slave is polled as fast as the bus allows (interval 1 ms).

- Efficiency: reads of 10 registers per second, over the theoretical maximum for those
  frames: request 8 bytes + response 25 bytes + 3.5 characters of silence after each,
  11 bits a character: ``baud / (40 * 11)`` transactions per second. At 9600 baud with the
  port's default ``inter_frame_silence`` (modbus-standard, equal to char-times there); at
  115200 with ``char-times`` (``ratio_115200``) and with ``modbus-standard``
  (``ratio_115200_modbus_standard``: the fixed 1.75 ms silence alone caps it near 0.73).
- Isolation, at 9600 baud: the reads per second of 7 slaves while the 8th is dead (never
  answers), over their rate with none dead. The dead slave has the port's default timeout
  (0.3 s) and the default bounded backoff (one retry, then 0.5 s doubling to 30 s); the
  window (10 s) starts the moment it dies, so it includes the backoff's ramp: tries at
  0, 0.001, 0.5, 1.5, 3.5 and 7.5 s cost 1.8 s of bus; later windows lose less. The
  figure can exceed 1: the dead slave's share of a saturated bus goes to the others. For
  contrast,
  ``isolation_ratio_no_backoff`` retries the dead slave at its interval.

Prints a line per run, then one JSON object (medians) as the last line.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from agent.bus.ports import PortOwner
from agent.config import PortConfig
from bench.common import machine, median
from drivers.base import DeviceConfig, InterFrameSilence, Measurement
from drivers.registry import parse_device_config
from edgewatch.waiting import wait_until
from firmware_sim import DeviceModel, Faults, RegisterSpec, SimulatedBus, SimulatedDevice
from firmware_sim.device import constant
from wire import Quality
from wire.clock import SYSTEM_CLOCK

SLAVES = 8
REGISTERS = 10
REQUEST_BYTES = 8
RESPONSE_BYTES = 5 + 2 * REGISTERS  # 25
SILENCE_CHARS = 3.5
BITS_PER_CHAR = 11
INTERVAL_S = 0.001  # as fast as the bus allows
DEAD_SLAVE_TIMEOUT_S = 0.3  # the port's default timeout
NO_BACKOFF_MAX_S = INTERVAL_S  # backoff capped at the interval: retried at every turn


def theoretical_tx_per_s(baud: int) -> float:
    chars = REQUEST_BYTES + RESPONSE_BYTES + 2 * SILENCE_CHARS
    return baud / (chars * BITS_PER_CHAR)


class CountingSink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.good: Counter[str] = Counter()

    def __call__(self, device: str, ts_ms: int, measurements: Sequence[Measurement]) -> None:
        if measurements and all(m.quality is Quality.GOOD for m in measurements):
            with self._lock:
                self.good[device] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.good)


def ten_registers() -> DeviceModel:
    return DeviceModel(
        model="bench_ten_registers",
        holding={a: RegisterSpec(f"r{a}", constant(1000 + a)) for a in range(REGISTERS)},
    )


def device_config(slave: int) -> DeviceConfig:
    return parse_device_config(
        {
            "name": f"dev-{slave}",
            "driver": "modbus_rtu",
            "port": "bus1",
            "interval_s": INTERVAL_S,
            "slave": slave,
            "registers": [{"metric": f"r{a}", "address": a} for a in range(REGISTERS)],
        }
    )


def measure(
    baud: int,
    silence: InterFrameSilence,
    seconds: float,
    *,
    dead_slave: int | None = None,
    backoff_max_s: float = 30.0,
) -> dict[str, float]:
    """Good reads per second, per device, over ``seconds`` after a warm-up read of each."""
    devices = [SimulatedDevice(ten_registers(), slave=s) for s in range(1, SLAVES + 1)]
    sink = CountingSink()
    with SimulatedBus(devices, baud=baud) as bus:
        port = PortConfig(
            name="bus1",
            url=bus.port_path,
            baud=baud,
            timeout_s=DEAD_SLAVE_TIMEOUT_S,
            inter_frame_silence=silence,
            backoff_max_s=backoff_max_s,
        )
        owner = PortOwner(
            port, [device_config(s) for s in range(1, SLAVES + 1)], sink, SYSTEM_CLOCK
        )
        owner.start()
        try:
            wait_until(
                lambda: len(sink.snapshot()) == SLAVES, timeout_s=10, message="warm-up reads"
            )
            if dead_slave is not None:
                devices[dead_slave - 1].faults = Faults(silent=True)
            before = sink.snapshot()
            started = time.monotonic()
            time.sleep(seconds)  # the measured window, not a wait for a condition
            after = sink.snapshot()
            elapsed = time.monotonic() - started
        finally:
            owner.stop()
    return {name: (after[name] - before[name]) / elapsed for name in after}


def efficiency(baud: int, silence: InterFrameSilence, seconds: float) -> dict[str, float]:
    rates = measure(baud, silence, seconds)
    tx_per_s = sum(rates.values())
    return {"tx_per_s": tx_per_s, "ratio": tx_per_s / theoretical_tx_per_s(baud)}


def isolation(seconds: float) -> dict[str, float]:
    live = [f"dev-{s}" for s in range(1, SLAVES)]  # dev-8 dies
    silence = InterFrameSilence.MODBUS_STANDARD
    healthy = measure(9600, silence, seconds)
    dead = measure(9600, silence, seconds, dead_slave=SLAVES)
    no_backoff = measure(9600, silence, seconds, dead_slave=SLAVES, backoff_max_s=NO_BACKOFF_MAX_S)
    base = sum(healthy[n] for n in live)
    return {
        "live_tx_per_s_none_dead": base,
        "live_tx_per_s_one_dead": sum(dead[n] for n in live),
        "live_tx_per_s_one_dead_no_backoff": sum(no_backoff[n] for n in live),
        "ratio": sum(dead[n] for n in live) / base,
        "ratio_no_backoff": sum(no_backoff[n] for n in live) / base,
        "min_live_device_ratio": min(dead[n] / healthy[n] for n in live),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="efficiency window per case")
    parser.add_argument(
        "--isolation-seconds",
        type=float,
        default=10.0,
        help="isolation window per case, from the moment the slave dies",
    )
    args = parser.parse_args(argv)
    runs: list[dict[str, Any]] = []
    for run in range(args.runs):
        result = {
            "9600": efficiency(9600, InterFrameSilence.MODBUS_STANDARD, args.seconds),
            "115200": efficiency(115200, InterFrameSilence.CHAR_TIMES, args.seconds),
            "115200_modbus_standard": efficiency(
                115200, InterFrameSilence.MODBUS_STANDARD, args.seconds
            ),
            "isolation": isolation(args.isolation_seconds),
        }
        print(f"run {run + 1}: {json.dumps(result)}", flush=True)
        runs.append(result)

    def med(case: str, key: str) -> float:
        return round(median([r[case][key] for r in runs]), 3)

    figures = {
        "bench": "bus",
        "runs": args.runs,
        "window_s": args.seconds,
        "isolation_window_s": args.isolation_seconds,
        "slaves": SLAVES,
        "registers_per_read": REGISTERS,
        "ratio_9600": med("9600", "ratio"),
        "ratio_115200": med("115200", "ratio"),
        "ratio_115200_modbus_standard": med("115200_modbus_standard", "ratio"),
        "isolation_ratio": med("isolation", "ratio"),
        "isolation_ratio_no_backoff": med("isolation", "ratio_no_backoff"),
        "isolation_min_live_device_ratio": med("isolation", "min_live_device_ratio"),
        "tx_per_s_9600": med("9600", "tx_per_s"),
        "tx_per_s_115200": med("115200", "tx_per_s"),
        "tx_per_s_115200_modbus_standard": med("115200_modbus_standard", "tx_per_s"),
        "theoretical_tx_per_s_9600": round(theoretical_tx_per_s(9600), 3),
        "theoretical_tx_per_s_115200": round(theoretical_tx_per_s(115200), 3),
        "isolation_live_tx_per_s_none_dead": med("isolation", "live_tx_per_s_none_dead"),
        "isolation_live_tx_per_s_one_dead": med("isolation", "live_tx_per_s_one_dead"),
        "dead_slave_timeout_s": DEAD_SLAVE_TIMEOUT_S,
        "dead_slave_backoff": "one retry at the interval, then 0.5 s doubling to 30 s",
        "machine": machine(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
