"""Engagement: interactions, sessions, active and new users, retention (and by cohort
day: d1, d7, d30), stickiness, completion, bounce, interactions per session."""

from __future__ import annotations

import numpy as np

from .common import Kpi, rate
from .data import PeriodData

CATEGORY = "engagement"
NOT_COMPLETED = frozenset({"unknown", "abandoned"})


def compute(d: PeriodData) -> list[Kpi]:
    n = d.totals.interactions
    sessions = d.sessions
    active = d.totals.active_users
    out = [Kpi(CATEGORY, "interactions", n, n),
           Kpi(CATEGORY, "sessions", len(sessions), len(sessions)),
           Kpi(CATEGORY, "active_users", active, active),
           Kpi(CATEGORY, "new_users", d.new_users, d.new_users)]
    out += rate(CATEGORY, "retention_rate", active, d.known_members)
    for days, (back, cohort) in sorted(d.retention.items()):
        out += rate(CATEGORY, f"retention_d{days}", back, cohort)
    if d.daily_active is not None and active:
        dau_sum, month_days = d.daily_active
        if month_days:
            out.append(Kpi(CATEGORY, "stickiness", dau_sum / month_days / active, active))
    # Compared one name at a time: the intents are objects and may be None.
    unfinished = np.zeros(len(sessions), dtype=bool)
    for intent in NOT_COMPLETED:
        unfinished |= sessions.last_intent == intent
    completed = sessions.last_handled & ~unfinished
    out += rate(CATEGORY, "completion_rate", int(completed.sum()), len(sessions))
    out += rate(CATEGORY, "bounce_rate", int((sessions.size == 1).sum()), len(sessions))
    if sessions:
        out.append(Kpi(CATEGORY, "interactions_per_session", n / len(sessions),
                       len(sessions)))
    return out
