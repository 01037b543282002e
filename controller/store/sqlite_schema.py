"""The controller's SQLite schema as small named migrations, each in its own transaction.

Add a migration at the end; never edit one that has shipped.
"""

from __future__ import annotations

import json

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


@migrations(name="0004_fleet_management")
def _fleet_management(db: Database) -> None:
    """Registry, device health, access, commands, versioned config, broker credentials."""
    for column in (
        "source TEXT NOT NULL DEFAULT 'seen'",  # 'config', 'api' or 'seen' (traffic only)
        "label TEXT",
        "created_ms INTEGER",
        "clock_skew_ms INTEGER",  # heartbeat ts_ms minus the controller's receive time
        "reported_config_hash TEXT",
        "degraded_reasons TEXT",
    ):
        db.execute(f"ALTER TABLE gateways ADD COLUMN {column}")
    for column in (
        "family TEXT",
        "maintenance INTEGER NOT NULL DEFAULT 0",
        "health_state TEXT NOT NULL DEFAULT 'unknown'",
        "health_reason TEXT",
        "health_since_ms INTEGER",
        "last_good_ms INTEGER",
    ):
        db.execute(f"ALTER TABLE devices ADD COLUMN {column}")
    db.execute(
        """
        CREATE TABLE device_transitions (
            id INTEGER PRIMARY KEY,
            gateway TEXT NOT NULL,
            device TEXT NOT NULL,
            from_state TEXT NOT NULL,
            to_state TEXT NOT NULL,
            reason TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX device_transitions_device ON device_transitions (gateway, device, id)")
    db.execute(
        """
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            token_sha256 TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            place TEXT,
            created_ms INTEGER NOT NULL,
            revoked_ms INTEGER
        )
        """
    )
    db.execute(
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            place TEXT,
            detail TEXT NOT NULL,
            outcome TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE commands (
            id TEXT PRIMARY KEY,
            gateway TEXT NOT NULL,
            type TEXT NOT NULL,
            args_json TEXT NOT NULL,
            state TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            actor TEXT NOT NULL,
            actor_role TEXT NOT NULL,
            place TEXT,
            created_ms INTEGER NOT NULL,
            deadline_ms INTEGER NOT NULL,
            published_ms INTEGER,
            delivered_ms INTEGER,
            finished_ms INTEGER
        )
        """
    )
    db.execute("CREATE INDEX commands_gateway_state ON commands (gateway, state)")
    db.execute(
        """
        CREATE TABLE gateway_configs (
            gateway TEXT NOT NULL,
            version INTEGER NOT NULL,
            hash TEXT NOT NULL,
            config_json TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,
            PRIMARY KEY (gateway, version)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE places (
            path TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            level TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE risk_points (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            place TEXT NOT NULL,
            category TEXT NOT NULL,
            devices_json TEXT NOT NULL DEFAULT '[]',
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE mqtt_credentials (
            gateway TEXT PRIMARY KEY,
            password_line TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            revoked_ms INTEGER
        )
        """
    )
    db.execute("CREATE INDEX gateways_place ON gateways (place)")


@migrations(name="0005_risk_and_alerts")
def _risk_and_alerts(db: Database) -> None:
    """The risk engine and the alert chain on the registry's risk points (0004), which a
    point declared in the config ([[risk_points]]) shares with one registered by the API."""
    for column in (
        "colour TEXT NOT NULL DEFAULT 'green'",
        "colour_since_ms INTEGER",
        "blind_devices TEXT NOT NULL DEFAULT '[]'",  # devices of the point that went quiet
        "rules_json TEXT NOT NULL DEFAULT '[]'",  # [wire.risk.MetricRule]; [] is not judged
        "stale_after_s REAL NOT NULL DEFAULT 300",
        "source TEXT NOT NULL DEFAULT 'api'",  # 'config' ([[risk_points]]) or 'api'
    ):
        db.execute(f"ALTER TABLE risk_points ADD COLUMN {column}")
    db.execute("CREATE INDEX risk_points_place ON risk_points (place)")
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


@migrations(name="0006_gaps")
def _gaps(db: Database) -> None:
    """Seq gaps per gateway and what became of them (controller/fleet/gaps.py)."""
    db.execute(
        """
        CREATE TABLE gaps (
            id INTEGER PRIMARY KEY,
            gateway TEXT NOT NULL,
            from_seq INTEGER NOT NULL,
            to_seq INTEGER NOT NULL,
            missing INTEGER NOT NULL,
            ranges TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            detected_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            detail TEXT
        )
        """
    )
    db.execute("CREATE INDEX gaps_gateway ON gaps (gateway, id)")


