"""The `rezerv` command: up, down, migrate, token, env (and bench and loadtest, from loadtest/)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from engine.config import ConfigError, Settings, describe


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
    token = sub.add_parser("token", help="print an API token (needs REZERV_JWT_SECRET or a data dir)")
    token.add_argument("subject", help="customer id, or any name for an admin")
    token.add_argument("--admin", action="store_true", help="grant the admin role")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
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
        if args.command == "token":
            return _token(args.subject, args.admin, args.ttl)
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


def _token(subject: str, admin: bool, ttl: int) -> int:
    from api.auth import issue_token
    from stack.up import RunFiles

    settings = Settings.from_env()
    if not settings.jwt_secret:
        secret_file = RunFiles(settings.data_dir).secret_file
        if not secret_file.exists():
            print("rezerv token: set REZERV_JWT_SECRET or run `rezerv up` once to create one", file=sys.stderr)
            return 2
        settings = settings.replace(jwt_secret=secret_file.read_text().strip())
    roles = ("admin",) if admin else ("customer",)
    print(issue_token(settings, subject, roles, ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
