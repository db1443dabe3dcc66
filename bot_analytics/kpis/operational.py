"""Operational efficiency: containment, resolution, fallback, errors, handling time."""

from __future__ import annotations

from .common import Kpi, rate
from .data import PeriodData

CATEGORY = "operational_efficiency"
RESOLVING = frozenset({"purchased", "resolved"})


def compute(d: PeriodData) -> list[Kpi]:
    sessions = d.sessions
    totals = d.totals
    out = rate(CATEGORY, "containment_rate", int((~sessions.escalated).sum()),
               len(sessions))
    resolved = sessions.led_to(i for i, outcomes in d.trigger_outcomes.items()
                               if outcomes & RESOLVING)
    out += rate(CATEGORY, "resolution_rate", int(resolved.sum()), len(sessions))
    out += rate(CATEGORY, "fallback_rate", totals.fallbacks, totals.interactions)
    out += rate(CATEGORY, "error_rate", totals.errors, totals.interactions)
    n = totals.replied
    if n and totals.response_time_p50 is not None and totals.response_time_p95 is not None:
        out.append(Kpi(CATEGORY, "avg_handling_time_ms", totals.response_time_sum / n, n))
        out.append(Kpi(CATEGORY, "response_time_p50_ms", totals.response_time_p50, n))
        out.append(Kpi(CATEGORY, "response_time_p95_ms", totals.response_time_p95, n))
    return out
