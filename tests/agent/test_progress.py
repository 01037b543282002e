"""Progress of the long operations a technician waits on: the buffer draining after an
outage (`agent status --watch`) and a `replay` command. Real mosquitto, a real agent (as a
process, or in-process), real SQLite, a simulated gauge on a real pty."""

from __future__ import annotations

import io
import itertools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.agent import Agent
from agent.buffer.store import Buffer
from agent.buffer.view import BUFFER_FILE, read_buffer
from agent.cli import main
from agent.config import parse_config
from agent.ops.status_watch import DrainSample, describe, watch
from agent.status_file import read_status
from agent.uplink import replay_progress
from agent.uplink.replay_progress import ReplayProgress
from drivers.base import Measurement
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until
from firmware_sim.bus import SimulatedBus
from tests.agent.conftest import WAIT_S, Recorder, agent_process, agent_toml
from tests.agent.test_store_and_forward import replay, results
from tests.clock import FakeClock

# Rows older than a second are backlog, sent at 20 rows/s: a drain that takes seconds.
# Each live read goes as it is stored (no linger), so at most one read's rows are on their
# way when the drain ends.
SLOW_BACKLOG = (
    "hold_while_controller_offline = false\nlive_window_s = 1\nbacklog_max_readings_per_s = 20"
    "\nlive_linger_s = 0"
)


def replay_in_status(
    data_dir: Path, when: Callable[[ReplayProgress], bool]
) -> ReplayProgress | None:
    """status.json's replay progress, once ``when`` holds for it."""
    status = read_status(data_dir)
    if status is None or status.replay is None or not when(status.replay):
        return None
    return status.replay


def unsent_rows(data_dir: Path) -> int:
    view = read_buffer(data_dir / BUFFER_FILE, latest_values=False)
    return view.unsent_rows if view is not None else 0


