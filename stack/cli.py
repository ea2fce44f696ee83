"""The `rezerv` command: up, down, migrate, deploy, token, revoke, admin, env, clusters, projections,
top, trace, dashboard (and bench and loadtest, from loadtest/)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from engine.config import ConfigError, Settings, describe
from stack.arguments import COUNT_OR_0, SECONDS, SECONDS_ABOVE_0, number

MINUTES_ABOVE_0 = number(float, "a number of minutes above 0", 0.0, above=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rezerv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the whole system (embedded servers unless configured) and block")
    sub.add_parser("down", help="stop a `rezerv up` running on the same data directory")
    sub.add_parser("migrate", help="apply database migrations to REZERV_DATABASE_URL")
    sub.add_parser(
        "deploy",
        help="on a running cluster: migrations, Kafka topics and the background services on Ray",
    )
    sub.add_parser("env", help="list the REZERV_* settings with defaults")
    clusters = sub.add_parser(
        "clusters", help="PostgreSQL clusters placed outside data directories (as root), and those set aside"
    )
    clusters.add_argument("--remove-set-aside", action="store_true", help="delete the clusters set aside")
    token = sub.add_parser("token", help="print an API token (needs REZERV_JWT_SECRET or a data dir)")
    token.add_argument("subject", help="customer id, or any name for an admin")
    token.add_argument("--admin", action="store_true", help="grant the admin role")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (at most REZERV_TOKEN_MAX_TTL_S)")
    revoke = sub.add_parser("revoke", help="revoke an API token: every API worker refuses it within about a second")
    revoke.add_argument("token", help="the token itself, or its id (the `jti` claim)")
    revoke.add_argument("--reason", default="", help="kept with the revocation")
    from stack.projections_cli import add_parser as add_projections

    add_projections(sub)

    admin = sub.add_parser("admin", help="administrators: `rezerv admin create LOGIN` (never through the API)")
    admin.add_argument("action", choices=["create"])
    admin.add_argument("login", help="an email address or a username")
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input instead of a prompt"
    )
    top = sub.add_parser("top", help="live view: holds/s, confirmations/s, saga backlog and latency, errors")
    top.add_argument("--interval", type=SECONDS_ABOVE_0, default=1.0, help="seconds between refreshes")
    top.add_argument("--count", type=COUNT_OR_0, default=0, help="stop after this many refreshes (0: until Ctrl-C)")
    top.add_argument("--plain", action="store_true", help="print a block per refresh instead of redrawing")
    top.add_argument("--api", default="", help="the API's URL (default: REZERV_API_HOST and REZERV_API_PORT)")
    dashboard = sub.add_parser("dashboard", help="draw the Grafana dashboard's panels from a Prometheus as a PNG")
    dashboard.add_argument("action", choices=["render"])
    dashboard.add_argument(
        "--prometheus", default="", help="its URL (default: http://127.0.0.1:REZERV_PROMETHEUS_PORT)"
    )
    dashboard.add_argument("--minutes", type=MINUTES_ABOVE_0, default=15, help="the window, ending now (or at --end)")
    dashboard.add_argument("--end", type=SECONDS, default=0, help="the window's end, epoch seconds")
    dashboard.add_argument("--out", default="dashboard.png", help="the PNG to write")
    trace = sub.add_parser("trace", help="one booking's trace as a timeline (from REZERV_TRACE_DIR)")
    trace.add_argument("hold_id", help="the booking's hold id")
    bench = sub.add_parser("bench", help="benchmarks (see BENCHMARKS.md)")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    loadtest = sub.add_parser("loadtest", help="Locust through the REST API, lock-based baselines, the audit")
    loadtest.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            from stack.up import run_up

            return run_up()
        if args.command == "down":
            from stack.up import run_down

            return run_down()
        if args.command == "env":
            for name, default, doc in describe():
                print(f"{name:34} {default:24} {doc}")
            return 0
        if args.command == "clusters":
            return _clusters(args.remove_set_aside)
        if args.command == "migrate":
            from engine.adapters.pg_migrations import migrate_url

            settings = Settings.from_env()
            if not settings.database_url:
                print("rezerv migrate: set REZERV_DATABASE_URL", file=sys.stderr)
                return 2
            applied = asyncio.run(migrate_url(settings.database_url))
            print(f"applied {applied}" if applied else "nothing to apply")
            return 0
        if args.command == "deploy":
            from stack.services import deploy_all

            return deploy_all(Settings.from_env())
        if args.command == "top":
            from stack.top import run_top

            return run_top(args.interval, args.count, True if args.plain else None, args.api)
        if args.command == "dashboard":
            from pathlib import Path

            from stack.dashboard_render import render

            url = args.prometheus or f"http://127.0.0.1:{Settings.from_env().prometheus_port}"
            count = render(url, Path(args.out), args.minutes, args.end or None)
            print(f"{args.out}: {count} panels from {url}")
            return 0
        if args.command == "trace":
            from stack.trace_cli import run_trace

            return run_trace(args.hold_id)
        if args.command == "token":
            return _token(args.subject, args.admin, args.ttl)
        if args.command == "revoke":
            return _revoke(args.token, args.reason)
        if args.command == "projections":
            from stack.projections_cli import run as run_projections

            return run_projections(args)
        if args.command == "admin":
            from stack.admin_cli import create_admin

            return create_admin(args.login, args.password_stdin)
        if args.command == "bench":
            from loadtest.cli import main as bench_main

            return int(bench_main(args.rest))
        if args.command == "loadtest":
            from loadtest.http_cli import main as loadtest_main

            return int(loadtest_main(args.rest))
    except ConfigError as exc:
        print(f"rezerv {args.command}: bad configuration: {exc}", file=sys.stderr)
        return 2
    return 2


def _clusters(remove_set_aside: bool) -> int:
    """List the placed clusters (stack/pg_placement.py); with `remove_set_aside`, delete those set
    aside when a data directory was made again, which nothing ever uses again."""
    from stack import pg_placement

    found = pg_placement.placed_clusters()
    if not found:
        print("no placed clusters (as an ordinary user, or in a readable path, a cluster stays in its data directory)")
        return 0
    for cluster in found:
        print(f"{cluster.size_bytes / 2**20:9.1f} MB  {cluster.path}  {cluster.state}")
    set_aside = [c for c in found if c.set_aside_at]
    if remove_set_aside:
        removed = pg_placement.remove_set_aside(found)
        freed = sum(c.size_bytes for c in removed) / 2**20
        print(f"removed {len(removed)} set-aside clusters, {freed:.1f} MB")
        if len(removed) < len(set_aside):
            print(f"kept {len(set_aside) - len(removed)} that a PostgreSQL server runs on")
    elif set_aside:
        size = sum(c.size_bytes for c in set_aside) / 2**20
        print(f"{len(set_aside)} set aside ({size:.1f} MB): `rezerv clusters --remove-set-aside` deletes them")
    return 0


def _with_secret(settings: Settings) -> Settings | None:
    """`settings` with the JWT secret (REZERV_JWT_SECRET, or the data directory's); None if neither."""
    from stack.up import RunFiles

    if settings.jwt_secret:
        return settings
    secret_file = RunFiles(settings.data_dir).secret_file
    if not secret_file.exists():
        return None
    return settings.replace(jwt_secret=secret_file.read_text().strip())


def _token(subject: str, admin: bool, ttl: int) -> int:
    from api.auth import issue_token

    settings = _with_secret(Settings.from_env())
    if settings is None:
        print("rezerv token: set REZERV_JWT_SECRET or run `rezerv up` once to create one", file=sys.stderr)
        return 2
    if not 0 < ttl <= settings.token_max_ttl_s:
        print(
            f"rezerv token: --ttl must be from 1 to {settings.token_max_ttl_s:.0f} seconds "
            f"(REZERV_TOKEN_MAX_TTL_S), not {ttl}",
            file=sys.stderr,
        )
        return 2
    roles = ("admin",) if admin else ("customer",)
    print(issue_token(settings, subject, roles, ttl))
    return 0


def _revoke(token: str, reason: str) -> int:
    import time

    from engine.adapters.pg_pool import create_pool
    from engine.adapters.pg_revocations import PostgresRevocations
    from stack.up import embedded_database_url

    settings = Settings.from_env()
    url = embedded_database_url(settings)
    if not url:
        print("rezerv revoke: set REZERV_DATABASE_URL or run it where `rezerv up` keeps its data", file=sys.stderr)
        return 2
    token_id, expires_at_ms = token, time.time_ns() // 1_000_000 + int(settings.token_max_ttl_s * 1000)
    if token.count(".") == 2:  # a whole token: revoke its id until its own expiry
        import jwt

        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            token_id, expires_at_ms = str(claims["jti"]), int(claims["exp"]) * 1000
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
            print("rezerv revoke: that is not a token with an id (`jti`) and an expiry", file=sys.stderr)
            return 2

    async def revoke() -> bool:
        pool = await create_pool(url, 1)
        try:
            return await PostgresRevocations(pool).revoke(token_id, expires_at_ms, reason)
        finally:
            await pool.close()

    try:
        changed = asyncio.run(revoke())
    except Exception as exc:
        print(f"rezerv revoke: the database did not take the revocation ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    print(f"revoked token {token_id}" if changed else f"token {token_id} was revoked already")
    return 0


if __name__ == "__main__":
    sys.exit(main())
