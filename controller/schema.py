"""The controller's SQLite schema as small named migrations, each in its own transaction.

Add a migration at the end; never edit one that has shipped.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("edgewatch-controller")


@migrations(name="0001_readings")
def _readings(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE readings (
            id INTEGER PRIMARY KEY,
            gateway TEXT NOT NULL,
            seq INTEGER NOT NULL,
            ts_ms INTEGER NOT NULL,
            device TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            unit TEXT NOT NULL,
            quality TEXT NOT NULL,
            session INTEGER NOT NULL,
            lane TEXT NOT NULL,
            received_ms INTEGER NOT NULL
        )
        """
    )
    # De-duplication: the agent's seq is unique per gateway and never reused.
    db.execute("CREATE UNIQUE INDEX readings_gateway_seq ON readings (gateway, seq)")
    db.execute("CREATE INDEX readings_device ON readings (gateway, device, seq)")


@migrations(name="0002_fleet")
def _fleet(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE gateways (
            id TEXT PRIMARY KEY,
            place TEXT,
            state TEXT NOT NULL DEFAULT 'unknown',
            state_reason TEXT,
            state_since_ms INTEGER,
            session INTEGER,
            last_birth_ms INTEGER,
            last_heartbeat_ms INTEGER,
            heartbeat_interval_s REAL,
            agent_version TEXT,
            health_json TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE gateway_transitions (
            id INTEGER PRIMARY KEY,
            gateway TEXT NOT NULL,
            from_state TEXT NOT NULL,
            to_state TEXT NOT NULL,
            reason TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX gateway_transitions_gateway ON gateway_transitions (gateway, id)")
    db.execute(
        """
        CREATE TABLE devices (
            gateway TEXT NOT NULL,
            name TEXT NOT NULL,
            state TEXT,
            last_seq INTEGER,
            last_ts_ms INTEGER,
            last_metric TEXT,
            last_value REAL,
            last_unit TEXT,
            last_quality TEXT,
            first_seen_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (gateway, name)
        )
        """
    )


@migrations(name="0003_outbox")
def _outbox(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids (and so idempotency keys) never reused
            center TEXT NOT NULL,
            reading_id INTEGER NOT NULL,
            enqueued_ms INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX outbox_center ON outbox (center, id)")
    db.execute(
        """
        CREATE TABLE center_stats (
            center TEXT PRIMARY KEY,
            delivered INTEGER NOT NULL DEFAULT 0,
            last_delivered_ms INTEGER
        )
        """
    )
    db.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")


@migrations(name="0004_risk_and_alerts")
def _risk_and_alerts(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE risk_points (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            category TEXT NOT NULL,
            place TEXT NOT NULL,
            colour TEXT NOT NULL DEFAULT 'green',
            colour_since_ms INTEGER,
            blind_devices TEXT NOT NULL DEFAULT '[]',
            rules_json TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            point TEXT NOT NULL,
            kind TEXT NOT NULL,
            device TEXT NOT NULL DEFAULT '',
            metric TEXT NOT NULL DEFAULT '',
            value REAL,
            place TEXT NOT NULL,
            colour TEXT NOT NULL,
            peak_colour TEXT NOT NULL,
            state TEXT NOT NULL,
            open INTEGER NOT NULL,
            source TEXT NOT NULL,
            source_ts_ms INTEGER,
            raised_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            closed_ms INTEGER,
            tiers TEXT NOT NULL,
            ack_deadline_ms INTEGER
        )
        """
    )
    # One open episode per risk point (and per device for blind spots).
    db.execute(
        "CREATE UNIQUE INDEX alerts_open ON alerts"
        " (point, kind, (CASE WHEN kind = 'blind_spot' THEN device ELSE '' END)) WHERE open = 1"
    )
    db.execute("CREATE INDEX alerts_deadline ON alerts (ack_deadline_ms) WHERE open = 1")
    db.execute(
        """
        CREATE TABLE alert_trail (
            id INTEGER PRIMARY KEY,
            alert_id INTEGER NOT NULL REFERENCES alerts (id),
            action TEXT NOT NULL,
            state TEXT NOT NULL,
            colour TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            by TEXT NOT NULL,
            note TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX alert_trail_alert ON alert_trail (alert_id, id)")
    # The urgent lane of each center's outbox: alerts and health summaries, delivered by a
    # thread of their own so they never wait behind readings.
    db.execute(
        """
        CREATE TABLE priority_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: ids make idempotency keys
            center TEXT NOT NULL,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            enqueued_ms INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX priority_outbox_center ON priority_outbox (center, id)")
    db.execute("ALTER TABLE center_stats ADD COLUMN priority_delivered INTEGER NOT NULL DEFAULT 0")
