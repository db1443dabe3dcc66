"""Periods: half-open UTC intervals [start, end) - an hour, a day, an ISO week starting
on Monday, a calendar month."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

PERIODS = ("hourly", "daily", "weekly", "monthly")
ALIASES = {"hour": "hourly", "day": "daily", "week": "weekly", "month": "monthly"}


def normalize(kind: str) -> str:
    kind = ALIASES.get(kind, kind)
    if kind not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)} "
                         f"(or hour, day, week, month), got {kind!r}")
    return kind


def period_start(ts: datetime, kind: str) -> datetime:
    """The start of the period of ``kind`` that contains ``ts``."""
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: periods are in UTC")
    t = ts.astimezone(UTC)
    kind = normalize(kind)
    if kind == "hourly":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "daily":
        return day
    if kind == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(start: datetime, kind: str) -> datetime:
    kind = normalize(kind)
    if kind == "hourly":
        return start + timedelta(hours=1)
    if kind == "daily":
        return start + timedelta(days=1)
    if kind == "weekly":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def periods_between(first: datetime, last: datetime, kind: str) -> Iterator[datetime]:
    """Starts of the periods that overlap [first, last)."""
    start = period_start(first, kind)
    while start < last:
        yield start
        start = period_end(start, kind)
