"""Customer experience: CSAT from the survey's ratings, and sentiment."""

from __future__ import annotations

from .common import Kpi, rate
from .data import PeriodData

CATEGORY = "customer_experience"


def compute(d: PeriodData) -> list[Kpi]:
    t = d.totals
    out: list[Kpi] = []
    rated, total, satisfied = d.ratings
    if rated:
        out.append(Kpi(CATEGORY, "csat_avg", total / rated, rated))
        out += rate(CATEGORY, "csat_score", satisfied, rated)
    if t.scored:
        out.append(Kpi(CATEGORY, "sentiment_avg", t.sentiment_sum / t.scored, t.scored))
    labelled = sum(t.labels.values())
    for label in ("positive", "neutral", "negative"):
        out += rate(CATEGORY, f"sentiment_{label}_rate", t.labels.get(label, 0), labelled)
    return out
