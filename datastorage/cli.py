"""`datastorage ...`: serve, migrate, partitions ensure, dlq status | replay-dead-letters,
workflows import | export."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from starlette.applications import Starlette

from datastorage.observability.logging import logging_config
from datastorage.settings import Mode, Settings, SettingsError, load_settings


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `datastorage` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"datastorage: {exc}", file=sys.stderr)
        return 2
    handler = {
        "serve": _serve,
        "migrate": _migrate,
        "partitions": _partitions,
        "dlq": _dlq,
        "workflows": _workflows,
    }[args.command]
    try:
        return handler(settings, args)
    except SettingsError as exc:
        print(f"datastorage: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datastorage", description="Audit-event and workflow-catalog store"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the HTTP service (embedded PostgreSQL/Redis if none configured)"
    )
    serve.add_argument("--host", help="listen address (DATASTORAGE_HOST)")
    serve.add_argument("--port", type=int, help="listen port (DATASTORAGE_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (DATASTORAGE_WORKERS)")
    commands.add_parser("migrate", help="apply pending database migrations")
    partitions = commands.add_parser("partitions", help="audit_events partition maintenance")
    partitions.add_argument(
        "action", choices=["ensure"], help="create the partitions that should exist"
    )
    dlq = commands.add_parser("dlq", help="the Redis dead-letter queue")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    status = dlq_actions.add_parser("status", help="depth, capacity, oldest entry, dead letters")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    replay = dlq_actions.add_parser(
        "replay-dead-letters",
        help="move dead letters back into the queue (after fixing their cause) for replay",
    )
    replay.add_argument("--stream", choices=["events", "notifications", "all"], default="all")
    replay.add_argument("--limit", type=int, help="at most this many per stream")
    _workflows_parser(commands)
    return parser


def _workflows_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    catalog = commands.add_parser("workflows", help="the workflow catalog as YAML or JSON files")
    actions = catalog.add_subparsers(dest="action", required=True)
    load = actions.add_parser(
        "import",
        help="create the workflows of YAML/JSON files as POST /api/v1/workflows does; "
        "versions already stored with the same content are left unchanged",
    )
    load.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help=".yaml/.yml/.json: one workflow, a list, or a mapping with a `workflows` list",
    )
    dump = actions.add_parser("export", help="write the catalog in the shape import reads")
    dump.add_argument(
        "--format", choices=["yaml", "json"], help="default: by --output's extension, else yaml"
    )
    dump.add_argument(
        "--all-versions", action="store_true", help="every version, not only each name's latest"
    )
    dump.add_argument("--output", "-o", metavar="FILE", help="default: standard output")


def app_from_environment() -> Starlette:
    """The app built from environment settings (uvicorn's factory, also for several workers)."""
    from datastorage.app import create_app

    return create_app(load_settings(), handle_signals=True)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    host = args.host or settings.service.host
    port = args.port or settings.service.port
    workers = args.workers or settings.service.workers
    embedded: _Stoppable | None = None
    from datastorage.lifecycle import event_rules

    event_rules(settings)  # a broken event_data schema stops here with its file named
    if not settings.database.url:
        embedded = _start_embedded(settings)
    try:
        _print_banner(host, port, settings, embedded is not None)
        uvicorn.run(
            "datastorage.cli:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            # Nothing reads the client address (actor_ip comes from the event itself), so
            # rewriting it from X-Forwarded-For on every request would be work for nothing.
            proxy_headers=False,
            log_config=logging_config(
                settings.service.log_format,
                settings.service.log_level,
                production=settings.service.mode is Mode.PRODUCTION,
            ),
            timeout_graceful_shutdown=int(settings.shutdown.timeout_s),
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _start_embedded(settings: Settings) -> _Stoppable:
    """Start the embedded servers and point this process's settings at them."""
    from datastorage.embedded import EmbeddedError, start_embedded

    try:
        services = start_embedded(settings.service.data_dir)
    except EmbeddedError as exc:
        raise SettingsError(
            f"DATASTORAGE_DATABASE_URL: not set, and the embedded servers cannot start: {exc}"
        ) from exc
    os.environ["DATASTORAGE_DATABASE_URL"] = services.database_url
    if not settings.redis.url:
        os.environ["DATASTORAGE_REDIS_URL"] = services.redis_url
    print(f"embedded PostgreSQL and Redis running, data in {services.data_dir}")
    return services


def _print_banner(host: str, port: int, settings: Settings, embedded: bool) -> None:
    base = f"http://{host}:{port}"
    print(f"DataStorage on {base}{' (embedded PostgreSQL and Redis)' if embedded else ''}")
    if settings.graphiql_enabled:
        print(f"  GraphiQL:  {base}/graphql")
    print(f"  REST:      {base}/api/v1/audit/events")
    print(f"  Health:    {base}/health    Metrics: {base}/metrics")
    sys.stdout.flush()


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from datastorage.persistence.admin import run_migrations

    applied = asyncio.run(run_migrations(_database_url(settings)))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _partitions(settings: Settings, args: argparse.Namespace) -> int:
    from datastorage.persistence.admin import ensure_partitions_now

    created = asyncio.run(
        ensure_partitions_now(
            _database_url(settings),
            backfill_days=settings.audit.backfill_days,
            months_ahead=settings.audit.partitions_ahead,
        )
    )
    print(f"created {len(created)} partition(s)" + (": " + ", ".join(created) if created else ""))
    return 0


def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    from datastorage.persistence.dlq import DlqFull, DlqUnavailable

    if not settings.redis.url:
        raise SettingsError("DATASTORAGE_REDIS_URL: required for this command")
    try:
        if args.action == "status":
            return _dlq_status(settings.redis.url, settings.dlq.max_len, as_json=args.json)
        return _dlq_replay(settings.redis.url, settings.dlq.max_len, args.stream, args.limit)
    except DlqUnavailable as exc:
        print(f"datastorage: Redis does not answer ({exc})", file=sys.stderr)
        return 1
    except DlqFull as exc:
        print(f"datastorage: stopped, the queue is full: {exc}", file=sys.stderr)
        return 1


def _dlq_status(redis_url: str, capacity: int, *, as_json: bool) -> int:
    import json

    from datastorage.persistence.dlq_admin import dlq_report

    reports = asyncio.run(dlq_report(redis_url, capacity))
    rows = [
        {
            "stream": r.status.stream.queue,
            "depth": r.status.depth,
            "capacity": r.status.capacity,
            "capacity_ratio": round(r.status.ratio, 4),
            "oldest_age_seconds": round(r.status.oldest_age_s, 1),
            "unacknowledged": r.unacknowledged,
            "consumers": r.consumers,
            "dead_letter_stream": r.status.stream.dead,
            "dead_letters": r.status.dead_letters,
        }
        for r in reports
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'stream':<26}{'depth':>9}{'capacity':>10}{'used':>7}{'oldest':>10}"
          f"{'unacked':>9}{'consumers':>11}{'dead letters':>14}")  # fmt: skip
    for row in rows:
        print(
            f"{row['stream']:<26}{row['depth']:>9}{row['capacity']:>10}"
            f"{row['capacity_ratio']:>7.0%}{row['oldest_age_seconds']:>9.0f}s"
            f"{row['unacknowledged']:>9}{row['consumers']:>11}{row['dead_letters']:>14}"
        )
    return 0


def _dlq_replay(redis_url: str, capacity: int, which: str, limit: int | None) -> int:
    from datastorage.persistence.dlq import STREAMS, StreamPair
    from datastorage.persistence.dlq_admin import ReviveResult, revive_dead_letters

    streams = tuple(s for s in STREAMS if which in ("all", s.name))
    terminal = sys.stdout.isatty()

    def progress(stream: StreamPair, result: ReviveResult, total: int) -> None:
        line = f"{stream.dead}: {result.revived}/{total} moved back"
        if terminal:
            done = int(30 * result.revived / total) if total else 30
            print(f"\r{line} [{'#' * done}{'.' * (30 - done)}]", end="", flush=True)
        else:
            print(line, flush=True)

    results = asyncio.run(revive_dead_letters(redis_url, capacity, streams, limit, progress))
    if terminal:
        print()
    for stream in streams:
        result = results[stream.name]
        note = f", {result.skipped} undecodable left in place" if result.skipped else ""
        print(f"{stream.dead}: {result.revived} moved back to {stream.queue}{note}")
    print("the service's drainers replay them into PostgreSQL (datastorage dlq status)")
    return 0


def _workflows(settings: Settings, args: argparse.Namespace) -> int:
    from datastorage import cli_workflows

    _database_url(settings)  # checked before any file is read
    if args.action == "import":
        return cli_workflows.run_import(settings, args.files)
    return cli_workflows.run_export(settings, args.format, args.all_versions, args.output)


def _database_url(settings: Settings) -> str:
    if not settings.database.url:
        raise SettingsError("DATASTORAGE_DATABASE_URL: required for this command")
    return settings.database.url


if __name__ == "__main__":
    raise SystemExit(main())
