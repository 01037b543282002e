"""The SQLite store on a real file: de-duplication, outbox enqueue, migrations, a sick op."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from controller.store.sqlite import IncomingReadings, Lane, Store, StoreError
from controller.store.sqlite_schema import migrations
from tests.controller.support import batch
from wire.rows import reading_to_row


def incoming(seqs: range | list[int], *, centers: tuple[str, ...] = ("city",)) -> IncomingReadings:
    return IncomingReadings(
        gateway="gw-a",
        lane=Lane.LIVE,
        session=1,
        rows=[reading_to_row(r) for r in batch(seqs).readings],
        received_ms=1_000,
        centers=centers,
    )


def count(store: Store, sql: str) -> int:
    return int(store.read(lambda conn: conn.execute(sql).fetchone()[0]))


def test_duplicates_are_ignored_and_only_new_readings_are_enqueued(tmp_path: Path) -> None:
    committed: list[frozenset[str]] = []
    with Store(tmp_path / "c.db") as store:
        store.on_readings_committed(committed.append)
        store.put_readings(incoming(range(1, 11), centers=("city", "street")))
        store.put_readings(incoming(range(5, 16), centers=("city", "street")))
        store.put_readings(incoming([1, 2]))
        store.call(lambda db: None)  # a barrier: everything before it is committed
        assert count(store, "SELECT count(*) FROM readings") == 15
        assert count(store, "SELECT count(*) FROM outbox WHERE center = 'city'") == 15
        assert count(store, "SELECT count(*) FROM outbox WHERE center = 'street'") == 15
        assert count(store, "SELECT value FROM counters") == 15
        assert count(store, "SELECT last_seq FROM devices") == 15
        assert frozenset({"city", "street"}) in committed


def test_on_stored_runs_after_the_commit(tmp_path: Path) -> None:
    seen: list[int] = []
    with Store(tmp_path / "c.db") as store:
        batch_in = incoming([1, 2, 3])
        store.put_readings(
            IncomingReadings(
                gateway=batch_in.gateway,
                lane=batch_in.lane,
                session=1,
                rows=batch_in.rows,
                received_ms=1,
                on_stored=lambda: seen.append(count(store, "SELECT count(*) FROM readings")),
            )
        )
        store.call(lambda db: None)
    assert seen == [3]


def test_reopening_keeps_data_and_applies_no_migration_twice(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db") as store:
        store.put_readings(incoming([1, 2]))
    with Store(tmp_path / "c.db") as store:
        store.put_readings(incoming([2, 3]))
        store.call(lambda db: None)
        assert count(store, "SELECT count(*) FROM readings") == 3
        names = store.read(
            lambda conn: [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")]
        )
        assert names == [
            "0001_readings",
            "0002_fleet",
            "0003_outbox",
            "0004_fleet_management",
            "0005_risk_and_alerts",
            "0006_gaps",
            "0007_degraded_reasons_json",
            "0008_device_health_registers",
            "0009_map",
            "0010_duty_notify",
        ]
        assert store.read(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"


def test_risk_points_registered_before_0005_get_the_risk_columns(tmp_path: Path) -> None:
    db = Database(tmp_path / "c.db")
    migrations.apply(db, stop_before="0005_risk_and_alerts")
    db.execute(
        "INSERT INTO risk_points (id, name, place, category, devices_json, created_ms,"
        " updated_ms) VALUES ('slope-7', 'Slope', 'cq/yuzhong', 'slope', '[\"gw-a.incl-1\"]',"
        " 1, 1)"
    )
    db.conn.commit()
    db.close()
    with Store(tmp_path / "c.db") as store:
        row = store.read(
            lambda conn: conn.execute(
                "SELECT colour, colour_since_ms, blind_devices, rules_json, source, devices_json"
                " FROM risk_points"
            ).fetchone()
        )
    assert tuple(row) == ("green", None, "[]", "[]", "api", '["gw-a.incl-1"]')


def test_degraded_reasons_stored_before_0007_become_json_arrays(tmp_path: Path) -> None:
    db = Database(tmp_path / "c.db")
    migrations.apply(db, stop_before="0007_degraded_reasons_json")
    db.conn.executemany(
        "INSERT INTO gateways (id, state, degraded_reasons) VALUES (?, 'degraded', ?)",
        [("gw-a", "devices failing: rain-1; disk low: 10 bytes free"), ("gw-b", None)],
    )
    db.conn.commit()
    db.close()
    with Store(tmp_path / "c.db") as store:
        rows = store.read(
            lambda conn: conn.execute(
                "SELECT id, degraded_reasons FROM gateways ORDER BY id"
            ).fetchall()
        )
    assert [tuple(r) for r in rows] == [
        ("gw-a", '["devices failing: rain-1", "disk low: 10 bytes free"]'),
        ("gw-b", None),
    ]


def test_a_failing_operation_fails_alone_and_the_writer_carries_on(tmp_path: Path) -> None:
    def broken(db: Database) -> None:
        db.execute("INSERT INTO no_such_table VALUES (1)")

    with Store(tmp_path / "c.db") as store:
        store.put_readings(incoming([1]))
        failing = store.submit(broken)
        store.put_readings(incoming([2]))
        with pytest.raises(StoreError):
            failing.result(timeout=5)
        store.call(lambda db: None)
        assert count(store, "SELECT count(*) FROM readings") == 2
        assert store.writer_alive


def test_a_stopped_store_refuses_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    with pytest.raises(StoreError, match="not running"):
        store.put_readings(incoming([1]))


def test_many_batches_are_written_quickly(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db") as store:
        for start in range(1, 20_001, 500):
            store.put_readings(incoming(range(start, start + 500), centers=("a", "b", "c")))
        store.call(lambda db: None, timeout_s=20)
        assert count(store, "SELECT count(*) FROM readings") == 20_000
        assert count(store, "SELECT count(*) FROM outbox") == 60_000


def test_reads_reuse_a_connection_see_new_writes_and_survive_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    store.start()
    first = store.read(lambda conn: conn)
    store.put_readings(incoming([1, 2]))
    store.call(lambda db: None)
    assert store.read(lambda conn: conn) is first  # one connection per thread, kept
    assert count(store, "SELECT count(*) FROM readings") == 2  # and it sees the writer's rows
    store.stop()
    with pytest.raises(sqlite3.ProgrammingError):
        first.execute("SELECT 1")  # stop() closed it
    store.start()
    try:
        assert count(store, "SELECT count(*) FROM readings") == 2  # a fresh one after restart
    finally:
        store.stop()
