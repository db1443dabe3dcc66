"""Reading rolled-up KPIs back: the latest period and its change against the one before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .periods import normalize
from .rollup import KPI_METRICS


def relative_change(value: float, previous: float | None) -> float | None:
    """(value - previous) / |previous|; None without a previous value, or from 0."""
    if previous is None or previous == 0:
        return None
    return (value - previous) / abs(previous)


@dataclass(frozen=True)
class KpiChange:
    tenant_id: str
    bot_id: int
    category: str
    metric: str
    dimension: str | None
    period_start: datetime
    value: float
    sample_size: int
    previous: float | None

    @property
    def change(self) -> float | None:
        """Relative change against the previous period (None without one, or from 0)."""
        return relative_change(self.value, self.previous)

    def as_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "bot_id": self.bot_id,
                "category": self.category, "metric": self.metric,
                "dimension": self.dimension, "period_start": self.period_start.isoformat(),
                "value": self.value, "sample_size": self.sample_size,
                "previous": self.previous, "change": self.change}


def latest_with_change(engine: Engine, kind: str, *, tenant_id: str | None = None,
                       bot_id: int | None = None) -> list[KpiChange]:
    """Each tenant and bot's latest rolled-up period of ``kind``, with the period before."""
    kind = normalize(kind)
    k = KPI_METRICS.c
    cond = [k.aggregation_period == kind]
    if tenant_id is not None:
        cond.append(k.tenant_id == tenant_id)
    if bot_id is not None:
        cond.append(k.bot_id == bot_id)
    out: list[KpiChange] = []
    with engine.connect() as conn:
        pairs = conn.execute(sa.select(k.tenant_id, k.bot_id, sa.func.max(k.period_start))
                             .where(*cond).group_by(k.tenant_id, k.bot_id)).all()
        for tenant, bot, latest in pairs:
            prev_start = conn.execute(sa.select(sa.func.max(k.period_start)).where(
                *cond, k.tenant_id == tenant, k.bot_id == bot,
                k.period_start < latest)).scalar()
            rows = conn.execute(sa.select(k.metric_category, k.metric_type, k.dimension,
                                          k.metric_value, k.sample_size, k.period_start)
                                .where(*cond, k.tenant_id == tenant, k.bot_id == bot,
                                       k.period_start.in_([latest, prev_start]))).all()
            before = {(r.metric_type, r.dimension): r.metric_value for r in rows
                      if r.period_start != latest}
            for r in sorted((r for r in rows if r.period_start == latest),
                            key=lambda r: (r.metric_category, r.metric_type,
                                           r.dimension or "")):
                out.append(KpiChange(tenant, bot, r.metric_category, r.metric_type,
                                     r.dimension, r.period_start, r.metric_value,
                                     r.sample_size, before.get((r.metric_type, r.dimension))))
    return out


def format_value(metric: str, value: float) -> str:
    if metric.endswith("_rate") or metric == "csat_score":
        return f"{value * 100:.1f}%"
    if metric.endswith("_ms"):
        return f"{value:,.1f} ms"
    if value == int(value) and metric in {"interactions", "sessions", "active_users",
                                          "new_users", "conversions", "members"}:
        return f"{int(value):,}"
    return f"{value:,.2f}"


def format_change(change: float | None) -> str:
    if change is None:
        return ""
    arrow = "▲" if change > 0 else "▼" if change < 0 else "="
    return f"{arrow} {abs(change) * 100:.1f}%"
