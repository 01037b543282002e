"""The drain baseline: a plain paho-mqtt + sqlite3 transfer, nothing of edgewatch in the path.

A publisher process reads rows from a SQLite file in batches of 500 and publishes each as
compact JSON at QoS 1 with up to 10 messages awaiting PUBACK; a subscriber process (a
persistent session) decodes each message with ``json`` and inserts it with executemany
(INSERT OR IGNORE on (gateway, seq)), one commit per message, into a table shaped like the
controller's ``readings``: the same columns, a unique (gateway, seq) index for de-duplication
and the (gateway, device, seq) index the controller keeps for device queries (without it
the baseline would store less than the real pipeline must). Like the controller, it counts
what it stored in a ``counters`` row (``readings_stored``) in the same transaction, and the
bench reads both sides' counts with the same ``bench.common.readings_stored`` (a
``count(*)`` over the growing table, as before, cost the baseline a scan every 0.2 s).
``python -m bench.baseline pub|sub ...`` runs one side; ``run()`` runs both and returns
readings per second.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import readings_stored
from bench.fill import fill_buffer
from edgewatch.broker import Mosquitto
from edgewatch.waiting import wait_until

TOPIC = "baseline/readings"
BATCH = 500
INFLIGHT = 10


def publisher(port: int, source: Path) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="baseline-pub")
    room = threading.Semaphore(INFLIGHT)
    client.on_publish = lambda *_: room.release()
    client.max_inflight_messages_set(INFLIGHT)
    client.connect("127.0.0.1", port)
    client.loop_start()
    db = sqlite3.connect(source)
    last = 0
    while True:
        rows = db.execute(
            "SELECT seq, ts_ms, device, metric, value, unit, quality FROM readings"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, BATCH),
        ).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        room.acquire()
        client.publish(TOPIC, json.dumps(rows, separators=(",", ":")), qos=1)
    for _ in range(INFLIGHT):
        room.acquire()
    client.disconnect()
    client.loop_stop()


def subscriber(port: int, target: Path) -> None:
    db = sqlite3.connect(target)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, gateway TEXT NOT NULL,"
        " seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL, device TEXT NOT NULL,"
        " metric TEXT NOT NULL, value REAL, unit TEXT NOT NULL, quality TEXT NOT NULL,"
        " session INTEGER NOT NULL, lane TEXT NOT NULL, received_ms INTEGER NOT NULL)"
    )
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS readings_gateway_seq ON readings (gateway, seq)")
    db.execute("CREATE INDEX IF NOT EXISTS readings_device ON readings (gateway, device, seq)")
    db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER)")
    db.commit()
    insert = (
        "INSERT OR IGNORE INTO readings (gateway, seq, ts_ms, device, metric, value, unit,"
        " quality, session, lane, received_ms) VALUES ('gw', ?, ?, ?, ?, ?, ?, ?, 1, 'backlog', ?)"
    )

    count = (
        "INSERT INTO counters (name, value) VALUES ('readings_stored', ?)"
        " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
    )  # the controller's own statement (controller/store/sqlite.py)

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        received_ms = time.time_ns() // 1_000_000
        stored = db.executemany(insert, [(*row, received_ms) for row in json.loads(msg.payload)])
        db.execute(count, (stored.rowcount,))
        db.commit()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="baseline-sub", clean_session=False)
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_forever()


def subscriber_ready(target: Path) -> bool:
    """The subscriber created its tables (its count reads 0 until the first batch)."""
    try:
        return target.exists() and readings_stored(target) == 0
    except sqlite3.OperationalError:
        return False


def run(work: Path, readings: int) -> float:
    source, target = work / "source.db", work / "target.db"
    fill_buffer(source, readings)
    with Mosquitto(work / "broker") as broker:
        argv = [sys.executable, "-m", "bench.baseline"]
        sub = subprocess.Popen([*argv, "sub", str(broker.port), str(target)])
        try:
            wait_until(lambda: subscriber_ready(target), timeout_s=10)
            time.sleep(0.5)  # the subscription is in place (no condition to see it from here)
            started = time.perf_counter()
            pub = subprocess.Popen([*argv, "pub", str(broker.port), str(source)])
            wait_until(lambda: readings_stored(target) >= readings, timeout_s=600, interval_s=0.2)
            elapsed_s = time.perf_counter() - started
            pub.wait(timeout=30)
        finally:
            sub.terminate()
            sub.wait(timeout=10)
    return readings / elapsed_s


if __name__ == "__main__":
    role, port, path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    (publisher if role == "pub" else subscriber)(port, path)
