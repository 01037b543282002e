"""The reference tier center over real HTTP: records each batch once, by its signed batch_id."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from edgewatch.center import ReferenceCenter, main
from wire.webhook import SIGNATURE_HEADER, SignatureError, sign, verify

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
        post(center, {**body, "batch_id": "b2", "readings": [reading(i) for i in range(3, 30)]})
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
        body = {"batch_id": "k", "readings": [reading(1)]}
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


SECRET = "a-secret-of-16-chars-or-more"


def signed_post(
    center: ReferenceCenter, body: bytes, *, key: str, signature: str | None
) -> httpx.Response:
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    with httpx.Client(trust_env=False, timeout=5) as client:
        return client.post(center.url, content=body, headers=headers)


def alerts_body(batch_id: str, alert_id: int) -> bytes:
    return json.dumps(
        {
            "kind": "alerts",
            "batch_id": batch_id,
            "alerts": [{"alert_id": alert_id, "action": "raised"}],
        }
    ).encode()


def test_a_forged_or_missing_signature_is_refused() -> None:
    body = alerts_body("k1", 1)
    now_s = int(time.time())
    with ReferenceCenter("c", "city", secret=SECRET) as center:
        forged = sign("not-the-secret-at-all", body, now_s)
        assert signed_post(center, body, key="k1", signature=forged).status_code == 401
        assert signed_post(center, body, key="k1", signature=None).status_code == 401
        assert signed_post(center, body, key="k1", signature="t=x,v1=").status_code == 401
        tampered = body.replace(b"raised", b"closed")
        good = sign(SECRET, body, now_s)
        response = signed_post(center, tampered, key="k1", signature=good)
        assert response.status_code == 401
        assert "does not match" in response.json()["error"]
        assert center.alerts == []
        assert center.rejected_signatures == 4
        assert signed_post(center, body, key="k1", signature=good).status_code == 200
        assert center.alert_actions() == [(1, "raised")]


def test_a_replayed_webhook_is_deduplicated_in_the_window_and_refused_after() -> None:
    body = alerts_body("k7", 7)
    with ReferenceCenter("c", "city", secret=SECRET, replay_window_s=300) as center:
        signature = sign(SECRET, body, int(time.time()))
        assert signed_post(center, body, key="k7", signature=signature).json()["duplicate"] is False
        again = signed_post(center, body, key="k7", signature=signature)
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        old = sign(SECRET, body, int(time.time()) - 301)
        stale = signed_post(center, body, key="k7", signature=old)
        assert stale.status_code == 401
        assert "replay window" in stale.json()["error"]
        assert center.alert_actions() == [(7, "raised")]


def test_a_captured_webhook_sent_again_under_a_new_key_is_recorded_once() -> None:
    """Regression: the center de-duplicated on the unsigned Idempotency-Key, so a captured
    request re-sent within the replay window with a fresh key was recorded twice."""
    body = alerts_body("city-p1-1", 9)
    with ReferenceCenter("c", "city", secret=SECRET) as center:
        signature = sign(SECRET, body, int(time.time()))
        first = signed_post(center, body, key="city-p1-1", signature=signature)
        assert first.json() == {"accepted": 1, "duplicate": False}
        renamed = signed_post(center, body, key="a-fresh-key", signature=signature)
        assert renamed.status_code == 400
        assert "is not the body's batch_id 'city-p1-1'" in renamed.json()["error"]
        with httpx.Client(trust_env=False, timeout=5) as client:  # no key at all
            bare = client.post(center.url, content=body, headers={SIGNATURE_HEADER: signature})
        assert bare.json() == {"accepted": 1, "duplicate": True}
        assert center.alert_actions() == [(9, "raised")]
        assert center.received()["duplicates"] == 1


def test_a_batch_without_a_batch_id_is_refused() -> None:
    with ReferenceCenter("c", "city") as center:
        response = post(center, {"kind": "readings", "readings": [reading(1)]}, "k")
        assert response.status_code == 400
        assert response.json()["error"].startswith("batch_id: ")
        assert center.seqs() == set()


def test_signing_round_trip_and_window_edges() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body, 1_000)
    assert verify(SECRET, body, header, now_s=1_300) == 1_000
    with pytest.raises(SignatureError, match="replay window"):
        verify(SECRET, body, header, now_s=1_300.5)
    with pytest.raises(SignatureError, match="missing"):
        verify(SECRET, body, "", now_s=1_000)


def test_answers_go_out_without_nagle_delay() -> None:
    """Regression: headers and body are two writes; with Nagle on, each answer on a
    kept-alive connection waited ~40 ms for the client's delayed ACK, so the controller's
    deliveries to a center were paced at ~25 a second."""
    from edgewatch.center import _Handler  # noqa: PLC0415

    assert _Handler.disable_nagle_algorithm is True
