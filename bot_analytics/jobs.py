"""Scheduled jobs: APScheduler 3 ``AsyncIOScheduler`` on the bot's event loop, with a
persistent job store in the analytics database, configured from ``rollup:``.

Jobs are stored by reference (``bot_analytics.jobs:run_rollup``) with the name of the
plugin instance that owns them, so a restart picks them up where they were; coalescing
and the misfire grace time make a restart neither skip nor double a run.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .kpis.periods import period_end, period_start
from .kpis.rollup import rollup_period
from .storage.db import RunLock

if TYPE_CHECKING:
    from .plugin import Analytics

log = logging.getLogger("bot_analytics.jobs")

#: Plugin instances by name, for jobs loaded from the persistent store.
_instances: weakref.WeakValueDictionary[str, Analytics] = weakref.WeakValueDictionary()


def periods_to_roll(kind: str, now: datetime, lookback: int) -> list[datetime]:
    """The last complete period before ``now`` and ``lookback`` periods before it."""
    current = period_start(now, kind)
    starts: list[datetime] = []
    start = current
    for _ in range(lookback + 1):
        start = period_start(start - timedelta(microseconds=1), kind)
        starts.append(start)
    return sorted(starts)


def rollup_now(analytics: Analytics, kind: str, now: datetime | None = None) -> int:
    """Roll up the finished periods of ``kind`` (run in a worker thread)."""
    s = analytics.settings
    now = now or datetime.now(UTC)
    written = 0
    with RunLock(analytics.engine, f"bot-analytics rollup {kind}") as got:
        if not got:
            log.info("another process is rolling up %s periods; skipped", kind)
            return 0
        for start in periods_to_roll(kind, now, s.rollup.lookback):
            assert period_end(start, kind) <= now
            written += rollup_period(
                analytics.engine, kind, start,
                session_timeout=timedelta(minutes=s.metrics.session_timeout_minutes),
                attribution_window=timedelta(hours=s.metrics.attribution_window_hours),
                now=now)
    return written


async def run_rollup(instance: str, kind: str) -> None:
    """The scheduled job. Failures are logged and counted, never raised into the bot."""
    analytics = _instances.get(instance)
    if analytics is None:
        log.warning("rollup job for %r: no such analytics instance in this process", instance)
        return
    counters = analytics.job_counters
    try:
        written = await asyncio.get_running_loop().run_in_executor(
            None, rollup_now, analytics, kind)
        counters["runs"] += 1
        counters["last_run_at"] = datetime.now(UTC)
        log.info("%s rollup wrote %d KPI rows", kind, written)
    except Exception as error:
        counters["failures"] += 1
        counters["last_error"] = f"{kind} rollup: {type(error).__name__}: {error}"[:500]
        log.exception("bot-analytics: the %s rollup failed; it runs again next time", kind)


def optimize_now(analytics: Analytics, now: datetime | None = None) -> int:
    """Run the optimizer for every tenant with interactions in its period (in a worker
    thread); returns the number of runs stored."""
    from .optimize import optimize, tenants_with_data

    now = now or datetime.now(UTC)
    start = now - timedelta(days=analytics.settings.optimizer.days)
    stored = 0
    with RunLock(analytics.engine, "bot-analytics optimize") as got:
        if not got:
            log.info("another process is running the optimizer; skipped")
            return 0
        for tenant in tenants_with_data(analytics.engine, start, now):
            optimize(analytics.engine, analytics.settings, tenant, start=start, end=now,
                     source="job", now=now)
            stored += 1
    analytics._next_segment_refresh = 0.0  # serve the new segments from now on
    return stored


async def _guarded(instance: str, what: str, work: Any) -> None:
    """Run ``work(analytics)`` for a job: failures are logged and counted, never raised."""
    analytics = _instances.get(instance)
    if analytics is None:
        log.warning("%s job for %r: no such analytics instance in this process", what,
                    instance)
        return
    counters = analytics.job_counters
    try:
        await work(analytics)
        counters["runs"] += 1
        counters["last_run_at"] = datetime.now(UTC)
    except Exception as error:
        counters["failures"] += 1
        counters["last_error"] = f"{what}: {type(error).__name__}: {error}"[:500]
        log.exception("bot-analytics: the %s job failed; it runs again next time", what)


async def run_optimize(instance: str) -> None:
    """The scheduled optimizer run (in a worker thread)."""

    async def work(analytics: Analytics) -> None:
        runs = await asyncio.get_running_loop().run_in_executor(None, optimize_now, analytics)
        log.info("the optimizer stored %d runs", runs)

    await _guarded(instance, "optimizer", work)


async def run_alerts(instance: str) -> None:
    """The daily anomaly and threshold check."""
    from .alerts import send_alerts

    async def work(analytics: Analytics) -> None:
        outcome = await send_alerts(analytics, analytics.clock())
        log.info("alerts: %s", outcome or "none")

    await _guarded(instance, "alerts", work)


async def run_purge(instance: str) -> None:
    """The daily retention purge (``retention.days``)."""
    from .retention import purge

    async def work(analytics: Analytics) -> None:
        r = analytics.settings.retention
        if r.days is None:
            return
        deleted = await analytics.writer.run_in_worker(
            lambda: purge(analytics.engine, r.days, analytics.clock(),  # type: ignore[arg-type]
                          batch_size=r.batch_size))
        log.info("retention purge: %s", deleted)

    await _guarded(instance, "retention purge", work)


async def run_report(instance: str, name: str) -> None:
    """A scheduled report: the last whole period before now, to every chat of it."""
    from .reports.post import post_report

    async def work(analytics: Analytics) -> None:
        outcome = await post_report(analytics, name, analytics.clock())
        log.info("report %s: %s", name, outcome)

    await _guarded(instance, f"report {name}", work)


def start_scheduler(analytics: Analytics) -> Any:
    """Create and start the scheduler on the running loop; returns it."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    settings = analytics.settings
    s = settings.rollup
    _instances[analytics.name] = analytics
    scheduler = AsyncIOScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=analytics.engine,
                                                 tablename="bot_analytics_jobs")},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": s.misfire_grace_seconds},
        timezone=UTC)
    if s.enabled:
        for kind, cron in s.schedule.items():
            scheduler.add_job("bot_analytics.jobs:run_rollup",
                              CronTrigger.from_crontab(cron, timezone=UTC),
                              args=[analytics.name, kind],
                              id=f"{analytics.name}:rollup:{kind}", replace_existing=True,
                              name=f"{kind} KPI rollup")
    if settings.optimizer.enabled:
        scheduler.add_job("bot_analytics.jobs:run_optimize",
                          CronTrigger.from_crontab(settings.optimizer.schedule, timezone=UTC),
                          args=[analytics.name], id=f"{analytics.name}:optimize",
                          replace_existing=True, name="optimizer")
    if settings.alerts.enabled and settings.alert_chats:
        scheduler.add_job("bot_analytics.jobs:run_alerts",
                          CronTrigger.from_crontab(settings.alerts.schedule, timezone=UTC),
                          args=[analytics.name], id=f"{analytics.name}:alerts",
                          replace_existing=True, name="alerts")
    if settings.retention.days is not None:
        scheduler.add_job("bot_analytics.jobs:run_purge",
                          CronTrigger.from_crontab(settings.retention.schedule, timezone=UTC),
                          args=[analytics.name], id=f"{analytics.name}:purge",
                          replace_existing=True, name="retention purge")
    for name, report in settings.reports.items():
        scheduler.add_job("bot_analytics.jobs:run_report",
                          CronTrigger.from_crontab(report.schedule, timezone=UTC),
                          args=[analytics.name, name], id=f"{analytics.name}:report:{name}",
                          replace_existing=True, name=f"report {name}")
    scheduler.start()
    # Jobs of this instance that the configuration no longer asks for (a report removed
    # from config.yaml, say) stay in the persistent store until removed here.
    wanted = {f"{analytics.name}:rollup:{kind}" for kind in s.schedule} if s.enabled else set()
    wanted |= {f"{analytics.name}:optimize"} if settings.optimizer.enabled else set()
    wanted |= ({f"{analytics.name}:alerts"}
               if settings.alerts.enabled and settings.alert_chats else set())
    wanted |= {f"{analytics.name}:report:{name}" for name in settings.reports}
    wanted |= {f"{analytics.name}:purge"} if settings.retention.days is not None else set()
    for job in scheduler.get_jobs():
        if job.id.startswith(f"{analytics.name}:") and job.id not in wanted:
            scheduler.remove_job(job.id)
    return scheduler
