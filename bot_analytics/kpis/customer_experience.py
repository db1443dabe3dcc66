"""Customer experience: sentiment (CSAT joins when feedback is collected)."""

from __future__ import annotations

from .common import Kpi, mean, rate
from .data import PeriodData

CATEGORY = "customer_experience"


def compute(d: PeriodData) -> list[Kpi]:
    scores = [r.sentiment_score for r in d.interactions if r.sentiment_score is not None]
    out = mean(CATEGORY, "sentiment_avg", scores)
    labelled = [r.sentiment for r in d.interactions if r.sentiment is not None]
    for label in ("positive", "neutral", "negative"):
        out += rate(CATEGORY, f"sentiment_{label}_rate",
                    sum(1 for x in labelled if x == label), len(labelled))
    return out
