"""Loading one period's raw rows for the KPI families.

Sessions are built from timestamps by the definition (KPIS.md: each interaction of a
member in a chat follows the previous by at most the session timeout), not taken from
the writer's online ``session_id``, so late or replayed data cannot bend them. A session
belongs to the period in which it starts; its interactions after the period's end are
followed until it closes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..storage.db import day_of, raw_rows
from ..storage.queries import CONVERSIONS, FEEDBACK, INTERACTIONS, MEMBERS

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

    def add(self, rid: int, ts: datetime, intent: str | None, handled: Any,
            escalated: Any) -> None:
        self.interactions += 1
        self.escalated = self.escalated or bool(escalated)
        self.last = ts
        self.last_handled = bool(handled)
        self.last_intent = intent
        self.ids.append(rid)


@dataclass
class Purchase:
    value: float
    amount_minor: int
    currency: str | None
    intent: str | None
    #: The deep-link campaign the member came from (members.campaign), if any.
    campaign: str | None = None


@dataclass
class Totals:
    """Per-interaction aggregates of the period, computed by the database."""

    interactions: int = 0
    active_users: int = 0
    fallbacks: int = 0
    errors: int = 0
    replied: int = 0
    response_time_sum: float = 0.0
    response_time_p50: float | None = None
    response_time_p95: float | None = None
    scored: int = 0
    sentiment_sum: float = 0.0
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class PeriodData:
    """What the KPI families read for one tenant, bot and period."""

    start: datetime
    end: datetime
    totals: Totals
    sessions: list[Session]          # sessions starting in [start, end)
    new_users: int
    known_members: int
    purchases: list[Purchase]        # purchases in [start, end)
    trigger_outcomes: dict[int, set[str]]  # trigger interaction id -> outcomes
    #: CSAT ratings given in [start, end): how many, their sum, how many were 4 or 5.
    ratings: tuple[int, int, int] = (0, 0, 0)
    #: Daily periods: N -> (members of the day's cohort active on day D+N, cohort size),
    #: for the N whose day D+N has ended.
    retention: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Monthly periods: (sum of the daily active users over the month's days so far,
    #: number of those days).
    daily_active: tuple[int, int] | None = None
    #: The members whose first interaction ever is in the period (a day's cohort).
    new_members: set[int] = field(default_factory=set)


RETENTION_DAYS = (1, 7, 30)


def _first_seen_in(conn: Connection, tenant: str, bot: int, start: datetime,
                   end: datetime) -> set[int]:
    """The members whose first interaction ever (with this bot) is in [start, end)."""
    t = INTERACTIONS.c
    earlier = INTERACTIONS.alias("earlier")
    return {row[0] for row in raw_rows(conn, sa.select(t.member_id).where(
        t.tenant_id == tenant, t.bot_id == bot, t.ts >= start, t.ts < end,
        ~sa.exists().where(earlier.c.tenant_id == tenant, earlier.c.bot_id == bot,
                           earlier.c.member_id == t.member_id, earlier.c.ts < start))
        .distinct())}


def load_retention(conn: Connection, tenant: str, bot: int, day: datetime, now: datetime,
                   days: tuple[int, ...] = RETENTION_DAYS, cohort: set[int] | None = None
                   ) -> dict[int, tuple[int, int]]:
    """Of the members whose first interaction ever (with this bot) is on ``day``
    (``cohort`` when already known), how many interacted on day + N, for each N whose
    day has ended by ``now``."""
    due = [n for n in days if day + timedelta(days=n + 1) <= now]
    if not due:
        return {}
    t = INTERACTIONS.c
    members = cohort if cohort is not None else _first_seen_in(
        conn, tenant, bot, day, day + timedelta(days=1))
    if not members:
        return {}
    out: dict[int, tuple[int, int]] = {}
    for n in due:
        lo = day + timedelta(days=n)
        back = {row[0] for row in raw_rows(conn, sa.select(t.member_id).where(
            t.tenant_id == tenant, t.bot_id == bot, t.ts >= lo,
            t.ts < lo + timedelta(days=1)).distinct())}
        out[n] = (len(members & back), len(members))
    return out


def load_daily_active(conn: Connection, tenant: str, bot: int, start: datetime,
                      end: datetime, now: datetime) -> tuple[int, int]:
    """The sum of each day's distinct active members over the days of [start, end) that
    have begun by ``now``, and the number of those days."""
    until = min(end, now)
    days = max(0, math.ceil((until - start).total_seconds() / 86400))
    t = INTERACTIONS.c
    day = day_of(conn, t.ts)
    per_day = (sa.select(sa.func.count(sa.distinct(t.member_id)).label("n"))
               .where(t.tenant_id == tenant, t.bot_id == bot, t.ts >= start, t.ts < until)
               .group_by(day).subquery())
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(per_day.c.n), 0))
                         ).scalar_one()
    return int(total), days


def _in_period(tenant: str, bot: int, start: datetime, end: datetime) -> list[Any]:
    t = INTERACTIONS.c
    return [t.tenant_id == tenant, t.bot_id == bot, t.ts >= start, t.ts < end]


def load_totals(conn: Connection, tenant: str, bot: int, start: datetime,
                end: datetime) -> Totals:
    t = INTERACTIONS.c
    where = _in_period(tenant, bot, start, end)

    def count_if(cond: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    row = conn.execute(sa.select(
        sa.func.count(), sa.func.count(sa.distinct(t.member_id)),
        count_if(sa.or_(t.intent == "unknown", sa.not_(t.handled))),
        count_if(t.error.is_not(None)),
        sa.func.count(t.response_time_ms), sa.func.coalesce(sa.func.sum(t.response_time_ms), 0),
        sa.func.count(t.sentiment_score), sa.func.coalesce(sa.func.sum(t.sentiment_score), 0),
        count_if(t.sentiment == "positive"), count_if(t.sentiment == "neutral"),
        count_if(t.sentiment == "negative")).where(*where)).one()
    totals = Totals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]),
                    float(row[5]), None, None, int(row[6]), float(row[7]),
                    {"positive": int(row[8]), "neutral": int(row[9]),
                     "negative": int(row[10])})
    return totals


def _session_rows(conn: Connection, tenant: str, bot: int, lo: datetime, hi: datetime,
                  members: list[int] | None = None) -> list[Any]:
    """(id, member, chat, ts, intent, handled, escalated, response_time_ms) in session
    order, straight from the driver (timestamps are text on SQLite): the ORM's per-row
    work cost more than everything else together."""
    t = INTERACTIONS.c
    chat = sa.func.coalesce(t.chat_id, t.member_id)
    stmt = (sa.select(t.id, t.member_id, chat, t.ts, t.intent, t.handled, t.escalated,
                      t.response_time_ms)
            .where(t.tenant_id == tenant, t.bot_id == bot, t.ts >= lo, t.ts < hi))
    if members is not None:
        stmt = stmt.where(t.member_id.in_(members))
    return raw_rows(conn, stmt.order_by(t.member_id, chat, t.ts, t.id))


def _parser(conn: Connection) -> Any:
    """Driver timestamp -> aware UTC datetime."""
    if conn.dialect.name == "sqlite":
        def parse(value: str) -> datetime:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return parse
    return lambda value: value.astimezone(UTC) if value.tzinfo is not UTC else value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(conn: Connection, values: Sequence[Any]) -> np.ndarray:
    """Driver timestamps as exact integer microseconds since the epoch."""
    import pandas as pd

    if conn.dialect.name == "sqlite":
        stamps = pd.to_datetime(list(values), format="ISO8601", utc=True)
    else:
        stamps = pd.to_datetime(list(values), utc=True)
    return np.asarray(stamps.as_unit("us").asi8)


def _at(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(micros))


def load_sessions(conn: Connection, tenant: str, bot: int, start: datetime, end: datetime,
                  timeout: timedelta) -> tuple[list[Session], list[float]]:
    """The sessions starting in [start, end), followed past the end while open, and the
    response times of the period's interactions, sorted.

    Boundaries and per-session figures are computed on whole columns (numpy): a Python
    loop over a million rows cost more than reading them."""
    rows = _session_rows(conn, tenant, bot, start - timeout, end)
    if not rows:
        return [], []
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    ids = np.fromiter(cols[0], dtype=np.int64, count=n)
    member = np.fromiter(cols[1], dtype=np.int64, count=n)
    chat = np.fromiter(cols[2], dtype=np.int64, count=n)
    ts = _micros(conn, cols[3])
    intents = cols[4]
    handled = np.fromiter((bool(x) for x in cols[5]), dtype=bool, count=n)
    escalated = np.fromiter((bool(x) for x in cols[6]), dtype=bool, count=n)
    rt = np.fromiter((np.nan if x is None else x for x in cols[7]), dtype=float, count=n)
    start_us = (start - _EPOCH) // timedelta(microseconds=1)
    end_us = (end - _EPOCH) // timedelta(microseconds=1)
    timeout_us = timeout // timedelta(microseconds=1)

    new = np.ones(n, dtype=bool)
    new[1:] = ((member[1:] != member[:-1]) | (chat[1:] != chat[:-1])
               | (ts[1:] - ts[:-1] > timeout_us))
    first = np.flatnonzero(new)
    last = np.append(first[1:], n) - 1
    escalated_any = np.logical_or.reduceat(escalated, first)
    kept: list[Session] = []
    open_: dict[tuple[int, int], Session] = {}
    # Sessions that started before ``start`` belong to the period before: skipped.
    for i in np.flatnonzero(ts[first] >= start_us):
        a, b = int(first[i]), int(last[i])
        session = Session(_at(ts[a]), _at(ts[b]), b - a + 1, bool(escalated_any[i]),
                          bool(handled[b]), intents[b], ids[a:b + 1].tolist())
        kept.append(session)
        if ts[b] + timeout_us >= end_us:
            open_[(int(member[a]), int(chat[a]))] = session
    _follow(conn, tenant, bot, open_, end, timeout, _parser(conn))
    in_period = (ts >= start_us) & ~np.isnan(rt)
    return kept, np.sort(rt[in_period]).tolist()


def _follow(conn: Connection, tenant: str, bot: int, open_: dict[tuple[int, int], Session],
            end: datetime, timeout: timedelta, parse: Any) -> None:
    """Extend sessions still open at ``end`` with their later interactions."""
    cursor = end
    while open_:
        upto = cursor + _FOLLOW_STEP
        members = sorted({k[0] for k in open_})
        for rid, member, chat, raw, intent, handled, escalated, _ in _session_rows(
                conn, tenant, bot, cursor, upto, members):
            session = open_.get((member, chat))
            if session is None:
                continue
            ts = parse(raw)
            if ts - session.last > timeout:
                del open_[(member, chat)]
                continue
            session.add(rid, ts, intent, handled, escalated)
        for k in [k for k, v in open_.items() if v.last + timeout < upto]:
            del open_[k]
        cursor = upto


def load_period(conn: Connection, tenant: str, bot: int, start: datetime, end: datetime,
                timeout: timedelta, attribution_window: timedelta) -> PeriodData:
    t = INTERACTIONS.c
    totals = load_totals(conn, tenant, bot, start, end)
    sessions, times = load_sessions(conn, tenant, bot, start, end, timeout)
    if times:
        # Nearest rank: the value at rank ceil(p * n) in ascending order.
        totals.response_time_p50 = float(times[max(1, math.ceil(0.5 * len(times))) - 1])
        totals.response_time_p95 = float(times[max(1, math.ceil(0.95 * len(times))) - 1])

    new_members = _first_seen_in(conn, tenant, bot, start, end)
    known = conn.execute(
        sa.select(sa.func.count(sa.distinct(t.member_id)))
        .where(t.tenant_id == tenant, t.bot_id == bot, t.ts < end)).scalar_one()

    c, m = CONVERSIONS.c, MEMBERS.c
    buyers = CONVERSIONS.outerjoin(MEMBERS, sa.and_(
        m.tenant_id == c.tenant_id, m.bot_id == c.bot_id, m.member_id == c.member_id))
    purchases = [Purchase(r.value, r.amount_minor, r.currency, r.intent, r.campaign)
                 for r in conn.execute(
                     sa.select(c.value, c.amount_minor, c.currency, c.intent, m.campaign)
                     .select_from(buyers)
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
    f = FEEDBACK.c
    rated = conn.execute(sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(f.csat_rating), 0),
        sa.func.coalesce(sa.func.sum(sa.case((f.csat_rating >= 4, 1), else_=0)), 0))
        .where(f.tenant_id == tenant, f.bot_id == bot, f.ts >= start, f.ts < end)).one()
    return PeriodData(start, end, totals, sessions, len(new_members), known, purchases,
                      triggers, (int(rated[0]), int(rated[1]), int(rated[2])),
                      new_members=new_members)


def tenants_and_bots(conn: Connection, start: datetime, end: datetime
                     ) -> Iterable[tuple[str, int]]:
    """The (tenant, bot) pairs with interactions or conversions in [start, end)."""
    t, c = INTERACTIONS.c, CONVERSIONS.c
    pairs = {(r[0], r[1]) for r in conn.execute(
        sa.select(t.tenant_id, t.bot_id).where(t.ts >= start, t.ts < end).distinct())}
    pairs |= {(r[0], r[1]) for r in conn.execute(
        sa.select(c.tenant_id, c.bot_id).where(c.ts >= start, c.ts < end).distinct())}
    return sorted(pairs)
