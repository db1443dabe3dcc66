"""The ``bot-analytics`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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


def _parse_day(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date: {text!r} (use YYYY-MM-DD or an ISO timestamp)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _cmd_rollup(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .kpis.rollup import rollup_range
    from .storage import db

    settings = load_config(args.config)
    engine = db.create_db_engine(settings.database.url)
    m = settings.metrics
    first = args.from_
    last = args.to or datetime.now(UTC)
    if last <= first:
        print(f"bot-analytics: --to ({last.isoformat()}) must be after --from "
              f"({first.isoformat()})", file=sys.stderr)
        return 2
    written = rollup_range(
        engine, args.period, first, last,
        progress=lambda starts: tqdm(starts, unit="period", desc=f"{args.period} rollup",
                                     disable=None),
        session_timeout=timedelta(minutes=m.session_timeout_minutes),
        attribution_window=timedelta(hours=m.attribution_window_hours))
    print(f"wrote {written:,} KPI rows ({args.period}, {first.date()} to {last.date()})")
    engine.dispose()
    return 0


def _cmd_kpi(args: argparse.Namespace) -> int:
    import csv
    import json

    from .kpis.queries import format_change, format_value, latest_with_change
    from .storage import db

    settings = load_config(args.config)
    engine = db.create_db_engine(settings.database.url)
    rows = latest_with_change(engine, args.period, tenant_id=args.tenant, bot_id=args.bot)
    engine.dispose()
    if not rows:
        print(f"no {args.period} KPIs yet: run `bot-analytics rollup --period {args.period} "
              f"--from YYYY-MM-DD`", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0].as_dict()))
        writer.writeheader()
        writer.writerows(r.as_dict() for r in rows)
    else:
        print(render_table(rows, format_value, format_change))
    return 0


def _plain(text: str) -> str:
    """Telegram HTML as plain text for a terminal."""
    import html
    import re

    return html.unescape(re.sub(r"</?(b|i|u|s|code|pre)>", "", text))


def render_table(rows: Sequence[Any], fmt_value: Any, fmt_change: Any) -> str:
    lines: list[str] = []
    current = None

    def label(r: Any) -> str:
        return str(r.metric) + (f" [{r.dimension}]" if r.dimension else "")

    width = max([34, *(len(label(r)) for r in rows)])
    for r in rows:
        head = (r.tenant_id, r.bot_id, r.period_start)
        if head != current:
            current = head
            lines.append(f"\ntenant {r.tenant_id}, bot {r.bot_id}, period from "
                         f"{r.period_start:%Y-%m-%d %H:%M} UTC")
            lines.append(f"  {'metric':{width}} {'value':>14} {'n':>8}  change")
        lines.append(f"  {label(r):{width}} {fmt_value(r.metric, r.value):>14} "
                     f"{r.sample_size:>8,}  {fmt_change(r.change)}")
    return "\n".join(lines).lstrip("\n")


def _cmd_intents_train(args: argparse.Namespace) -> int:
    import time

    from .nlp.classifier import IntentClassifier
    from .nlp.data import load_examples

    settings = load_config(args.config)
    if args.embeddings:
        from .nlp import embeddings

        if not embeddings.available():
            print("error: --embeddings needs the optional embeddings extra: "
                  f"{embeddings.INSTALL_HINT}", file=sys.stderr)
            return 1
    texts, labels = load_examples(args.data)
    val = load_examples(args.val) if args.val else (None, None)
    unknown = settings.intents.unknown_label
    intents = sorted(set(labels) - {unknown})
    oos = sum(label == unknown for label in labels)
    print(f"training on {len(texts):,} examples of {len(intents)} intents"
          + (f" and {oos:,} out-of-scope examples" if oos else ""), flush=True)
    started = time.perf_counter()
    clf = IntentClassifier(unknown_label=unknown, threshold=args.threshold,
                           embeddings=args.embeddings).fit(texts, labels, *val)
    choice = clf.threshold_choice_
    assert choice is not None
    clf.save(args.out)
    print(f"trained in {time.perf_counter() - started:.1f} s"
          + (f" with {clf.embedding_model_} sentence vectors" if clf.embedding_model_ else "")
          + f"; saved to {args.out}")
    detail = ""
    if choice.method != "fixed":
        detail = f": in-scope accuracy {choice.in_scope_accuracy:.1%}"
        if choice.out_of_scope_recall is not None:
            detail += f", out-of-scope recall {choice.out_of_scope_recall:.1%}"
        detail += f" on {choice.examples:,} {choice.method} examples"
    print(f"out-of-scope threshold {choice.threshold:.3f} ({choice.method}{detail})")
    singles = [i for i, n in Counter(labels).items() if n == 1 and i != unknown]
    if singles:
        print(f"warning: {len(singles)} intents have a single example ({', '.join(singles[:5])}"
              f"{', ...' if len(singles) > 5 else ''}); give each a few dozen", file=sys.stderr)
    return 0


def _cmd_intents_eval(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from .nlp.classifier import IntentClassifier
    from .nlp.data import load_examples
    from .nlp.evaluate import evaluate

    clf = IntentClassifier.load(args.model)
    texts, labels = load_examples(args.data)
    report = evaluate(clf, texts, labels, unknown_label=clf.unknown_label)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
        return 0
    print(f"{len(texts):,} messages: {report.in_scope_count:,} in scope, "
          f"{report.out_of_scope_count:,} out of scope")
    print(f"in-scope accuracy     {report.in_scope_accuracy:.1%}")
    if report.out_of_scope_count:
        print(f"out-of-scope recall   {report.out_of_scope_recall:.1%}")
    print(f"\n  {'intent':28} {'precision':>9} {'recall':>7} {'F1':>6} {'n':>6}")
    for s in report.per_intent:
        print(f"  {s.intent[:28]:28} {s.precision:9.1%} {s.recall:7.1%} {s.f1:6.3f} "
              f"{s.support:6,}")
    if report.confusions:
        print("\nmost confused (true -> predicted):")
        for true, pred, n in report.confusions:
            print(f"  {n:5,}  {true} -> {pred}")
    return 0


def _cmd_intents_unknown(args: argparse.Namespace) -> int:
    import json

    from .nlp.unknown import format_report, unknown_report
    from .storage import db

    settings = load_config(args.config)
    engine = db.create_db_engine(settings.database.url)
    try:
        report = unknown_report(engine, args.period, tenant_id=args.tenant, bot_id=args.bot,
                                unknown_label=settings.intents.unknown_label,
                                max_clusters=args.clusters)
    finally:
        engine.dispose()
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) if args.json
          else format_report(report, args.period))
    return 0


def _migrated_engine(url: str, what: str) -> Any:
    """An engine on a database whose schema is current; else a ValueError saying to
    run the migrations."""
    from .storage import db

    engine = db.create_db_engine(url)
    current, head = db.current_revision(engine), db.head_revision()
    if current != head:
        engine.dispose()
        raise ValueError(f"the database schema is at revision {current or '(none)'}, "
                         f"{what} {head}: run `bot-analytics db upgrade`")
    return engine


def _ab_engine(args: argparse.Namespace) -> Any:
    return _migrated_engine(load_config(args.config).database.url, "experiments need")


def _cmd_ab_list(args: argparse.Namespace) -> int:
    from .experiments import store as exp_store
    from .experiments.analysis import analyze, format_list

    engine = _ab_engine(args)
    try:
        with engine.connect() as conn:
            defs = exp_store.load_definitions(conn, args.tenant)
        reports = [analyze(engine, e.name, tenant_id=e.tenant_id, bayes_draws=0)
                   for e in defs]
    finally:
        engine.dispose()
    print(format_list(reports))
    return 0


def _cmd_ab_show(args: argparse.Namespace) -> int:
    import json

    from .experiments.analysis import analyze, format_report
    from .experiments.store import ExperimentNotFound

    engine = _ab_engine(args)
    try:
        report = analyze(engine, args.name, tenant_id=args.tenant)
    except ExperimentNotFound as exc:
        print(f"bot-analytics: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report))
    return 0


def _cmd_ab_create(args: argparse.Namespace) -> int:
    from .config import parse_settings
    from .experiments import ExperimentDef
    from .experiments import store as exp_store

    variants: list[dict[str, Any]] = []
    for spec in args.variant:
        name, _, weight = spec.partition(":")
        try:
            variants.append({"name": name, "weight": float(weight) if weight else 1.0})
        except ValueError:
            raise ValueError(f"--variant {spec!r}: the weight after ':' must be a number"
                             ) from None
    for spec in args.payload or []:
        name, sep, text = spec.partition("=")
        match = [v for v in variants if v["name"] == name]
        if not sep or not match:
            raise ValueError(f"--payload {spec!r}: use VARIANT=TEXT with a variant given "
                             "by --variant")
        match[0]["payload"] = text
    data: dict[str, Any] = {"variants": variants, "metric": args.metric,
                            "min_detectable_effect": args.mde, "traffic": args.traffic,
                            "alpha": args.alpha, "power": args.power,
                            "correction": args.correction}
    for key in ("control", "start", "stop", "salt"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.secondary:
        data["secondary_metrics"] = args.secondary
    settings = load_config(args.config)
    exp_settings = parse_settings({"experiments": {args.name: data}}, "ab create"
                                  ).experiments[args.name]
    tenant = args.tenant or settings.tenants.default
    engine = _ab_engine(args)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            test_id = exp_store.save_definition(
                conn, ExperimentDef(tenant, args.name, exp_settings, "cli"), now,
                replace=False)
    finally:
        engine.dispose()
    print(f"created experiment {args.name} (id {test_id}, tenant {tenant}); running bots "
          "serve it within a minute")
    return 0


def _cmd_ab_stop(args: argparse.Namespace) -> int:
    from .experiments import store as exp_store
    from .experiments.store import ExperimentNotFound

    engine = _ab_engine(args)
    try:
        with engine.begin() as conn:
            test_id, exp = exp_store.find(conn, args.name, args.tenant)
            names = [v.name for v in exp.settings.variants]
            if args.winner is not None and args.winner not in names:
                raise ValueError(f"--winner {args.winner!r} is not a variant of {args.name} "
                                 f"({', '.join(names)})")
            if exp.stopped_at is not None:
                raise ValueError(f"{args.name} was stopped on {exp.stopped_at:%Y-%m-%d %H:%M}"
                                 f" UTC, serving '{exp.served_after_stop()}'")
            exp_store.stop(conn, test_id, args.winner, datetime.now(UTC))
    except ExperimentNotFound as exc:
        print(f"bot-analytics: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    served = args.winner or exp.settings.winner or exp.control
    print(f"stopped {args.name}; everyone gets '{served}' (running bots within a minute)")
    return 0


def _cmd_optimize(args: argparse.Namespace) -> int:
    import time

    from .optimize import format_report, optimize

    settings = load_config(args.config)
    engine = _migrated_engine(settings.database.url, "the optimizer needs")
    now = datetime.now(UTC)
    end = args.to or now
    start = args.from_ or end - timedelta(days=args.days or settings.optimizer.days)
    if end <= start:
        raise ValueError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    tenant = args.tenant or settings.tenants.default
    t0 = time.perf_counter()

    def progress(step: str) -> None:
        print(f"[{time.perf_counter() - t0:5.1f} s] {step}...", file=sys.stderr, flush=True)

    try:
        report, run_id = optimize(engine, settings, tenant, start=start, end=end,
                                  bot_id=args.bot, source="cli", store=not args.no_store,
                                  now=now, progress=None if args.quiet else progress)
    finally:
        engine.dispose()
    if args.json:
        print(report.to_json(indent=2))
    else:
        print(format_report(report))
        if run_id is not None:
            print(f"\nstored as optimization run {run_id}; the members' segments are "
                  "updated")
    return 0 if report.error is None else 1


def _cmd_purge(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .retention import purge
    from .storage import db

    settings = load_config(args.config)
    days = args.days if args.days is not None else settings.retention.days
    if days is None:
        print("retention.days is null in the configuration: nothing is purged (pass --days "
              "to purge anyway)", file=sys.stderr)
        return 0
    engine = db.create_db_engine(settings.database.url)
    bar = tqdm(unit="row", desc="purging", disable=None)
    try:
        deleted = purge(engine, days, datetime.now(UTC), batch_size=settings.retention.batch_size,
                        dry_run=args.dry_run, progress=lambda _table, n: bar.update(n))
    finally:
        bar.close()
        engine.dispose()
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} rows older than {days:g} days: "
          + ", ".join(f"{table} {n:,}" for table, n in deleted.items())
          + "; kpi_metrics, conversions and optimizer runs are kept")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .reports.assemble import build_report
    from .reports.render import to_markdown, write

    settings = load_config(args.config)
    engine = _migrated_engine(settings.database.url, "reports need")
    sections = [x.strip() for x in args.sections.split(",")] if args.sections else None
    known = {"summary", "anomalies", "experiments", "recommendations", "unknown"}
    if sections and set(sections) - known:
        raise ValueError(f"--sections: unknown {', '.join(sorted(set(sections) - known))}; "
                         f"use {', '.join(sorted(known))}")
    try:
        report = build_report(engine, settings, args.tenant or settings.tenants.default,
                              args.period, bot_id=args.bot, start=args.start,
                              sections=sections, charts=args.out is not None)
    finally:
        engine.dispose()
    if args.out is None:
        print(to_markdown(report), end="")
        return 0
    files = write(report, Path(args.out), args.format)
    print(f"wrote {report.title} to {', '.join(str(f) for f in files)}")
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
        from .kpis.queries import format_change, format_value, latest_with_change
        from .storage import db

        engine = db.create_db_engine(result.database_url)
        print()
        print("KPIs of the last whole simulated week, with the change against the week "
              "before (kpi_metrics; `bot-analytics kpi` prints the same):")
        print(render_table(latest_with_change(engine, "weekly"), format_value,
                           format_change))
        from .experiments.analysis import analyze, format_report

        print()
        print("The premium_pitch experiment over the simulated month (`bot-analytics ab show "
              "premium_pitch` prints the same; the simulation made save20 sell "
              "more):")
        print(format_report(analyze(engine, "premium_pitch", now=result.last)))
        from .optimize import format_report as format_findings
        from .optimize import latest_run

        run = latest_run(engine, "default")
        engine.dispose()
        if run is not None:
            print()
            print("The optimizer over the simulated month (`bot-analytics optimize` prints "
                  "the same; the simulation planted pricing, spring_promo and 'late'):")
            print(format_findings(run.result))
        finale = result.finale
        if finale is not None:
            print()
            print(f"The weekly report was posted to the team channel "
                  f"({', '.join(f'{k} {v}' for k, v in finale.report_outcome.items() if v)})"
                  f": {len(finale.channel_messages)} message(s) and "
                  f"{len(finale.chart_files)} charts, saved as "
                  f"{', '.join(str(p) for p in finale.chart_files)}. The message:")
            print(_plain(finale.channel_messages[0]) if finale.channel_messages else "")
            print()
            print("The shop's operator asks the bot (admin commands, answered only to the "
                  "admins in config.yaml):")
            for command, answers in finale.admin_session:
                print(f"\n> {command}")
                for answer in answers:
                    print(_plain(answer))
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

    p = sub.add_parser("rollup", help="compute KPIs for past periods (backfill)")
    p.add_argument("--period", default="daily",
                   help="hourly, daily, weekly or monthly (default daily)")
    p.add_argument("--from", dest="from_", type=_parse_day, required=True,
                   help="first day (YYYY-MM-DD, UTC)")
    p.add_argument("--to", type=_parse_day, default=None,
                   help="end, exclusive (default: now)")
    p.set_defaults(func=_cmd_rollup)

    p = sub.add_parser("kpi", help="latest KPIs with the change against the period before")
    p.add_argument("--period", default="weekly",
                   help="hourly, daily, weekly or monthly (default weekly)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--tenant", default=None)
    p.add_argument("--bot", type=int, default=None)
    p.set_defaults(func=_cmd_kpi)

    p = sub.add_parser("intents", help="train and evaluate intent models; unknown messages")
    isub = p.add_subparsers(dest="intents_command", required=True, metavar="ACTION")
    q = isub.add_parser("train", help="train a model from a .csv, .jsonl or .yaml file")
    q.add_argument("data", help="labelled examples (text,intent)")
    q.add_argument("--val", default=None,
                   help="validation examples for choosing the out-of-scope threshold")
    q.add_argument("--out", default="intents.model", help="model file to write")
    q.add_argument("--threshold", type=float, default=None,
                   help="fix the out-of-scope threshold instead of choosing it")
    q.add_argument("--embeddings", action="store_true",
                   help="add sentence vectors to the features (the optional embeddings "
                        "extra): better on wordings the examples do not have, about 2 ms "
                        "a message instead of 15 us")
    q.set_defaults(func=_cmd_intents_train)
    q = isub.add_parser("eval", help="score a model on labelled examples")
    q.add_argument("data", help="labelled examples (text,intent)")
    q.add_argument("--model", required=True, help="model file from `intents train`")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_cmd_intents_eval)
    q = isub.add_parser("unknown", help="cluster the messages the bot did not understand")
    q.add_argument("--period", default="week", choices=["day", "week", "month", "quarter"])
    q.add_argument("--clusters", type=int, default=12, help="at most this many clusters")
    q.add_argument("--tenant", default=None)
    q.add_argument("--bot", type=int, default=None)
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_cmd_intents_unknown)

    p = sub.add_parser("ab", help="A/B experiments: list, show, create, stop")
    asub = p.add_subparsers(dest="ab_command", required=True, metavar="ACTION")
    q = asub.add_parser("list", help="every experiment with its state and decision")
    q.add_argument("--tenant", default=None)
    q.set_defaults(func=_cmd_ab_list)
    q = asub.add_parser("show", help="the full analysis of one experiment")
    q.add_argument("name")
    q.add_argument("--tenant", default=None)
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_cmd_ab_show)
    q = asub.add_parser("create", help="define and start an experiment")
    q.add_argument("name")
    q.add_argument("--variant", action="append", required=True, metavar="NAME[:WEIGHT]",
                   help="a variant (repeat; the first is the control unless --control)")
    q.add_argument("--payload", action="append", metavar="VARIANT=TEXT",
                   help="a variant's text template")
    q.add_argument("--control", default=None)
    q.add_argument("--metric", default="conversion",
                   help="conversion, revenue_per_member, resolved or visited")
    q.add_argument("--secondary", action="append", metavar="METRIC")
    q.add_argument("--mde", type=float, default=0.1,
                   help="minimum detectable effect, relative (default 0.1: +10%%)")
    q.add_argument("--traffic", type=float, default=1.0,
                   help="share of members in the experiment (default 1)")
    q.add_argument("--alpha", type=float, default=0.05)
    q.add_argument("--power", type=float, default=0.8)
    q.add_argument("--correction", choices=["holm", "bh"], default="holm",
                   help="across several variants: Holm or Benjamini-Hochberg")
    q.add_argument("--start", default=None, help="ISO time (default: now)")
    q.add_argument("--stop", default=None, help="ISO time (default: until `ab stop`)")
    q.add_argument("--salt", default=None)
    q.add_argument("--tenant", default=None)
    q.set_defaults(func=_cmd_ab_create)
    q = asub.add_parser("stop", help="stop an experiment and serve one variant to everyone")
    q.add_argument("name")
    q.add_argument("--winner", default=None, help="variant to serve (default: the control)")
    q.add_argument("--tenant", default=None)
    q.set_defaults(func=_cmd_ab_stop)

    p = sub.add_parser("optimize", help="what sells, segments, de-escalation, advice")
    p.add_argument("--tenant", default=None, help="default: tenants.default")
    p.add_argument("--bot", type=int, default=None, help="only this bot (default: all)")
    p.add_argument("--days", type=float, default=None,
                   help="analyse the last N days (default optimizer.days, 30)")
    p.add_argument("--from", dest="from_", type=_parse_day, default=None,
                   help="first day (YYYY-MM-DD, UTC) instead of --days")
    p.add_argument("--to", type=_parse_day, default=None, help="end, exclusive (default: now)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--no-store", action="store_true",
                   help="do not store the run nor update the members' segments")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_optimize)

    p = sub.add_parser("purge", help="delete raw rows older than retention.days")
    p.add_argument("--days", type=float, default=None,
                   help="instead of retention.days from the configuration")
    p.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    p.set_defaults(func=_cmd_purge)

    p = sub.add_parser("report", help="the report of a whole period, as a file")
    p.add_argument("--period", default="week", choices=["day", "week", "month"])
    p.add_argument("--start", type=_parse_day, default=None,
                   help="a day in the period (default: the last whole period)")
    p.add_argument("--tenant", default=None)
    p.add_argument("--bot", type=int, default=None,
                   help="default: the tenant's busiest bot in the period")
    p.add_argument("--sections", default=None,
                   help="comma-separated: summary, anomalies, experiments, recommendations, "
                        "unknown (default: all)")
    p.add_argument("--out", default=None,
                   help="file to write: .html (charts inside), .md (charts beside), .json; "
                        "default: Markdown without charts on standard output")
    p.add_argument("--format", choices=["html", "md", "json"], default=None,
                   help="instead of the file's extension")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="run the example bot against the offline Telegram")
    p.add_argument("--users", type=int, default=600)
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
    except ValueError as exc:
        print(f"bot-analytics: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:      # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
