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
from .data import PeriodData, load_period, tenants_and_bots
from .periods import normalize, period_end, period_start, periods_between

KPI_METRICS = KpiMetric.__table__  # type: ignore[attr-defined]
FAMILIES: tuple[Callable[[PeriodData], list[Kpi]], ...] = (
    customer_experience.compute, operational.compute, engagement.compute,
    monetization.compute)


def compute_period(engine: Engine, tenant: str, bot: int, kind: str, start: datetime, *,
                   session_timeout: timedelta = timedelta(minutes=30),
                   attribution_window: timedelta = timedelta(hours=24)) -> list[Kpi]:
    """Every KPI of one tenant, bot and period (nothing is written)."""
    kind = normalize(kind)
    if period_start(start, kind) != start:
        raise ValueError(f"{start.isoformat()} is not the start of a {kind} period")
    end = period_end(start, kind)
    with engine.connect() as conn:
        data = load_period(conn, tenant, bot, start, end, session_timeout,
                           attribution_window)
        variants = experiments.compute(conn, tenant, bot, start, end)
    return [kpi for family in FAMILIES for kpi in family(data)] + variants


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
    for tenant, bot in pairs:
        kpis = compute_period(engine, tenant, bot, kind, start,
                              session_timeout=session_timeout,
                              attribution_window=attribution_window)
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
