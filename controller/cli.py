"""``edgewatch controller``: run the controller, and manage its API tokens.

- ``run --config PATH [--log-level L] [--log-format text|json]``: until SIGTERM or Ctrl-C;
- ``token create --role admin|operator|viewer [--place PATH] [--name N] (--db PATH | --config
  PATH)``: prints the new token once (only its sha256 is stored);
- ``token list`` and ``token revoke --name N`` with the same ``--db`` / ``--config``;
- ``import-points FILE [--format csv|geojson] [--datum D]`` and ``import-boundaries FILE
  --datum D``: send a file to a running controller (``--url URL`` or ``--config PATH``; the
  token from ``$EDGEWATCH_TOKEN``), which checks it whole and imports all of it or nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from sqlite_utils import Database

from controller.access import AccessError, Role, create_token, list_tokens, revoke_token
from controller.config import PLACE_PATTERN, ConfigError, LogFormat, load_config
from controller.logs import setup_logging
from controller.store.sqlite_schema import migrations


def _database_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", type=Path, help="the controller's SQLite database")
    where.add_argument("--config", type=Path, help="the controller's TOML config (its storage)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgewatch controller",
        description="The central controller: MQTT ingest, fleet health, forwarding, HTTP API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run until SIGTERM / Ctrl-C")
    run.add_argument("--config", type=Path, required=True, help="controller TOML config")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.add_argument(
        "--log-format", choices=[f.value for f in LogFormat], help="overrides [logging] format"
    )
    token = commands.add_parser("token", help="API tokens").add_subparsers(
        dest="action", required=True
    )
    create = token.add_parser("create", help="create a token and print it (once)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--place", help="scope: only this place and below (default: all)")
    create.add_argument("--name", help="a name for the audit log (default: role-place-time)")
    _database_args(create)
    listing = token.add_parser("list", help="list tokens (never the tokens themselves)")
    _database_args(listing)
    revoke = token.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("--name", required=True)
    _database_args(revoke)
    datums = ["wgs84", "gcj02", "bd09"]
    points = commands.add_parser(
        "import-points", help="risk points with coordinates from a CSV or GeoJSON file"
    )
    points.add_argument("file", type=Path)
    points.add_argument("--format", choices=["csv", "geojson"], help="default: by the name")
    points.add_argument("--datum", choices=datums, default="wgs84", help="the file's datum")
    _api_args(points)
    outlines = commands.add_parser(
        "import-boundaries", help="place outlines (district, street) from a GeoJSON file"
    )
    outlines.add_argument("file", type=Path)
    outlines.add_argument(
        "--datum", choices=datums, required=True, help="the file's datum (Amap exports: gcj02)"
    )
    outlines.add_argument("--place-property", default="place")
    outlines.add_argument("--name-property", default="name")
    _api_args(outlines)
    return parser


def _api_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the running controller, e.g. http://127.0.0.1:8080")
    where.add_argument("--config", type=Path, help="the controller's TOML config (its [http])")


def upload_main(args: argparse.Namespace) -> int:
    """POST the file to the running controller; print its answer (JSON) or its refusal."""
    import httpx  # noqa: PLC0415 (only for these commands)

    from controller.map.imports import format_of  # noqa: PLC0415

    try:
        url = args.url or _config_url(args.config)
        data = args.file.read_bytes()
        if args.command == "import-points":
            file_format = args.format or format_of(args.file.name).value
            path = "/api/v1/risk-points/import"
            params = {"format": file_format, "datum": args.datum}
        else:
            path = "/api/v1/map/boundaries"
            params = {"datum": args.datum, "place_property": args.place_property,
                      "name_property": args.name_property}  # fmt: skip
    except (ConfigError, OSError, ValueError) as exc:
        print(f"edgewatch controller: {exc}", file=sys.stderr)
        return 2
    headers = {"Content-Type": "application/octet-stream"}
    token = os.environ.get("EDGEWATCH_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(
            f"{url.rstrip('/')}{path}", params=params, content=data, headers=headers,
            timeout=300, trust_env=False,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        print(f"edgewatch controller: {url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        print(f"edgewatch controller: {args.file}: {detail}", file=sys.stderr)
        return 1
    print(json.dumps(response.json()))
    return 0


def _config_url(path: Path) -> str:
    http = load_config(path).http
    if http.port == 0:
        raise ConfigError(f"{path}: [http] port = 0 (any free port): give --url instead")
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::") else http.host
    return f"http://{host}:{http.port}"


def _open_db(args: argparse.Namespace) -> Database:
    path: Path = args.db if args.db is not None else load_config(args.config).storage.path
    path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(sqlite3.connect(path, timeout=10))
    db.enable_wal()
    migrations.apply(db)
    return db


def token_main(args: argparse.Namespace) -> int:
    now_ms = time.time_ns() // 1_000_000
    if args.action == "create" and args.place and not re.match(PLACE_PATTERN, args.place):
        print(
            f"edgewatch controller: --place {args.place!r} is not a place path like"
            " 'cq/yuzhong/jiefangbei'",
            file=sys.stderr,
        )
        return 2
    try:
        db = _open_db(args)
    except ConfigError as exc:
        print(f"edgewatch controller: {exc}", file=sys.stderr)
        return 2
    try:
        if args.action == "create":
            name = args.name or f"{args.role}-{(args.place or 'all').replace('/', '-')}-{now_ms}"
            with db.conn:
                token = create_token(
                    db, name=name, role=Role(args.role), place=args.place, now_ms=now_ms
                )
            print(token)
            print(
                f"token {name!r} ({args.role}, place {args.place or 'everywhere'}): shown once,"
                " keep it safe",
                file=sys.stderr,
            )
        elif args.action == "list":
            print(json.dumps(list_tokens(db.conn), indent=2))
        else:
            with db.conn:
                revoked = revoke_token(db, name=args.name, now_ms=now_ms)
            if not revoked:
                print(f"edgewatch controller: no active token named {args.name!r}", file=sys.stderr)
                return 1
    except AccessError as exc:
        print(f"edgewatch controller: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "token":
        return token_main(args)
    if args.command in ("import-points", "import-boundaries"):
        return upload_main(args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"edgewatch controller: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, LogFormat(args.log_format or config.logging.format))

    from controller.service import (  # noqa: PLC0415 (FastAPI only when running)
        Controller,
        StartupRefusedError,
    )

    # Threads that decode a replayed backlog hold the GIL in 5 ms slices by default; shorter
    # slices let the live-lane thread (alerts) in sooner, at a small cost in throughput.
    sys.setswitchinterval(0.0005)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        controller = Controller(config)
        controller.start()
        # Everything built so far (modules, the FastAPI app, pydantic's validators) lives as
        # long as the process: out of the collector's sight, a full collection no longer
        # walks it, and under full ingest those pauses were the API's slowest answers.
        gc.collect()
        gc.freeze()
    except StartupRefusedError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"edgewatch controller: {exc}", file=sys.stderr)
        return 1
    try:
        print(
            f"edgewatch controller: API at {controller.api_url}/api/v1 "
            f"(OpenAPI at {controller.api_url}/docs); Ctrl-C to stop",
            flush=True,
        )
        stop.wait()
    finally:
        controller.stop()
    print("edgewatch controller: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
