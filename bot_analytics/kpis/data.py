"""Loading one period's raw rows for the KPI families.

Sessions are built from timestamps by the definition (KPIS.md: each interaction of a
member in a chat follows the previous by at most the session timeout), not taken from
the writer's online ``session_id``, so late or replayed data cannot bend them. A session
belongs to the period in which it starts; its interactions after the period's end are
followed until it closes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..storage.db import (
    day_of,
    epoch_micros,
    raw_rows,
    read_columns,
    tenant_bot_pairs,
)
from ..storage.queries import CONVERSIONS, FEEDBACK, INTERACTIONS, MEMBERS
from .common import nearest_rank

# How far past the period's end one query follows sessions that are still open.
_FOLLOW_STEP = timedelta(hours=6)


_NO_INT = np.empty(0, dtype=np.int64)
_NO_BOOL = np.empty(0, dtype=bool)


@dataclass
class Sessions:
    """The sessions of a period as columns, one entry per session, and which session
    each of their interactions belongs to (to find the sessions that led to an
    outcome)."""

    last: np.ndarray = field(default_factory=lambda: _NO_INT)  # epoch microseconds
    size: np.ndarray = field(default_factory=lambda: _NO_INT)  # interactions
    escalated: np.ndarray = field(default_factory=lambda: _NO_BOOL)
    last_handled: np.ndarray = field(default_factory=lambda: _NO_BOOL)
    last_intent: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    #: Interaction ids of every session's interactions, and the session of each.
    row_ids: np.ndarray = field(default_factory=lambda: _NO_INT)
    row_session: np.ndarray = field(default_factory=lambda: _NO_INT)

    def __len__(self) -> int:
        return len(self.size)

    def led_to(self, interaction_ids: Iterable[int]) -> np.ndarray:
        """Per session: whether one of its interactions is among ``interaction_ids``."""
        wanted = np.fromiter(interaction_ids, dtype=np.int64)
        hit = np.zeros(len(self), dtype=bool)
        hit[self.row_session[np.isin(self.row_ids, wanted)]] = True
        return hit


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
    sessions: Sessions               # sessions starting in [start, end)
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


RETENTION_DAYS = (1, 7, 30)


def _members_between(tenant: str, bot: int, start: datetime, end: datetime
                     ) -> sa.Select[Any]:
    """The distinct members with interactions in [start, end). ``member_id + 0``: a
    plain column lets SQLite's planner walk the (tenant, bot, member) index for its
    order, through every row of the bot, instead of the period's range of the (tenant,
    bot, time) index."""
    t = INTERACTIONS.c
    return sa.select((t.member_id + 0).label("member_id")).where(
        t.tenant_id == tenant, t.bot_id == bot, t.ts >= start, t.ts < end).distinct()


@dataclass
class FirstSeen:
    """When each member of a bot first interacted with it: member ids and epoch
    microseconds, one entry per member."""

    members: np.ndarray
    first: np.ndarray

    def known_before(self, end: datetime) -> int:
        """How many members interacted with the bot before ``end``."""
        return int(np.count_nonzero(self.first < _us(end)))

    def new_in(self, start: datetime, end: datetime) -> set[int]:
        """The members whose first interaction ever is in [start, end) (a cohort)."""
        hit = (self.first >= _us(start)) & (self.first < _us(end))
        return set(self.members[hit].tolist())


def first_seen(conn: Connection, tenant: str, bot: int) -> FirstSeen:
    """Every member's first interaction with the bot.

    A grouped ``min(ts)`` over the bot's rows would cost as much as the whole table;
    instead the bot's member ids are walked in the order of the (tenant, bot, member,
    time) index, one probe each (a loose index scan), and each member's first row is the
    first entry of its stretch of that index: the cost follows the number of members,
    not of interactions. New users, members known at a period's end and the cohorts of
    earlier days are all read off this one walk."""
    t = INTERACTIONS.c
    start = sa.select(sa.func.min(t.member_id).label("id")).where(
        t.tenant_id == tenant, t.bot_id == bot)
    ids = start.cte("member_ids", recursive=True)
    after = sa.select(sa.func.min(t.member_id)).where(
        t.tenant_id == tenant, t.bot_id == bot, t.member_id > ids.c.id).scalar_subquery()
    ids = ids.union_all(sa.select(after).where(ids.c.id.is_not(None)))
    row = INTERACTIONS.alias("row")
    first = sa.select(sa.func.min(row.c.ts)).where(
        row.c.tenant_id == tenant, row.c.bot_id == bot, row.c.member_id == ids.c.id
    ).scalar_subquery()
    walked = sa.select(ids.c.id, first.label("first")).where(ids.c.id.is_not(None)).subquery()
    members, first_us = read_columns(
        conn, sa.select(walked.c.id, epoch_micros(conn, walked.c.first)), ("int", "int"))
    return FirstSeen(members, first_us)


@dataclass
class Memo:
    """What one rollup run reads once and uses for several periods: each bot's
    first-seen table, and the members active in a span (tenant, bot, start, end)."""

    first_seen: dict[tuple[str, int], FirstSeen] = field(default_factory=dict)
    active: dict[tuple[str, int, datetime, datetime], set[int]] = field(default_factory=dict)

    def seen(self, conn: Connection, tenant: str, bot: int) -> FirstSeen:
        if (tenant, bot) not in self.first_seen:
            self.first_seen[tenant, bot] = first_seen(conn, tenant, bot)
        return self.first_seen[tenant, bot]

    def members(self, conn: Connection, tenant: str, bot: int, start: datetime,
                end: datetime) -> set[int]:
        key = (tenant, bot, start, end)
        if key not in self.active:
            self.active[key] = {row[0] for row in raw_rows(
                conn, _members_between(tenant, bot, start, end))}
        return self.active[key]


def load_retention(conn: Connection, tenant: str, bot: int, day: datetime, now: datetime,
                   days: tuple[int, ...] = RETENTION_DAYS, memo: Memo | None = None
                   ) -> dict[int, tuple[int, int]]:
    """Of the members whose first interaction ever (with this bot) is on ``day``, how
    many interacted on day + N, for each N whose day has ended by ``now``."""
    due = [n for n in days if day + timedelta(days=n + 1) <= now]
    if not due:
        return {}
    memo = memo if memo is not None else Memo()
    members = memo.seen(conn, tenant, bot).new_in(day, day + timedelta(days=1))
    if not members:
        return {}
    out: dict[int, tuple[int, int]] = {}
    for n in due:
        lo = day + timedelta(days=n)
        back = memo.members(conn, tenant, bot, lo, lo + timedelta(days=1))
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
        sa.func.count(), count_if(sa.or_(t.intent == "unknown", sa.not_(t.handled))),
        count_if(t.error.is_not(None)),
        sa.func.count(t.response_time_ms), sa.func.coalesce(sa.func.sum(t.response_time_ms), 0),
        sa.func.count(t.sentiment_score), sa.func.coalesce(sa.func.sum(t.sentiment_score), 0),
        count_if(t.sentiment == "positive"), count_if(t.sentiment == "neutral"),
        count_if(t.sentiment == "negative")).where(*where)).one()
    # Active users are counted from the period's member column (load_sessions).
    return Totals(int(row[0]), 0, int(row[1]), int(row[2]), int(row[3]), float(row[4]),
                  None, None, int(row[5]), float(row[6]),
                  {"positive": int(row[7]), "neutral": int(row[8]), "negative": int(row[9])})


# The columns sessions are built from, in this order.
_ID, _MEMBER, _CHAT, _TS, _INTENT, _HANDLED, _ESCALATED, _RT = range(8)
# Open sessions' members asked for at a time: SQLite takes at most 32,766 parameters.
_SLICE = 10_000


def _session_columns(conn: Connection, tenant: str, bot: int, lo: datetime, hi: datetime,
                     members: np.ndarray | None = None) -> list[np.ndarray]:
    """The interactions in [lo, hi) as columns: id, member, chat, epoch microseconds,
    intent, handled, escalated, response time (NaN: no reply)."""
    t = INTERACTIONS.c
    stmt = sa.select(t.id, t.member_id, sa.func.coalesce(t.chat_id, t.member_id),
                     epoch_micros(conn, t.ts), t.intent, sa.cast(t.handled, sa.Integer),
                     sa.cast(t.escalated, sa.Integer), t.response_time_ms).where(
        t.tenant_id == tenant, t.bot_id == bot, t.ts >= lo, t.ts < hi)
    kinds = ("int", "int", "int", "int", "text", "int", "int", "float")
    if members is None:
        return read_columns(conn, stmt, kinds)
    parts = [read_columns(conn, stmt.where(t.member_id.in_(members[i:i + _SLICE].tolist())),
                          kinds) for i in range(0, len(members), _SLICE)]
    return [np.concatenate(column) for column in zip(*parts, strict=True)]


def _split(cols: list[np.ndarray], timeout_us: int
           ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Sort rows into session order (member, chat, time, id) and return them with the
    index of each session's first and last row."""
    order = np.lexsort((cols[_ID], cols[_TS], cols[_CHAT], cols[_MEMBER]))
    cols = [c[order] for c in cols]
    member, chat, ts = cols[_MEMBER], cols[_CHAT], cols[_TS]
    new = np.ones(len(ts), dtype=bool)
    new[1:] = ((member[1:] != member[:-1]) | (chat[1:] != chat[:-1])
               | (ts[1:] - ts[:-1] > timeout_us))
    first = np.flatnonzero(new)
    return cols, first, np.append(first[1:], len(ts)) - 1


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def load_sessions(conn: Connection, tenant: str, bot: int, start: datetime, end: datetime,
                  timeout: timedelta) -> tuple[Sessions, list[float], set[int]]:
    """The sessions starting in [start, end), followed past the end while open; the
    response times of the period's interactions, sorted; the period's members.

    Rows are read as columns and sessions found on whole arrays (numpy): building a
    Python object per row or per session cost more than the query."""
    timeout_us = timeout // timedelta(microseconds=1)
    start_us, end_us = _us(start), _us(end)
    cols = _session_columns(conn, tenant, bot, start - timeout, end)
    in_period = cols[_TS] >= start_us
    times = np.sort(cols[_RT][in_period & ~np.isnan(cols[_RT])]).tolist()
    period_members = set(np.unique(cols[_MEMBER][in_period]).tolist())
    done: list[tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]] = []
    hi = end
    while len(cols[_ID]):
        cols, first, last = _split(cols, timeout_us)
        ts = cols[_TS]
        # Sessions that started before ``start`` belong to the period before, and those
        # starting at ``end`` or later to the next.
        kept = (ts[first] >= start_us) & (ts[first] < end_us)
        open_ = kept & (ts[last] + timeout_us >= _us(hi))
        done.append((cols, first, last, kept & ~open_))
        if not open_.any():
            break
        # Follow the open sessions into the next stretch: their rows and their members'
        # later rows are split again.
        row_open = np.repeat(open_, last - first + 1)
        members = np.unique(cols[_MEMBER][first[open_]])
        later = _session_columns(conn, tenant, bot, hi, hi + _FOLLOW_STEP, members)
        cols = [np.concatenate((c[row_open], x)) for c, x in zip(cols, later, strict=True)]
        hi += _FOLLOW_STEP
    return _assemble(done), times, period_members


