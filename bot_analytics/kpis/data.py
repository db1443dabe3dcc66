"""Loading one period's raw rows for the KPI families.

Sessions are built from timestamps by the definition (KPIS.md: each interaction of a
member in a chat follows the previous by at most the session timeout), not taken from
the writer's online ``session_id``, so late or replayed data cannot bend them. A session
belongs to the period in which it starts; its interactions after the period's end are
followed until it closes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..storage.queries import CONVERSIONS, INTERACTIONS

# How far past the period's end one query follows sessions that are still open.
_FOLLOW_STEP = timedelta(hours=6)


@dataclass
class Session:
    start: datetime
    last: datetime
    interactions: int = 0
    escalated: bool = False
    last_handled: bool = False
    last_intent: str | None = None
    ids: list[int] = field(default_factory=list)

    def add(self, row: Any) -> None:
        self.interactions += 1
        self.escalated = self.escalated or bool(row.escalated)
        self.last = row.ts
        self.last_handled = bool(row.handled)
        self.last_intent = row.intent
        self.ids.append(row.id)


@dataclass
class Purchase:
    value: float
    amount_minor: int
    currency: str | None
    intent: str | None


@dataclass
class PeriodData:
    """What the KPI families read for one tenant, bot and period."""

    start: datetime
    end: datetime
    interactions: list[Any]          # rows in [start, end)
    sessions: list[Session]          # sessions starting in [start, end)
    new_users: int
    known_members: int
    purchases: list[Purchase]        # purchases in [start, end)
    trigger_outcomes: dict[int, set[str]]  # trigger interaction id -> outcomes


def _key(row: Any) -> tuple[int, int]:
    return row.member_id, row.chat_id if row.chat_id is not None else row.member_id


def _select(tenant: str, bot: int) -> Any:
    t = INTERACTIONS.c
    return (sa.select(t.id, t.member_id, t.chat_id, t.ts, t.intent, t.handled, t.escalated)
            .where(t.tenant_id == tenant, t.bot_id == bot))


def load_sessions(conn: Connection, tenant: str, bot: int, start: datetime, end: datetime,
                  timeout: timedelta) -> list[Session]:
    t = INTERACTIONS.c
    rows = conn.execute(_select(tenant, bot).where(t.ts >= start - timeout, t.ts < end)
                        .order_by(t.member_id, t.chat_id, t.ts, t.id)).all()
    by_key: dict[tuple[int, int], list[Any]] = {}
    for row in rows:
        by_key.setdefault(_key(row), []).append(row)
    kept: list[Session] = []
    open_: dict[tuple[int, int], Session] = {}
    for key, key_rows in by_key.items():
        key_rows.sort(key=lambda r: (r.ts, r.id))
        current: Session | None = None
        prev: datetime | None = None
        for row in key_rows:
            if prev is None or row.ts - prev > timeout:
                current = Session(row.ts, row.ts)
                if start <= row.ts < end:
                    kept.append(current)
            assert current is not None
            current.add(row)
            prev = row.ts
        if current is not None and start <= current.start and current.last + timeout >= end:
            open_[key] = current
    _follow(conn, tenant, bot, open_, end, timeout)
    return kept


def _follow(conn: Connection, tenant: str, bot: int, open_: dict[tuple[int, int], Session],
            end: datetime, timeout: timedelta) -> None:
    """Extend sessions still open at ``end`` with their later interactions."""
    t = INTERACTIONS.c
    cursor = end
    while open_:
        upto = cursor + _FOLLOW_STEP
        members = sorted({k[0] for k in open_})
        rows = conn.execute(_select(tenant, bot).where(
            t.member_id.in_(members), t.ts >= cursor, t.ts < upto)
            .order_by(t.ts, t.id)).all()
        for row in rows:
            session = open_.get(_key(row))
            if session is None:
                continue
            if row.ts - session.last > timeout:
                del open_[_key(row)]
            else:
                session.add(row)
        for key in [k for k, s in open_.items() if s.last + timeout < upto]:
            del open_[key]
        cursor = upto


def load_period(conn: Connection, tenant: str, bot: int, start: datetime, end: datetime,
                timeout: timedelta, attribution_window: timedelta) -> PeriodData:
    t = INTERACTIONS.c
    interactions = list(conn.execute(
        sa.select(t.member_id, t.intent, t.handled, t.error, t.response_time_ms,
                  t.sentiment, t.sentiment_score)
        .where(t.tenant_id == tenant, t.bot_id == bot, t.ts >= start, t.ts < end)))
    sessions = load_sessions(conn, tenant, bot, start, end, timeout)

    earlier = INTERACTIONS.alias("earlier")
    new_users = conn.execute(
        sa.select(sa.func.count(sa.distinct(t.member_id)))
        .where(t.tenant_id == tenant, t.bot_id == bot, t.ts >= start, t.ts < end,
               ~sa.exists().where(earlier.c.tenant_id == tenant, earlier.c.bot_id == bot,
                                  earlier.c.member_id == t.member_id,
                                  earlier.c.ts < start))).scalar_one()
    known = conn.execute(
        sa.select(sa.func.count(sa.distinct(t.member_id)))
        .where(t.tenant_id == tenant, t.bot_id == bot, t.ts < end)).scalar_one()

    c = CONVERSIONS.c
    purchases = [Purchase(r.value, r.amount_minor, r.currency, r.intent)
                 for r in conn.execute(
                     sa.select(c.value, c.amount_minor, c.currency, c.intent)
                     .where(c.tenant_id == tenant, c.bot_id == bot, c.outcome == "purchased",
                            c.ts >= start, c.ts < end))]
    last_seen = max((s.last for s in sessions), default=end)
    triggers: dict[int, set[str]] = {}
    for r in conn.execute(
            sa.select(c.interaction_id, c.outcome)
            .where(c.tenant_id == tenant, c.bot_id == bot, c.interaction_id.is_not(None),
                   c.outcome.in_(("purchased", "resolved")), c.ts >= start - timeout,
                   c.ts <= max(last_seen, end) + attribution_window)):
        triggers.setdefault(r.interaction_id, set()).add(r.outcome)
    return PeriodData(start, end, interactions, sessions, new_users, known, purchases,
                      triggers)


def tenants_and_bots(conn: Connection, start: datetime, end: datetime
                     ) -> Iterable[tuple[str, int]]:
    """The (tenant, bot) pairs with interactions or conversions in [start, end)."""
    t, c = INTERACTIONS.c, CONVERSIONS.c
    pairs = {(r[0], r[1]) for r in conn.execute(
        sa.select(t.tenant_id, t.bot_id).where(t.ts >= start, t.ts < end).distinct())}
    pairs |= {(r[0], r[1]) for r in conn.execute(
        sa.select(c.tenant_id, c.bot_id).where(c.ts >= start, c.ts < end).distinct())}
    return sorted(pairs)
