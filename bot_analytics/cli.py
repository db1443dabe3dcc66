"""The ``bot-analytics`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from .config import ConfigError, load_config


def _cmd_db(args: argparse.Namespace) -> int:
    from .storage import db

    settings = load_config(args.config)
    engine = db.create_db_engine(settings.database.url)
    if args.action == "upgrade":
        db.upgrade(engine, args.revision)
        print(f"database at revision {db.current_revision(engine)} "
              f"({engine.url.render_as_string(hide_password=True)})")
    else:
        current, head = db.current_revision(engine), db.head_revision()
        state = "up to date" if current == head else f"behind: head is {head}"
        print(f"database at revision {current or '(none)'}, {state}")
    engine.dispose()
    return 0


def _cmd_forget(args: argparse.Namespace) -> int:
    from .plugin import Analytics

    settings = load_config(args.config)
    analytics = Analytics(settings)

    async def run() -> dict[str, int]:
        try:
            return await analytics.forget(args.member_id, tenant_id=args.tenant)
        finally:
            await analytics.close()

    deleted = asyncio.run(run())
    total = sum(deleted.values())
    detail = ", ".join(f"{table} {n}" for table, n in deleted.items() if n)
    print(f"deleted {total} rows of member {args.member_id}" + (f" ({detail})" if detail else ""))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo, summarize

    async def run() -> int:
        result = await run_demo(users=args.users, days=args.days, seed=args.seed,
                                workdir=args.workdir, database_url=args.database_url,
                                progress=not args.quiet)
        await result.analytics.close()
        health = result.analytics.health()
        print(f"Simulated {result.users} people over {args.days} days: {result.updates:,} "
              f"updates through the offline Telegram in {result.seconds:.1f} s.")
        print(f"Database: {result.database_url}")
        print(f"Pipeline: {health['written']:,} events written, {health['dropped']} dropped, "
              f"{health['spooled']} spooled, {health['skipped']} skipped, "
              f"{health['capture_failures'] + health['enrichment_failures']} failures.")
        print()
        print(summarize(result.database_url))
        return 0

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bot-analytics",
        description="Self-hosted analytics for aiogram bots.")
    parser.add_argument("-c", "--config", default=None,
                        help="config file (default: ./config.yaml if present, else defaults)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("db", help="database schema: upgrade, current")
    p.add_argument("action", choices=["upgrade", "current"])
    p.add_argument("--revision", default="head", help="target revision (upgrade)")
    p.set_defaults(func=_cmd_db)

    p = sub.add_parser("forget", help="erase a member's rows from every table")
    p.add_argument("member_id", type=int, help="the member's Telegram user id")
    p.add_argument("--tenant", default=None, help="only this tenant (default: all)")
    p.set_defaults(func=_cmd_forget)

    p = sub.add_parser("demo", help="run the example bot against the offline Telegram")
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workdir", default="bot_analytics_demo",
                   help="folder for the demo database (recreated on each run)")
    p.add_argument("--database-url", default=None,
                   help="record into this database instead (e.g. PostgreSQL)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("aiogram").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"bot-analytics: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
