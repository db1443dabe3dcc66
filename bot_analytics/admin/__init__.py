"""Admin commands in the chat: numbers, experiments and health for the bot's operators.

The commands live on an aiogram ``Router`` of their own that the capture middleware
asks first, before the bot's handlers, for messages that start with ``/``. Its filter
admits only the configured admins in a private chat (or in groups, if enabled); for
anyone else no command matches, the update goes on to the bot's own handlers as if the
plugin were not there, and nothing is answered. Admin commands are not recorded as
interactions of the bot's conversation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiogram import Router
from aiogram.filters import BaseFilter, Command, CommandObject
from aiogram.types import BufferedInputFile, Message

from .text import CAPTION_LIMIT, change_arrow, esc, split_message, table

if TYPE_CHECKING:
    from ..capture.context import UpdateContext
    from ..plugin import Analytics

log = logging.getLogger("bot_analytics.admin")

PERIODS = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly"}
#: Rolling windows of /intents, /unknown and /export, in days back from now.
WINDOWS = {"day": 1, "week": 7, "month": 30, "quarter": 91}
#: Telegram's limit for a document a bot uploads.
UPLOAD_LIMIT = 50 * 1024 * 1024
FAMILIES = {"cx": "customer_experience", "ops": "operational_efficiency",
            "engagement": "engagement", "revenue": "monetization"}
#: /stats: the headline figures, in this order.
HEADLINE = ("interactions", "active_users", "sessions", "conversion_rate", "revenue",
            "csat_avg", "sentiment_positive_rate", "sentiment_negative_rate",
            "response_time_p95_ms")


class IsAdmin(BaseFilter):
    """A configured admin, in a private chat (or a group, when allowed)."""

    def __init__(self, admins: list[int], groups: bool):
        self.admins = frozenset(admins)
        self.chat_types = {"private", "group", "supergroup"} if groups else {"private"}

    async def __call__(self, message: Message) -> bool:
        user = message.from_user
        return (user is not None and not user.is_bot and user.id in self.admins
                and message.chat.type in self.chat_types
                and message.sender_chat is None)  # not posted on behalf of a chat


async def reply(message: Message, text: str) -> None:
    for piece in split_message(text):
        await message.answer(piece, parse_mode="HTML")


def _period(command: CommandObject | None, default: str = "week",
            allowed: Iterable[str] = ("day", "week", "month")) -> str:
    word = (command.args or "").split()[0].lower() if command and command.args else default
    allowed = list(allowed)
    if word not in allowed:
        raise ValueError(f"unknown period {word!r}: use {', '.join(allowed)}")
    return PERIODS[word]


def _window(word: str | None, default: str = "week") -> tuple[str, int]:
    word = (word or default).lower()
    if word not in WINDOWS:
        raise ValueError(f"unknown period {word!r}: use {', '.join(WINDOWS)}")
    return word, WINDOWS[word]


def build_router(plugin: Analytics) -> Router:
    from ..kpis.queries import format_value, latest_with_change

    cfg = plugin.settings.admin
    router = Router(name="bot-analytics admin")
    router.message.filter(IsAdmin(cfg.admins, cfg.groups))
    p = cfg.prefix

    def ctx_of(data: UpdateContext) -> tuple[str, int]:
        return data.tenant_id, data.bot_id

    @router.message(Command(f"{p}help"))
    async def help_(message: Message) -> None:
        await reply(message, "\n".join([
            "<b>bot-analytics</b>",
            f"/{p}stats [day|week|month|quarter] - the headline figures and their change",
            f"/{p}kpi cx|ops|engagement|revenue [day|week|month] - one KPI family",
            f"/{p}intents [day|week|month|quarter] - top intents by volume and by conversion",
            f"/{p}unknown [day|week|month|quarter] - what the bot did not understand",
            f"/{p}ab [list | show NAME | stop NAME [WINNER]] - experiments",
            f"/{p}segments - the members' segments and who buys",
            f"/{p}recommendations - what to change first",
            f"/{p}report [day|week|month] - the full report of the last whole period",
            f"/{p}export interactions|kpis [day|week|month|quarter] [csv|jsonl] - a file",
            f"/{p}health - the capture pipeline, sentiment, the database and the jobs",
        ]))

    async def kpis(analytics: UpdateContext, kind: str) -> list[Any]:
        tenant, bot = ctx_of(analytics)
        return await asyncio.to_thread(latest_with_change, plugin.engine, kind,
                                       tenant_id=tenant, bot_id=bot)

    @router.message(Command(f"{p}stats"))
    async def stats(message: Message, command: CommandObject,
                    analytics: UpdateContext) -> None:
        kind = _period(command, allowed=PERIODS)
        if kind == "quarterly":
            await reply(message, await asyncio.to_thread(_quarter_stats, plugin,
                                                         *ctx_of(analytics)))
            return
        rows = {r.metric: r for r in await kpis(analytics, kind) if r.dimension is None}
        if not rows:
            await reply(message, f"No {kind} KPIs yet: they appear after the first "
                                 f"{kind} rollup.")
            return
        start = next(iter(rows.values())).period_start
        lines = [(m.replace("_", " "), format_value(m, rows[m].value),
                  change_arrow(rows[m].change)) for m in HEADLINE if m in rows]
        await reply(message, f"<b>{esc(kind.capitalize())} from {start:%Y-%m-%d}</b> "
                             "(change against the period before)\n" + table(lines))
        days, series = await asyncio.to_thread(_daily_series, plugin, *ctx_of(analytics),
                                               start, kind)
        if len(days) > 1:
            from .charts import daily_chart

            png = await asyncio.to_thread(daily_chart, "Interactions and purchases by day",
                                          days, series)
            await message.answer_photo(BufferedInputFile(png, "daily.png"))

    @router.message(Command(f"{p}kpi"))
    async def kpi(message: Message, command: CommandObject,
                  analytics: UpdateContext) -> None:
        words = (command.args or "").split()
        if not words or words[0].lower() not in FAMILIES:
            await reply(message, f"Usage: /{p}kpi {'|'.join(FAMILIES)} [day|week|month]")
            return
        family = FAMILIES[words[0].lower()]
        kind = _period(CommandObject(args=" ".join(words[1:]) or None))
        rows = [r for r in await kpis(analytics, kind) if r.category == family]
        if not rows:
            await reply(message, f"No {kind} {esc(family)} KPIs yet.")
            return
        lines = [(r.metric + (f" [{r.dimension}]" if r.dimension else ""),
                  format_value(r.metric, r.value), change_arrow(r.change)) for r in rows]
        await reply(message, f"<b>{esc(family)}</b>, {kind} from "
                             f"{rows[0].period_start:%Y-%m-%d}\n" + table(lines))

    @router.message(Command(f"{p}ab"))
    async def ab(message: Message, command: CommandObject, analytics: UpdateContext) -> None:
        words = (command.args or "list").split()
        action = words[0].lower()
        tenant = analytics.tenant_id
        if action == "list":
            await reply(message, await asyncio.to_thread(_ab_list, plugin, tenant))
        elif action == "show" and len(words) == 2:
            text, png = await asyncio.to_thread(_ab_show, plugin, tenant, words[1])
            await reply(message, text)
            if png is not None:
                await message.answer_photo(BufferedInputFile(png, f"{words[1]}.png"),
                                           caption=esc(words[1])[:CAPTION_LIMIT])
        elif action == "stop" and len(words) in (2, 3):
            winner = words[2] if len(words) == 3 else None
            await reply(message, await asyncio.to_thread(_ab_stop, plugin, tenant,
                                                         words[1], winner))
        else:
            await reply(message, f"Usage: /{p}ab [list | show NAME | stop NAME [WINNER]]")

    @router.message(Command(f"{p}intents"))
    async def intents(message: Message, command: CommandObject,
                      analytics: UpdateContext) -> None:
        word, days = _window(command.args.split()[0] if command.args else None)
        text, png = await asyncio.to_thread(_intents, plugin, *ctx_of(analytics), word, days)
        await reply(message, text)
        if png is not None:
            await message.answer_photo(BufferedInputFile(png, "intents.png"),
                                       caption=f"Sessions that bought, by intent (last {word})")

    @router.message(Command(f"{p}unknown"))
    async def unknown(message: Message, command: CommandObject,
                      analytics: UpdateContext) -> None:
        from ..nlp.unknown import format_report, unknown_report

        word, _ = _window(command.args.split()[0] if command.args else None)
        tenant, bot = ctx_of(analytics)
        report = await asyncio.to_thread(
            unknown_report, plugin.engine, word, plugin.clock(), tenant_id=tenant,
            bot_id=bot, unknown_label=plugin.settings.intents.unknown_label, max_clusters=8)
        await reply(message, f"<pre>{esc(format_report(report, word))}</pre>")

    @router.message(Command(f"{p}segments"))
    async def segments(message: Message, analytics: UpdateContext) -> None:
        await reply(message, await asyncio.to_thread(_segments, plugin, analytics.tenant_id))

    @router.message(Command(f"{p}recommendations"))
    async def recommendations(message: Message, analytics: UpdateContext) -> None:
        await reply(message, await asyncio.to_thread(_recommendations, plugin,
                                                     analytics.tenant_id))

    @router.message(Command(f"{p}report"))
    async def report(message: Message, command: CommandObject,
                     analytics: UpdateContext) -> None:
        from ..reports.assemble import build_report
        from ..reports.deliver import send_piece
        from ..reports.render import telegram_pieces

        word = (command.args or "week").split()[0].lower()
        if word not in ("day", "week", "month"):
            raise ValueError(f"unknown period {word!r}: use day, week, month")
        tenant, bot = ctx_of(analytics)
        built = await asyncio.to_thread(build_report, plugin.engine, plugin.settings, tenant,
                                        word, bot_id=bot, now=plugin.clock())
        for piece in telegram_pieces(built):
            await send_piece(message.bot, message.chat.id, piece)

    @router.message(Command(f"{p}export"))
    async def export(message: Message, command: CommandObject,
                     analytics: UpdateContext) -> None:
        from aiogram.types import FSInputFile

        words = (command.args or "").lower().split()
        if not words or words[0] not in ("interactions", "kpis"):
            await reply(message, f"Usage: /{p}export interactions|kpis "
                                 "[day|week|month|quarter] [csv|jsonl]")
            return
        fmt = next((w for w in words[1:] if w in ("csv", "jsonl")), "csv")
        word, days = _window(next((w for w in words[1:] if w not in ("csv", "jsonl")), None))
        path, rows_written = await asyncio.to_thread(
            _export, plugin, *ctx_of(analytics), words[0], days, fmt)
        try:
            size = path.stat().st_size
            if size > UPLOAD_LIMIT:
                await reply(message, f"The export has {rows_written:,} rows "
                                     f"({size / 1e6:,.0f} MB), over Telegram's 50 MB: use a "
                                     "shorter period or SQL on the database.")
                return
            await message.answer_document(
                FSInputFile(path, f"{words[0]}-{word}.{fmt}"),
                caption=f"{rows_written:,} rows of {words[0]}, last {word}")
        finally:
            path.unlink(missing_ok=True)

    @router.message(Command(f"{p}health"))
    async def health(message: Message) -> None:
        h = plugin.health()
        jobs = h.get("jobs", {})
        lines = [(key.replace("_", " "), f"{h[key]:,}" if isinstance(h[key], int) else
                  esc(h[key]), "") for key in ("queued", "written", "dropped", "spooled",
                                               "rejected", "retried", "capture_failures",
                                               "enrichment_failures", "spool_pending")
                 if key in h]
        text = "<b>Capture pipeline</b>\n" + table(lines)
        text += f"\n<b>Jobs</b>: {jobs.get('runs', 0)} runs, {jobs.get('failures', 0)} failed"
        if jobs.get("last_error"):
            text += f"\nlast error: <code>{esc(jobs['last_error'])}</code>"
        for name, when in sorted((jobs.get("next_runs") or {}).items()):
            text += f"\nnext {esc(name)}: {when:%Y-%m-%d %H:%M} UTC" if when else ""
        text += f"\n<b>Sentiment</b>: {_sentiment_state(plugin, h.get('sentiment_helper'))}"
        surveys = plugin.surveys.counters
        text += (f"\n<b>CSAT survey</b>: {surveys['asked']} asked, {surveys['answered']} "
                 f"answered")
        if h.get("last_error"):
            text += f"\n<b>last capture error</b>: <code>{esc(h['last_error'])}</code>"
        latency = await asyncio.to_thread(_database_latency, plugin)
        text += f"\n<b>Database</b>: {esc(latency)}"
        d = h.get("deliveries", {})
        text += (f"\n<b>Reports and alerts</b>: {d.get('sent', 0)} sent, "
                 f"{d.get('failed', 0)} failed, {d.get('forbidden', 0)} refused, "
                 f"{d.get('flood_waits', 0)} flood waits")
        for chat, error in sorted((d.get("errors") or {}).items()):
            text += f"\nchat {chat}: <code>{esc(error)}</code>"
        await reply(message, text)

    return router


def _sentiment_state(plugin: Analytics, helper: dict[str, Any] | None) -> str:
    """Where sentiment is scored, for /health."""
    if not plugin.enricher.scores_sentiment:
        return "off"
    if helper is None:
        return "scored in the writer's thread"
    if helper["given_up"]:
        return (f"scored in the writer's thread; the helper process was given up after "
                f"{helper['failures']} failures")
    return (f"helper process {'running' if helper['running'] else 'not running'}, "
            f"started {helper['started']} time{'' if helper['started'] == 1 else 's'}, "
            f"{helper['failures']} failures")


def _daily_series(plugin: Analytics, tenant: str, bot: int, start: datetime, kind: str
                  ) -> tuple[list[Any], dict[str, list[float]]]:
    """Daily interactions and purchases over the period, from the daily KPI rows."""
    import sqlalchemy as sa

    from ..kpis.periods import period_end
    from ..kpis.rollup import KPI_METRICS

    if kind == "daily":
        start = start - timedelta(days=13)   # a day alone is no chart: two weeks
    end = period_end(start, kind) if kind != "daily" else start + timedelta(days=14)
    k = KPI_METRICS.c
    with plugin.engine.connect() as conn:
        rows = conn.execute(sa.select(k.period_start, k.metric_type, k.metric_value).where(
            k.tenant_id == tenant, k.bot_id == bot, k.aggregation_period == "daily",
            k.dimension.is_(None), k.metric_type.in_(("interactions", "conversions")),
            k.period_start >= start, k.period_start < end)).all()
    days = sorted({r.period_start.date() for r in rows})
    values = {(r.period_start.date(), r.metric_type): r.metric_value for r in rows}
    return days, {"interactions": [values.get((d, "interactions"), 0.0) for d in days],
                  "purchases": [values.get((d, "conversions"), 0.0) for d in days]}


def _ab_list(plugin: Analytics, tenant: str) -> str:
    from ..experiments import store as exp_store
    from ..experiments.analysis import analyze

    with plugin.engine.connect() as conn:
        defs = exp_store.load_definitions(conn, tenant)
    if not defs:
        return "No experiments yet."
    lines = ["<b>Experiments</b>"]
    for exp in defs:
        r = analyze(plugin.engine, exp.name, tenant_id=tenant, now=plugin.clock(),
                    bayes_draws=0)
        members = sum(v.assigned or v.members for v in r.primary.variants)
        decision = r.decision + (f" ({r.winner})" if r.winner else "")
        lines.append(f"• <b>{esc(r.name)}</b>: {esc(r.status)}, {members:,} members, "
                     f"{esc(decision)}")
    return "\n".join(lines)


def _ab_show(plugin: Analytics, tenant: str, name: str) -> tuple[str, bytes | None]:
    from ..experiments.analysis import analyze, format_report
    from ..experiments.store import ExperimentNotFound
    from .charts import experiment_chart

    try:
        r = analyze(plugin.engine, name, tenant_id=tenant, now=plugin.clock())
    except ExperimentNotFound as exc:
        return esc(exc), None
    text = f"<b>{esc(r.name)}</b>\n<pre>{esc(format_report(r))}</pre>"
    png = experiment_chart(r.name, r.daily, r.primary.control) if r.daily else None
    return text, png


def _ab_stop(plugin: Analytics, tenant: str, name: str, winner: str | None) -> str:
    from ..experiments import store as exp_store
    from ..experiments.store import ExperimentNotFound

    try:
        with plugin.engine.begin() as conn:
            test_id, exp = exp_store.find(conn, name, tenant)
            names = [v.name for v in exp.settings.variants]
            if winner is not None and winner not in names:
                return f"{esc(winner)} is not a variant of {esc(name)} ({esc(', '.join(names))})"
            if exp.stopped_at is not None:
                return f"{esc(name)} was stopped on {exp.stopped_at:%Y-%m-%d %H:%M} UTC."
            exp_store.stop(conn, test_id, winner, plugin.clock())
    except ExperimentNotFound as exc:
        return esc(exc)
    plugin._next_experiment_refresh = 0.0   # serve the winner from the next variant() call
    served = winner or exp.settings.winner or exp.control
    return f"Stopped <b>{esc(name)}</b>: everyone now gets <b>{esc(served)}</b>."


def _database_latency(plugin: Analytics) -> str:
    import time

    import sqlalchemy as sa

    started = time.perf_counter()
    try:
        with plugin.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as error:
        return f"unreachable: {type(error).__name__}: {error}"[:300]
    return f"{(time.perf_counter() - started) * 1000:,.1f} ms for a round trip " \
        f"({plugin.engine.dialect.name})"


def _quarter_stats(plugin: Analytics, tenant: str, bot: int) -> str:
    """The last whole calendar quarter against the one before, computed now."""
    from ..kpis.queries import format_value, relative_change
    from ..kpis.rollup import compute_span

    now = plugin.clock()
    q = (now.month - 1) // 3
    end = now.replace(month=3 * q + 1, day=1, hour=0, minute=0, second=0, microsecond=0)

    def back(t: datetime) -> datetime:
        month = t.month - 3
        return t.replace(year=t.year - (month < 1), month=month + 12 if month < 1 else month)

    start, before = back(end), back(back(end))
    m = plugin.settings.metrics
    kwargs = {"session_timeout": timedelta(minutes=m.session_timeout_minutes),
              "attribution_window": timedelta(hours=m.attribution_window_hours)}
    now_rows = {k.metric: k.value for k in compute_span(plugin.engine, tenant, bot, start,
                                                        end, **kwargs) if k.dimension is None}
    if not now_rows:
        return f"No interactions in the quarter from {start:%Y-%m-%d}."
    old = {k.metric: k.value for k in compute_span(plugin.engine, tenant, bot, before, start,
                                                   **kwargs) if k.dimension is None}

    def change(metric: str) -> float | None:
        return relative_change(now_rows[metric], old.get(metric))

    lines = [(m.replace("_", " "), format_value(m, now_rows[m]), change_arrow(change(m)))
             for m in HEADLINE if m in now_rows]
    return (f"<b>Quarter from {start:%Y-%m-%d}</b> (change against the quarter before)\n"
            + table(lines))


def _intents(plugin: Analytics, tenant: str, bot: int, word: str, days: int
             ) -> tuple[str, bytes | None]:
    from optimizer import load_data
    from optimizer.monetization import intent_conversions

    from .charts import intents_chart

    end = plugin.clock()
    m = plugin.settings.metrics
    data = load_data(plugin.engine, tenant, end - timedelta(days=days), end, bot_id=bot,
                     session_timeout=timedelta(minutes=m.session_timeout_minutes),
                     attribution_window=timedelta(hours=m.attribution_window_hours),
                     with_text=False)
    rows = intent_conversions(data, plugin.settings.optimizer.funnel_intents)
    if not rows:
        return f"No intents in the last {word}.", None
    volume = [(r.intent, f"{r.sessions:,} sessions", f"{r.rate:.1%} buy") for r in rows[:10]]
    enough = [r for r in rows if r.sessions >= 10]
    best = sorted(enough, key=lambda r: (-r.rate, -r.sessions))[:10]
    conversion = [(r.intent, f"{r.rate:.1%}", f"[{r.ci_low:.0%}, {r.ci_high:.0%}]")
                  for r in best]
    text = (f"<b>Top intents, last {word}</b> ({len(data.session_table()):,} sessions)\n"
            + table(volume))
    if conversion:
        text += "\n<b>By conversion</b> (intents in 10 sessions or more)\n" + table(conversion)
    png = None
    if any(r.conversions for r in rows[:10]) and len(rows) >= 2:
        png = intents_chart(f"Sessions that bought, by intent (last {word})",
                            [(r.intent, r.sessions, r.rate, r.ci_low, r.ci_high)
                             for r in rows[:10]])
    return text, png


def _segments(plugin: Analytics, tenant: str) -> str:
    from ..optimize import latest_run

    run = latest_run(plugin.engine, tenant)
    if run is None:
        return "No optimizer run yet: `bot-analytics optimize`, or wait for the weekly job."
    p = run.result["personalization"]
    head = (f"<b>Segments</b> (optimizer run {run.id}, {run.period_start:%Y-%m-%d} to "
            f"{run.period_end:%Y-%m-%d})")
    if p.get("error"):
        return f"{head}\n{esc(p['error'])}"
    lines = [head] + [f"• <b>{esc(s['name'])}</b>: {s['members']:,} members, "
                      f"{s['conversion_rate']:.1%} buy; {esc(s['description'])}"
                      for s in p["segments"]]
    if p["rules"]:
        lines.append("<b>Who buys</b>")
        lines += [f"• {esc(r['text'])}" for r in p["rules"][:5]]
    ups = [u for u in p["upsell_opportunities"] if u["significant"]][:3]
    if ups:
        lines.append("<b>Upsell</b>")
        lines += [f"• {esc(u['text'])}" for u in ups]
    return "\n".join(lines)


def _recommendations(plugin: Analytics, tenant: str) -> str:
    from ..optimize import latest_run

    run = latest_run(plugin.engine, tenant)
    if run is None:
        return "No optimizer run yet: `bot-analytics optimize`, or wait for the weekly job."
    recs = run.result["recommendations"]
    lines = [f"<b>Recommendations</b> (optimizer run {run.id}, {run.period_start:%Y-%m-%d} "
             f"to {run.period_end:%Y-%m-%d})"]
    if not recs:
        lines.append("Nothing stands out.")
    for i, r in enumerate(recs, 1):
        lines.append(f"{i}. [{esc(r['implementation_priority'])}] <b>{esc(r['title'])}</b>: "
                     f"{esc(r['impact_estimate']['text'])}\n   {esc(r['evidence'])}\n"
                     f"   → {esc(r['action'])}")
    return "\n".join(lines)


def _export(plugin: Analytics, tenant: str, bot: int, what: str, days: int, fmt: str
            ) -> tuple[Any, int]:
    """Stream the rows to a temporary file, a chunk at a time; returns its path and the
    number of rows."""
    import csv
    import json
    import tempfile
    from pathlib import Path

    import sqlalchemy as sa

    from ..kpis.rollup import KPI_METRICS
    from ..storage.queries import INTERACTIONS

    end = plugin.clock()
    start = end - timedelta(days=days)
    if what == "interactions":
        t = INTERACTIONS
        stmt = (sa.select(t).where(t.c.tenant_id == tenant, t.c.bot_id == bot,
                                   t.c.ts >= start, t.c.ts < end).order_by(t.c.ts, t.c.id))
    else:
        t = KPI_METRICS
        stmt = (sa.select(t).where(t.c.tenant_id == tenant, t.c.bot_id == bot,
                                   t.c.period_start >= start, t.c.period_start < end)
                .order_by(t.c.aggregation_period, t.c.period_start, t.c.metric_type))
    handle, name = tempfile.mkstemp(suffix=f".{fmt}", prefix="bot-analytics-export-")
    path = Path(name)
    count = 0
    with open(handle, "w", encoding="utf-8", newline="") as out, \
            plugin.engine.connect() as conn:
        result = conn.execution_options(yield_per=5000).execute(stmt)
        columns = list(result.keys())
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(columns)
        for part in result.partitions():
            for row in part:
                values = [v.isoformat() if isinstance(v, datetime) else v for v in row]
                if writer is not None:
                    writer.writerow(values)
                else:
                    out.write(json.dumps(dict(zip(columns, values, strict=True)),
                                         ensure_ascii=False) + "\n")
                count += 1
    return path, count
