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

PERIODS = {"day": "daily", "week": "weekly", "month": "monthly"}
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


def _period(command: CommandObject | None, default: str = "week") -> str:
    word = (command.args or "").split()[0].lower() if command and command.args else default
    if word not in PERIODS:
        raise ValueError(f"unknown period {word!r}: use {', '.join(PERIODS)}")
    return PERIODS[word]


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
            f"/{p}stats [day|week|month] - the headline figures and their change",
            f"/{p}kpi cx|ops|engagement|revenue [day|week|month] - one KPI family",
            f"/{p}ab [list | show NAME | stop NAME [WINNER]] - experiments",
            f"/{p}health - the capture pipeline and the scheduled jobs",
        ]))

    async def kpis(analytics: UpdateContext, kind: str) -> list[Any]:
        tenant, bot = ctx_of(analytics)
        return await asyncio.to_thread(latest_with_change, plugin.engine, kind,
                                       tenant_id=tenant, bot_id=bot)

    @router.message(Command(f"{p}stats"))
    async def stats(message: Message, command: CommandObject,
                    analytics: UpdateContext) -> None:
        kind = _period(command)
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
        surveys = plugin.surveys.counters
        text += (f"\n<b>CSAT survey</b>: {surveys['asked']} asked, {surveys['answered']} "
                 f"answered")
        if h.get("last_error"):
            text += f"\n<b>last capture error</b>: <code>{esc(h['last_error'])}</code>"
        await reply(message, text)

    return router


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