@migrations(name="0007_degraded_reasons_json")
def _degraded_reasons_json(db: Database) -> None:
    """``gateways.degraded_reasons`` as a JSON array instead of ``"; "``-joined text, so the
    gateway list can be built as JSON by SQLite (a reason may itself hold ``"; "``)."""
    rows = db.execute(
        "SELECT id, degraded_reasons FROM gateways WHERE degraded_reasons IS NOT NULL"
    ).fetchall()
    db.conn.executemany(
        "UPDATE gateways SET degraded_reasons = ? WHERE id = ?",
        [(json.dumps(text.split("; ")) if text else None, gateway) for gateway, text in rows],
    )


@migrations(name="0008_device_health_registers")
def _device_health_registers(db: Database) -> None:
    """What a device reports about itself (reboot count, supply voltage...) from the last
    heartbeat, as a JSON object, kept with the device instead of parsed out of the
    gateway's whole heartbeat on every device query."""
    db.execute("ALTER TABLE devices ADD COLUMN health_registers TEXT")


@migrations(name="0009_map")
def _map(db: Database) -> None:
    """Where risk points and gateways are (WGS84 / CGCS2000 degrees; NULL: not on the map),
    and the places' outlines for the offline base layer (controller/map/boundaries.py)."""
    for table in ("risk_points", "gateways"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN lon REAL")
        db.execute(f"ALTER TABLE {table} ADD COLUMN lat REAL")
    db.execute(
        """
        CREATE TABLE place_boundaries (
            place TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            geometry TEXT NOT NULL,  -- GeoJSON MultiPolygon, WGS84
            vertices INTEGER NOT NULL,
            loaded_ms INTEGER NOT NULL
        )
        """
    )


@migrations(name="0010_duty_notify")
def _duty_notify(db: Database) -> None:
    """Duty rosters per place, the people told of each alert step (their acknowledgement
    links), one durable outbox row per notification, and each alert's escalation to people
    (controller/notify/, controller/store/notify.py)."""
    db.execute(
        """
        CREATE TABLE duty_rosters (
            place TEXT PRIMARY KEY,
            layer TEXT NOT NULL,
            source TEXT NOT NULL,  -- 'config' ([[notify.rosters]]) or 'api'
            doc_json TEXT NOT NULL,  -- controller.notify.config.RosterBody
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE notify_recipients (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a link names one
            alert_id INTEGER NOT NULL,
            step TEXT NOT NULL,  -- 'raised:red', 'escalated:street'...
            place TEXT NOT NULL,
            layer TEXT NOT NULL,
            person TEXT NOT NULL,
            person_name TEXT NOT NULL,
            deadline_ms INTEGER NOT NULL,  -- the link's expiry
            created_ms INTEGER NOT NULL,
            link_uses INTEGER NOT NULL DEFAULT 0,
            last_action TEXT
        )
        """
    )
    # No person is told twice of the same step of an alert.
    db.execute(
        "CREATE UNIQUE INDEX notify_recipients_once"
        " ON notify_recipients (alert_id, step, place, person)"
    )
    db.execute(
        """
        CREATE TABLE notify_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            recipient_id INTEGER NOT NULL REFERENCES notify_recipients (id),
            channel TEXT NOT NULL,
            address TEXT,
            escalation INTEGER NOT NULL,  -- 1: cancelled once the alert is acknowledged
            state TEXT NOT NULL,  -- queued, sent, failed, cancelled
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL,
            claimed_until_ms INTEGER,
            enqueued_ms INTEGER NOT NULL,
            sent_ms INTEGER,
            last_error TEXT
        )
        """
    )
    db.execute("CREATE INDEX notify_outbox_recipient ON notify_outbox (recipient_id)")
    db.execute(
        "CREATE INDEX notify_outbox_due ON notify_outbox (next_attempt_ms, id)"
        " WHERE state = 'queued'"
    )
    db.execute(
        """
        CREATE TABLE notify_episodes (
            alert_id INTEGER PRIMARY KEY,
            top_layer TEXT NOT NULL,  -- the highest layer told so far
            escalate_after_s REAL NOT NULL,
            deadline_ms INTEGER  -- NULL: nobody higher to tell
        )
        """
    )
    db.execute(
        "CREATE INDEX notify_episodes_due ON notify_episodes (deadline_ms)"
        " WHERE deadline_ms IS NOT NULL"
    )
