"""The gateway's own files have a schema version and numbered migrations.

``data/buffer-0.1.0.db`` was written by edgewatch 0.1.0 (commit 0a2fa86, before schema
versions existed): 2,000 readings (seqs 1-2000) of which the first 300 were acked, 1,700
unsent, and one unsent edge alert; the buffer was closed cleanly. It was made with that
release's own ``agent.buffer.Buffer`` (append, take_unsent, ack) and ``agent.alerts``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from agent.buffer.schema import MIGRATIONS
from agent.buffer.store import Buffer
from agent.bus.counter_state import MIGRATIONS as COUNTER_MIGRATIONS
from agent.bus.counter_state import SqliteCounterStore
from agent.cli import main as cli_main
from agent.sqlite_schema import Migration, SchemaTooNewError, migrate, schema_version
from edgewatch.broker import Mosquitto
from tests.agent.conftest import WAIT_S, Recorder, agent_process, agent_toml
from tests.agent.test_agent import seqs_seen
from tests.agent.test_store_and_forward import controller_status
from wire import GatewayState, TopicKind

OLD_BUFFER = Path(__file__).parent / "data" / "buffer-0.1.0.db"
LATEST = MIGRATIONS[-1].version


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return schema_version(conn)


def old_buffer_in(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True)
    return Path(shutil.copy(OLD_BUFFER, data_dir / "buffer.db"))


def test_a_new_buffer_file_starts_at_the_latest_schema_version(tmp_path: Path) -> None:
    with Buffer(tmp_path / "buffer.db"):
        pass
    assert version_of(tmp_path / "buffer.db") == LATEST


def test_a_0_1_0_buffer_full_of_unsent_readings_is_upgraded_and_drained_exactly_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    buffer_file = old_buffer_in(tmp_path / "data")
    assert version_of(buffer_file) == 0
    config_path = tmp_path / "agent.toml"
    # The old readings are from 2025: no age limit, or eviction would take them first.
    config_path.write_text(agent_toml(tmp_path / "data", mosquitto, buffer="max_age_s = 0"))
    controller_status(mosquitto, GatewayState.ONLINE)
    recorder = Recorder(mosquitto)
    try:
        with agent_process(config_path):
            recorder.wait_for(
                lambda: len(seqs_seen(recorder)) >= 1700 and recorder.messages(TopicKind.ALERTS),
                "the 1,700 unsent readings and the alert of the old buffer",
                timeout_s=3 * WAIT_S,
            )
            # Whatever is still in flight would show as a duplicate: wait until every row is
            # acked in the file before counting.
            recorder.wait_for(lambda: unsent_in(buffer_file) == 0, "every row acked")
        assert sorted(seqs_seen(recorder)) == list(range(301, 2001))
        assert [m.payload for m in recorder.messages(TopicKind.ALERTS)] == [b'{"alert":"red"}']
    finally:
        recorder.close()
    assert version_of(buffer_file) == LATEST


def unsent_in(path: Path) -> int:
    with sqlite3.connect(path, timeout=5) as conn:
        return int(
            conn.execute("SELECT count(*) FROM readings WHERE acked_at IS NULL").fetchone()[0]
        )


def test_a_buffer_from_a_newer_release_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    with Buffer(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(SchemaTooNewError) as refused:
        Buffer(path).open()
    message = str(refused.value)
    assert "\n" not in message
    assert f"schema version {LATEST + 1}, newer than this agent's {LATEST}" in message
    assert version_of(path) == LATEST + 1  # never touched


def test_agent_run_and_status_name_a_newer_buffer_and_exit_with_one_line(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with Buffer(data_dir / "buffer.db"):
        pass
    with sqlite3.connect(data_dir / "buffer.db") as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    config_path = tmp_path / "agent.toml"
    config_path.write_text(agent_toml(data_dir, mosquitto))
    with agent_process(config_path) as process:
        assert process.wait(timeout=WAIT_S) == 1
        assert process.stderr is not None
        errors = [
            line for line in process.stderr.read().decode().splitlines() if "cannot run" in line
        ]
    assert len(errors) == 1
    assert "buffer.db has schema version" in errors[0]
    assert "upgrade the agent" in errors[0]
    assert cli_main(["status", "--config", str(config_path)]) != 0
    refused = capsys.readouterr().err.strip()
    assert "\n" not in refused
    assert f"schema version {LATEST + 1}, newer than this agent's {LATEST}" in refused


def test_a_failing_migration_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    good = Migration(1, "a table", ("CREATE TABLE a (x INTEGER)",))
    bad = Migration(2, "a broken step", ("CREATE TABLE b (y INTEGER)", "NOT SQL"))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, path, (good, bad))
        assert schema_version(conn) == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert tables == {"a"}  # b rolled back with its migration
    finally:
        conn.close()


def test_migrations_must_be_numbered_in_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        with pytest.raises(ValueError, match="numbered 1, 2, 3"):
            migrate(conn, tmp_path / "x.db", (Migration(2, "skips one", ()),))
    finally:
        conn.close()


def test_a_0_1_0_counters_file_keeps_its_counts(tmp_path: Path) -> None:
    path = tmp_path / "counters.db"
    with sqlite3.connect(path) as conn:  # 0.1.0's table, no version
        conn.execute(
            "CREATE TABLE counter_state (device TEXT NOT NULL, metric TEXT NOT NULL,"
            " raw INTEGER NOT NULL, modulus INTEGER NOT NULL, PRIMARY KEY (device, metric))"
        )
        conn.execute("INSERT INTO counter_state VALUES ('rain-1', 'tips', 65530, 65536)")
    store = SqliteCounterStore(path)
    try:
        assert store.previous("rain-1", "tips", 65536) == 65530
        store.remember("rain-1", "tips", 3, 65536)
        assert store.previous("rain-1", "tips", 65536) == 3
    finally:
        store.close()
    assert version_of(path) == COUNTER_MIGRATIONS[-1].version


def test_the_recorded_old_buffer_is_what_the_docstring_says() -> None:
    """Guards the fixture itself: an edit of the binary file would void the upgrade test."""
    with sqlite3.connect(f"file:{OLD_BUFFER}?mode=ro", uri=True) as conn:
        assert schema_version(conn) == 0
        total, unsent = conn.execute(
            "SELECT count(*), sum(acked_at IS NULL) FROM readings"
        ).fetchone()
    assert (total, unsent) == (2000, 1700)
