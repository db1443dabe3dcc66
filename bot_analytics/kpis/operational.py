"""Operational efficiency: containment, resolution, fallback, errors, handling time."""

from __future__ import annotations

from .common import Kpi, mean, nearest_rank, rate
from .data import PeriodData

CATEGORY = "operational_efficiency"
RESOLVING = frozenset({"purchased", "resolved"})


def compute(d: PeriodData) -> list[Kpi]:
    sessions = d.sessions
    rows = d.interactions
    out = rate(CATEGORY, "containment_rate",
               sum(1 for s in sessions if not s.escalated), len(sessions))
    resolved = sum(1 for s in sessions
                   if any(d.trigger_outcomes.get(i, set()) & RESOLVING for i in s.ids))
    out += rate(CATEGORY, "resolution_rate", resolved, len(sessions))
    out += rate(CATEGORY, "fallback_rate",
                sum(1 for r in rows if r.intent == "unknown" or not r.handled), len(rows))
    out += rate(CATEGORY, "error_rate", sum(1 for r in rows if r.error is not None),
                len(rows))
    times = sorted(r.response_time_ms for r in rows if r.response_time_ms is not None)
    out += mean(CATEGORY, "avg_handling_time_ms", times)
    if times:
        out.append(Kpi(CATEGORY, "response_time_p50_ms", nearest_rank(times, 0.5),
                       len(times)))
        out.append(Kpi(CATEGORY, "response_time_p95_ms", nearest_rank(times, 0.95),
                       len(times)))
    return out