def test_watch_follows_the_buffer_draining_after_an_outage(
    tmp_path: Path,
    mosquitto: Mosquitto,
    gauge_bus: SimulatedBus,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "data"
    path = tmp_path / "agent.toml"
    path.write_text(
        agent_toml(data_dir, mosquitto, port_url=gauge_bus.port_path, buffer=SLOW_BACKLOG)
    )
    watch = ["status", "--config", str(path), "--watch", "--json", "--interval-s", "0.2"]

    with agent_process(path):
        wait_until(
            lambda: (s := read_status(data_dir)) is not None and s.mqtt.last_puback_ms,
            timeout_s=20,
            message="the agent's first PUBACK in status.json",
        )
        mosquitto.stop()  # the outage: readings pile up in the buffer
        wait_until(lambda: unsent_rows(data_dir) >= 80, timeout_s=20, message="80 unsent rows")
        mosquitto.start()
        assert main([*watch, "--max-s", "60"]) == 0

    samples: list[dict[str, Any]] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    first, last = samples[0], samples[-1]
    assert first["unsent_rows"] >= 40
    assert first["drained"] is False
    assert last["drained"] is True
    assert last["unsent_rows"] <= 2  # at most one read's live rows on their way
    assert all(s["drained"] is False for s in samples[:-1])
    assert len(samples) >= 3  # seen draining, not just before and after
    unsent = [s["unsent_rows"] for s in samples]
    peak = unsent.index(max(unsent))  # it grows until the agent is connected again
    draining = unsent[peak:]
    assert all(b <= a + 2 for a, b in itertools.pairwise(draining)), unsent
    shrinking = [s for s in samples[1:-1] if s["drain_rate_rows_per_s"] > 0]
    assert shrinking, samples
    for s in shrinking:  # an ETA at the rate seen (rounded to 0.1 s: 0.0 for the last rows)
        assert s["eta_s"] == pytest.approx(
            s["unsent_rows"] / s["drain_rate_rows_per_s"], abs=0.1
        ), samples
        assert s["oldest_unsent_age_s"] > 0, samples
    assert all(s["agent_running"] for s in samples), samples


def test_watch_gives_up_after_max_s_when_nothing_drains(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = tmp_path / "agent.toml"
    path.write_text(agent_toml(data_dir, mosquitto, port_url="/dev/null-port"))
    now_ms = time.time_ns() // 1_000_000
    with Buffer(data_dir / BUFFER_FILE) as buffer:  # an agent stopped during an outage
        for i in range(5):
            buffer.append("gauge-1", now_ms - 60_000 + i, [Measurement("level_cm", i, "cm")])

    clock = FakeClock()  # the watch's own time: a loaded machine cannot skip a sample
    out, err_stream = io.StringIO(), io.StringIO()
    code = watch(
        path,
        interval_s=0.1,
        max_s=0.3,
        as_json=False,
        out=out,
        err=err_stream,
        sleep=clock.sleep,
        monotonic=clock.monotonic_s,
    )

    assert code == 3
    err = err_stream.getvalue()
    assert "5 unsent, not draining, ETA unknown, oldest unsent 60 s old" in err
    assert "agent not running: nothing drains" in err
    assert "not drained within 0.3 s" in err


def test_replay_progress_is_logged_and_kept_in_status_json(
    tmp_path: Path,
    mosquitto: Mosquitto,
    recorder: Recorder,
    gauge_bus: SimulatedBus,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay_progress, "LOG_EVERY_S", 0.5)
    caplog.set_level(logging.INFO, logger="agent.uplink.replay_progress")
    data_dir = tmp_path / "data"
    config = parse_config(
        agent_toml(data_dir, mosquitto, port_url=gauge_bus.port_path, buffer=SLOW_BACKLOG)
    )
    with Agent(config) as agent:
        wait_until(lambda: agent.buffer.stats().first_unsent_seq > 60, timeout_s=WAIT_S)
        replay(mosquitto, "r1", 1, 60)  # 60 rows at 20 rows/s: about three seconds
        during = wait_until(
            lambda: replay_in_status(data_dir, lambda r: 0 < r.seqs_done < 60),
            timeout_s=WAIT_S,
            message="a replay half done in status.json",
        )
        recorder.wait_for(lambda: len(results(recorder, "r1")) == 2, "r1 answered")
        after = wait_until(
            lambda: replay_in_status(data_dir, lambda r: r.finished_ms is not None),
            timeout_s=WAIT_S,
            message="the finished replay in status.json",
        )

    assert during is not None  # for mypy: wait_until returned it truthy
    assert after is not None
    assert (during.from_seq, during.to_seq, during.finished_ms) == (1, 60, None)
    assert during.replayed == during.seqs_done
    assert (after.seqs_done, after.replayed, after.seqs_total) == (60, 60, 60)
    assert after.finished_ms is not None
    assert after.started_ms <= after.finished_ms
    assert json.loads(results(recorder, "r1")[1].detail) == {"replayed": 60, "unavailable": 0}
    logged = [r.getMessage() for r in caplog.records]
    assert any(" of 60 done (" in m and "finished" not in m for m in logged), logged
    assert "replay seqs 1..60: 60 of 60 done (100%), 60 replayed, 0 unavailable (finished)" in (
        logged
    )


def test_the_field_guide_shows_the_watch_line_as_it_is_printed() -> None:
    sample = DrainSample(
        now_ms=0,
        elapsed_s=5.0,
        unsent_rows=2140,
        drain_rate_rows_per_s=185.2,
        eta_s=11.6,
        oldest_unsent_age_s=3 * 3600 + 100,
        agent_running=True,
        broker_connected=True,
        drained=False,
    )
    guide = (Path(__file__).parents[2] / "docs" / "field-guide.md").read_text()

    assert f"--watch\n{describe(sample)}\n" in guide
    for option in ("--interval-s", "--max-s", "--json"):
        assert f"`{option}`" in guide