def _assemble(parts: list[tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]]
              ) -> Sessions:
    """The chosen sessions of each split, as one set of columns."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in (
        "last", "size", "escalated", "last_handled", "last_intent", "row_ids",
        "row_session")}
    offset = 0
    for cols, first, last, chosen in parts:
        sizes = last - first + 1
        b = last[chosen]
        out["last"].append(cols[_TS][b])
        out["size"].append(sizes[chosen])
        out["escalated"].append(
            np.logical_or.reduceat(cols[_ESCALATED].astype(bool), first)[chosen])
        out["last_handled"].append(cols[_HANDLED][b].astype(bool))
        out["last_intent"].append(cols[_INTENT][b])
        # Row -> its session's number among the chosen ones (-1: not chosen).
        number = np.full(len(first), -1, dtype=np.int64)
        number[chosen] = np.arange(offset, offset + int(chosen.sum()))
        row_number = np.repeat(number, sizes)
        mine = row_number >= 0
        out["row_ids"].append(cols[_ID][mine])
        out["row_session"].append(row_number[mine])
        offset += int(chosen.sum())
    if not parts:
        return Sessions()
    return Sessions(**{k: np.concatenate(v) for k, v in out.items()})


def load_period(conn: Connection, tenant: str, bot: int, start: datetime, end: datetime,
                timeout: timedelta, attribution_window: timedelta, memo: Memo | None = None
                ) -> PeriodData:
    """Everything the KPI families read for one period. ``memo`` keeps the bot's
    first-seen table and the period's members for later periods of the same run."""
    memo = memo if memo is not None else Memo()
    totals = load_totals(conn, tenant, bot, start, end)
    sessions, times, members = load_sessions(conn, tenant, bot, start, end, timeout)
    totals.active_users = len(members)
    memo.active[tenant, bot, start, end] = members
    if times:
        # Nearest rank: the value at rank ceil(p * n) in ascending order.
        totals.response_time_p50 = float(nearest_rank(times, 0.5))
        totals.response_time_p95 = float(nearest_rank(times, 0.95))

    seen = memo.seen(conn, tenant, bot)

    c, m = CONVERSIONS.c, MEMBERS.c
    buyers = CONVERSIONS.outerjoin(MEMBERS, sa.and_(
        m.tenant_id == c.tenant_id, m.bot_id == c.bot_id, m.member_id == c.member_id))
    purchases = [Purchase(r.value, r.amount_minor, r.currency, r.intent, r.campaign)
                 for r in conn.execute(
                     sa.select(c.value, c.amount_minor, c.currency, c.intent, m.campaign)
                     .select_from(buyers)
                     .where(c.tenant_id == tenant, c.bot_id == bot, c.outcome == "purchased",
                            c.ts >= start, c.ts < end))]
    last_seen = (_EPOCH + timedelta(microseconds=int(sessions.last.max()))
                 if len(sessions) else end)
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
    return PeriodData(start, end, totals, sessions, len(seen.new_in(start, end)),
                      seen.known_before(end), purchases, triggers,
                      (int(rated[0]), int(rated[1]), int(rated[2])))


def tenants_and_bots(conn: Connection, start: datetime, end: datetime
                     ) -> Iterable[tuple[str, int]]:
    """The (tenant, bot) pairs with interactions or conversions in [start, end)."""
    return sorted(set(_active_pairs(conn, INTERACTIONS, start, end))
                  | set(_active_pairs(conn, CONVERSIONS, start, end)))


def _active_pairs(conn: Connection, table: sa.Table, start: datetime, end: datetime
                  ) -> Iterable[tuple[str, int]]:
    """The (tenant, bot) pairs of ``table`` with a row in [start, end): each pair's first
    row from ``start`` on, by its (tenant, bot, time) index. (An EXISTS over the range
    can make PostgreSQL's planner expect an early hit and scan the table instead.)"""
    t = table.c
    for tenant, bot in tenant_bot_pairs(conn, table):
        first = conn.execute(sa.select(sa.func.min(t.ts)).where(
            t.tenant_id == tenant, t.bot_id == bot, t.ts >= start)).scalar()
        if first is not None and first < end:
            yield tenant, bot
