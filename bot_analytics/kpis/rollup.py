"""Roll raw rows up into ``kpi_metrics``: every family, per tenant, bot and period.

Recomputing a period replaces its rows in one transaction, so rollups are idempotent and
late data is taken in by recomputing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..storage.models import KpiMetric
from . import customer_experience, engagement, experiments, monetization, operational
from .common import Kpi
from .data import (
    RETENTION_DAYS,
    Memo,
    PeriodData,
    load_daily_active,
    load_period,
    load_retention,
    tenants_and_bots,
)
from .periods import normalize, period_end, period_start, periods_between

KPI_METRICS = KpiMetric.__table__  # type: ignore[attr-defined]
FAMILIES: tuple[Callable[[PeriodData], list[Kpi]], ...] = (
    customer_experience.compute, operational.compute, engagement.compute,
    monetization.compute)


def compute_period(engine: Engine, tenant: str, bot: int, kind: str, start: datetime, *,
                   session_timeout: timedelta = timedelta(minutes=30),
                   attribution_window: timedelta = timedelta(hours=24),
                   now: datetime | None = None, memo: Memo | None = None) -> list[Kpi]:
    """Every KPI of one tenant, bot and period (nothing is written). ``now`` decides
    which cohort retentions (daily) and days of the month (stickiness) are known;
    ``memo`` carries what a rollup run has already read to its later periods."""
    kind = normalize(kind)
    if period_start(start, kind) != start:
        raise ValueError(f"{start.isoformat()} is not the start of a {kind} period")
    end = period_end(start, kind)
    now = now or datetime.now(UTC)
    memo = memo if memo is not None else Memo()
    with engine.connect() as conn:
        data = load_period(conn, tenant, bot, start, end, session_timeout,
                           attribution_window, memo)
        if kind == "daily":
            data.retention = load_retention(conn, tenant, bot, start, now, memo=memo)
        elif kind == "monthly":
            data.daily_active = load_daily_active(conn, tenant, bot, start, end, now)
        variants = experiments.compute(conn, tenant, bot, start, end)
    return [kpi for family in FAMILIES for kpi in family(data)] + variants


def compute_span(engine: Engine, tenant: str, bot: int, start: datetime, end: datetime, *,
                 session_timeout: timedelta = timedelta(minutes=30),
                 attribution_window: timedelta = timedelta(hours=24)) -> list[Kpi]:
    """The KPIs of any span ``[start, end)`` that no rollup stores (a quarter, say),
    computed now; no cohort retention or stickiness, which belong to days and months."""
    with engine.connect() as conn:
        data = load_period(conn, tenant, bot, start, end, session_timeout,
                           attribution_window)
    return [kpi for family in FAMILIES for kpi in family(data)]


def rollup_period(engine: Engine, kind: str, start: datetime, *,
                  session_timeout: timedelta = timedelta(minutes=30),
                  attribution_window: timedelta = timedelta(hours=24),
                  now: datetime | None = None) -> int:
    """Compute and store one period for every tenant and bot active in it; returns the
    number of rows written."""
    kind = normalize(kind)
    start = period_start(start, kind)
    end = period_end(start, kind)
    computed_at = now or datetime.now(UTC)
    with engine.connect() as conn:
        pairs = list(tenants_and_bots(conn, start, end))
    written = 0
    # Each bot's first-seen table and the day's members serve the cohorts below too.
    memo = Memo()
    for tenant, bot in pairs:
        kpis = compute_period(engine, tenant, bot, kind, start,
                              session_timeout=session_timeout,
                              attribution_window=attribution_window, now=computed_at,
                              memo=memo)
        k = KPI_METRICS.c
        with engine.begin() as conn:
            conn.execute(sa.delete(KPI_METRICS).where(
                k.tenant_id == tenant, k.bot_id == bot, k.aggregation_period == kind,
                k.period_start == start))
            if kpis:
                conn.execute(sa.insert(KPI_METRICS), [{
                    "tenant_id": tenant, "bot_id": bot, "metric_category": x.category,
                    "metric_type": x.metric, "metric_value": float(x.value),
                    "aggregation_period": kind, "period_start": start,
                    "dimension": x.dimension, "sample_size": x.sample_size,
                    "computed_at": computed_at} for x in kpis])
        written += len(kpis)
    if kind == "daily":
        written += _update_cohorts(engine, start, computed_at, memo)
    return written


def _update_cohorts(engine: Engine, day: datetime, now: datetime, memo: Memo) -> int:
    """Day ``day`` has ended, so the cohorts of ``day - N`` now have their d-N retention:
    store it on their own days, replacing only that metric. Cohorts are read off the
    bots' first-seen tables and compared with the members of ``day``, all in ``memo``."""
    k = KPI_METRICS.c
    written = 0
    for n in RETENTION_DAYS:
        cohort_day = day - timedelta(days=n)
        metric = f"retention_d{n}"
        with engine.begin() as conn:
            for tenant, bot in tenants_and_bots(conn, cohort_day,
                                                cohort_day + timedelta(days=1)):
                known = load_retention(conn, tenant, bot, cohort_day, now, (n,), memo=memo)
                conn.execute(sa.delete(KPI_METRICS).where(
                    k.tenant_id == tenant, k.bot_id == bot, k.aggregation_period == "daily",
                    k.period_start == cohort_day, k.metric_type == metric))
                if n in known and known[n][1]:
                    back, size = known[n]
                    conn.execute(sa.insert(KPI_METRICS).values(
                        tenant_id=tenant, bot_id=bot, metric_category=engagement.CATEGORY,
                        metric_type=metric, metric_value=back / size,
                        aggregation_period="daily", period_start=cohort_day, dimension=None,
                        sample_size=size, computed_at=now))
                    written += 1
    return written


def rollup_range(engine: Engine, kind: str, first: datetime, last: datetime, *,
                 progress: Callable[[list[datetime]], Iterable[datetime]] | None = None,
                 session_timeout: timedelta = timedelta(minutes=30),
                 attribution_window: timedelta = timedelta(hours=24)) -> int:
    """Backfill every period of ``kind`` overlapping [first, last)."""
    starts = list(periods_between(first, last, kind))
    total = 0
    for start in (progress(starts) if progress is not None else starts):
        total += rollup_period(engine, kind, start, session_timeout=session_timeout,
                               attribution_window=attribution_window)
    return total
