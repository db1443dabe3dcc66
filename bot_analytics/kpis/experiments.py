"""Per-variant KPIs of the experiments running in a period (dimension
``variant=EXPERIMENT:VARIANT``, KPIS.md).

Each row is cumulative: the experiment's members from its first exposure to the end of
the period (or the experiment's stop, if earlier) and what they did after their first
exposure. A period's rows therefore show where every variant stood when it closed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from ..experiments import store as exp_store
from .common import Kpi

CATEGORY = "experiments"


def compute(conn: Connection, tenant: str, bot: int, start: datetime, end: datetime
            ) -> list[Kpi]:
    out: list[Kpi] = []
    for exp in exp_store.load_definitions(conn, tenant):
        stop = exp.end()
        if stop is not None and stop <= start:
            continue  # ended before this period
        until = min(end, stop) if stop is not None else end
        outcomes = ["purchased"]
        extra = exp_store.OUTCOME_OF[exp.metric]
        if extra != "purchased":
            outcomes.append(extra)
        for outcome in outcomes:
            counts = exp_store.count(conn, exp, until, outcome=outcome, bot_id=bot,
                                     daily=False)
            for variant, sample in counts.totals.items():
                n = sample.members
                if n == 0:
                    continue
                dim = f"variant={exp.name}:{variant}"
                if outcome == "purchased":
                    out.append(Kpi(CATEGORY, "members", n, n, dim))
                    out.append(Kpi(CATEGORY, "conversion_rate", sample.rate, n, dim))
                    out.append(Kpi(CATEGORY, "revenue_per_member", sample.mean, n, dim))
                else:
                    out.append(Kpi(CATEGORY, f"{outcome}_rate", sample.rate, n, dim))
        if "csat" in (exp.metric, *exp.settings.secondary_metrics):
            for variant, rated in exp_store.count_ratings(conn, exp, until, bot_id=bot).items():
                if rated.members:
                    out.append(Kpi(CATEGORY, "csat_avg", rated.mean, rated.members,
                                   f"variant={exp.name}:{variant}"))
    return out
