"""Scheduled reports (``reports:`` in config.yaml): the last whole period, built once and
posted to each of the report's chats that has not had it yet."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from .assemble import PERIOD_WORDS, build_report, last_whole_period
from .deliver import Target, _state, deliver
from .render import telegram_pieces

if TYPE_CHECKING:
    from ..plugin import Analytics

log = logging.getLogger("bot_analytics.reports")


async def post_report(analytics: Analytics, name: str, now: datetime) -> dict[str, int]:
    """Post report ``name`` for the last whole period before ``now``; returns how many
    chats ended how (``sent``, ``skipped``, ``failed``, ``forbidden``)."""
    settings = analytics.settings
    cfg = settings.reports.get(name)
    if cfg is None:
        raise ValueError(f"no report named {name!r} in config.yaml (reports: "
                         f"{', '.join(settings.reports) or 'none'})")
    tenant = cfg.tenant or settings.tenants.default
    start = last_whole_period(PERIOD_WORDS[cfg.period], now)
    targets = [Target(tenant, "report", name, start, chat) for chat in cfg.chats]
    engine = analytics.engine
    states = [await analytics.writer.run_in_worker(_state, engine, t) for t in targets]
    pending = [t for t, s in zip(targets, states, strict=True)
               if s is None or s[0] not in ("sent", "forbidden")]
    outcome = {"skipped": len(targets) - len(pending)}
    analytics.delivery_counters.skipped += outcome["skipped"]
    if not pending:
        return outcome
    bot = analytics.bot_for(tenant, cfg.bot)
    if bot is None:
        raise RuntimeError(f"report {name}: no running bot of tenant {tenant!r} to post with")
    try:
        report = await asyncio.to_thread(build_report, engine, settings, tenant, cfg.period,
                                         bot_id=cfg.bot, start=start, now=now,
                                         sections=list(cfg.sections))
    except ValueError as error:   # nothing to report on
        log.info("report %s: %s; nothing posted", name, error)
        outcome["empty"] = len(pending)
        return outcome
    pieces = telegram_pieces(report)
    for target in pending:
        status = await deliver(engine, bot, target, pieces, now=now,
                               counters=analytics.delivery_counters,
                               run=analytics.writer.run_in_worker)
        outcome[status] = outcome.get(status, 0) + 1
    return outcome
