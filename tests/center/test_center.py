"""The reference tier center over real HTTP: records batches once per Idempotency-Key."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edgewatch.center import ReferenceCenter, main

ROOT = Path(__file__).resolve().parents[2]


def post(center: ReferenceCenter, body: object, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    with httpx.Client(trust_env=False, timeout=5) as client:
        return client.post(center.url, json=body, headers=headers)


def received(center: ReferenceCenter) -> dict[str, object]:
    with httpx.Client(trust_env=False, timeout=5) as client:
        result: dict[str, object] = client.get(f"http://127.0.0.1:{center.port}/received").json()
        return result


def reading(seq: int) -> dict[str, object]:
    return {"gateway": "gw-1", "device": "d", "metric": "m", "value": 1.0, "unit": "",
            "quality": "good", "seq": seq, "ts_ms": seq}  # fmt: skip


def test_records_batches_and_ignores_a_repeated_key() -> None:
    with ReferenceCenter("street-1", "street") as center:
        body = {"kind": "readings", "center": "street-1", "batch_id": "b1",
                "readings": [reading(1), reading(2)]}  # fmt: skip
        assert post(center, body, "b1").json() == {"accepted": 2, "duplicate": False}
        assert post(center, body, "b1").json() == {"accepted": 2, "duplicate": True}
        post(center, {**body, "readings": [reading(i) for i in range(3, 30)]}, "b2")
        state = received(center)
    assert state["name"] == "street-1"
    assert state["tier"] == "street"
    assert state["batches"] == 2
    assert state["readings"] == 29
    assert state["duplicates"] == 1
    last = state["last"]
    assert isinstance(last, list)
    assert len(last) == 20
    assert last[-1]["seq"] == 29


def test_refuses_bad_bodies_and_paths() -> None:
    with ReferenceCenter("c", "city") as center:
        assert post(center, [1, 2]).status_code == 400
        assert post(center, {"readings": "no"}).status_code == 400
        with httpx.Client(trust_env=False, timeout=5) as client:
            assert client.get(f"http://127.0.0.1:{center.port}/nope").status_code == 404
        assert received(center)["batches"] == 0


def test_injected_failures_answer_503_without_recording() -> None:
    with ReferenceCenter("c", "city") as center:
        center.fail_next_posts(1)
        body = {"readings": [reading(1)]}
        assert post(center, body, "k").status_code == 503
        assert post(center, body, "k").status_code == 200
        assert center.post_keys == ["k", "k"]
        assert center.seqs() == {("gw-1", 1)}


def test_tier_is_checked() -> None:
    with pytest.raises(ValueError, match="must be one of city, district, street"):
        ReferenceCenter("c", "county")
    with pytest.raises(SystemExit):
        main(["run", "--name", "c", "--tier", "county", "--port", "0"])


def test_cli_runs_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "edgewatch.center", "run", "--name", "city-1", "--tier", "city",
         "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "POST http://127.0.0.1:" in line
        url = line.split("GET ", 1)[1].strip()
        with httpx.Client(trust_env=False, timeout=5) as client:
            assert client.get(url).json()["name"] == "city-1"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
