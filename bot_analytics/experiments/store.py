"""Experiments in the database: definitions, their state, and the counts analyses need.

The counting happens in SQL: members per variant and day from ``experiment_assignments``
(one index scan), converting members from the conversions joined to their assignment.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..config import ExperimentSettings
from ..storage.db import day_of
from ..storage.queries import ASSIGNMENTS, CONVERSIONS, EXPERIMENTS, FEEDBACK
from . import ExperimentDef

if TYPE_CHECKING:  # at run time imported where counted: numpy and scipy load with it
    from optimizer.stats import Sample

log = logging.getLogger("bot_analytics.experiments")

#: The conversion outcome each metric counts (csat reads ratings; its member counts
#: come with the purchases').
OUTCOME_OF = {"conversion": "purchased", "revenue_per_member": "purchased",
              "resolved": "resolved", "visited": "visited", "csat": "purchased"}


class ExperimentNotFound(LookupError):
    pass


def _row_to_def(row: Any) -> ExperimentDef:
    settings = ExperimentSettings.model_validate(json.loads(row.definition))
    return ExperimentDef(row.tenant_id, row.name, settings, row.source, row.stopped_at,
                         row.winner, row.created_at)


def load_definitions(conn: Connection, tenant_id: str | None = None) -> list[ExperimentDef]:
    """Every stored experiment (of one tenant), oldest first. A definition that no longer
    validates is logged and left out."""
    e = EXPERIMENTS.c
    stmt = sa.select(EXPERIMENTS).order_by(e.created_at, e.id)
    if tenant_id is not None:
        stmt = stmt.where(e.tenant_id == tenant_id)
    out: list[ExperimentDef] = []
    for row in conn.execute(stmt):
        try:
            out.append(_row_to_def(row))
        except ValueError as exc:
            log.error("experiment %s/%s: stored definition is not valid: %s",
                      row.tenant_id, row.name, exc)
    return out


def find(conn: Connection, name: str, tenant_id: str | None = None
         ) -> tuple[int, ExperimentDef]:
    """An experiment by name (and tenant, needed when several tenants use the name)."""
    e = EXPERIMENTS.c
    stmt = sa.select(EXPERIMENTS).where(e.name == name)
    if tenant_id is not None:
        stmt = stmt.where(e.tenant_id == tenant_id)
    rows = list(conn.execute(stmt))
    if not rows:
        where = f" for tenant {tenant_id!r}" if tenant_id else ""
        known = sorted({r[0] for r in conn.execute(sa.select(e.name))})
        hint = f"; known: {', '.join(known)}" if known else "; none is defined yet"
        raise ExperimentNotFound(f"no experiment named {name!r}{where}{hint}")
    if len(rows) > 1:
        tenants = ", ".join(sorted(r.tenant_id for r in rows))
        raise ExperimentNotFound(f"experiment {name!r} exists for several tenants "
                                 f"({tenants}): pass the tenant")
    return int(rows[0].id), _row_to_def(rows[0])


def find_by_id(conn: Connection, test_id: int) -> ExperimentDef:
    row = conn.execute(sa.select(EXPERIMENTS).where(EXPERIMENTS.c.id == test_id)).first()
    if row is None:
        raise ExperimentNotFound(f"no experiment with id {test_id}")
    return _row_to_def(row)


def save_definition(conn: Connection, exp: ExperimentDef, now: datetime, *,
                    replace: bool = True) -> int:
    """Insert an experiment, or update the definition of one that exists (``replace``);
    returns its id. The stopped state is never touched here."""
    e = EXPERIMENTS.c
    existing = conn.execute(sa.select(e.id, e.definition).where(
        e.tenant_id == exp.tenant_id, e.name == exp.name)).first()
    text = exp.definition_json()
    if existing is None:
        result = conn.execute(sa.insert(EXPERIMENTS).values(
            tenant_id=exp.tenant_id, name=exp.name, definition=text, source=exp.source,
            created_at=now, updated_at=now, stopped_at=None, winner=None))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])
    if not replace:
        raise ValueError(f"experiment {exp.name!r} already exists for tenant "
                         f"{exp.tenant_id!r}")
    if existing.definition != text:
        _warn_if_reshuffled(conn, exp, existing.definition)
        conn.execute(sa.update(EXPERIMENTS).where(e.id == existing.id).values(
            definition=text, updated_at=now))
    return int(existing.id)


def _warn_if_reshuffled(conn: Connection, exp: ExperimentDef, old_text: str) -> None:
    old = json.loads(old_text)
    new = json.loads(exp.definition_json())
    arms = [[(v["name"], v.get("weight", 1.0)) for v in d["variants"]] for d in (old, new)]
    if arms[0] == arms[1] and old.get("salt") == new.get("salt"):
        return
    a = ASSIGNMENTS.c
    members = conn.execute(sa.select(sa.func.count()).select_from(ASSIGNMENTS).where(
        a.tenant_id == exp.tenant_id, a.experiment == exp.name)).scalar()
    if members:
        log.warning("experiment %s: its variants, weights or salt changed while %d members "
                    "are assigned; some of them now see another variant than the one they "
                    "are counted in. Start a new experiment (another name or salt) instead.",
                    exp.name, members)


def stop(conn: Connection, test_id: int, winner: str | None, now: datetime) -> None:
    conn.execute(sa.update(EXPERIMENTS).where(EXPERIMENTS.c.id == test_id).values(
        stopped_at=now, winner=winner, updated_at=now))


# -- counting -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """Members and converters per variant over an experiment's window."""

    window_start: datetime | None   #: first exposure
    window_end: datetime            #: the analysis' end (exclusive)
    days: tuple[date, ...]          #: days with a look, in order
    totals: dict[str, Sample]
    #: Members and converters (no values) up to the end of each day, cumulative.
    daily: dict[str, tuple[Sample, ...]]
    exposures: dict[str, int]

    @property
    def days_running(self) -> float:
        if self.window_start is None:
            return 0.0
        return max(0.0, (self.window_end - self.window_start).total_seconds() / 86400)


def _day(value: Any) -> date:
    return date.fromisoformat(str(value)[:10])


def count(conn: Connection, exp: ExperimentDef, end: datetime, *, outcome: str,
          bot_id: int | None = None, daily: bool = True) -> Counts:
    """Members first exposed before ``end``; those of them with ``outcome`` after their
    first exposure and before ``end``, with the sum and sum of squares of the value."""
    from optimizer.stats import Sample

    a, c = ASSIGNMENTS.c, CONVERSIONS.c
    where = [a.tenant_id == exp.tenant_id, a.experiment == exp.name,
             a.first_exposed_at < end]
    if bot_id is not None:
        where.append(a.bot_id == bot_id)
    variants = [v.name for v in exp.settings.variants]
    members: dict[str, dict[date, int]] = {v: defaultdict(int) for v in variants}
    exposures: dict[str, int] = dict.fromkeys(variants, 0)
    first_seen: datetime | None = None
    day = day_of(conn, a.first_exposed_at) if daily else sa.literal("0000-00-00")
    stmt = (sa.select(a.variant, day.label("day"), sa.func.count(), sa.func.sum(a.exposures),
                      sa.func.min(a.first_exposed_at))
            .where(*where).group_by(a.variant, day))
    for variant, day_text, n, shown, first in conn.execute(stmt):
        if variant not in members:  # a variant since removed from the definition
            members[variant] = defaultdict(int)
            exposures[variant] = 0
        key = _day(day_text) if daily else date.min
        members[variant][key] += int(n)
        exposures[variant] += int(shown or 0)
        first_seen = first if first_seen is None else min(first_seen, first)

    # Converters: one row per converting member. The matching conversions (few) are
    # read first and each is looked up in the assignments by primary key; left to
    # itself SQLite would walk the million assignments instead.
    matching = (sa.select(c.member_id, c.ts, c.value)
                .where(c.tenant_id == exp.tenant_id, c.outcome == outcome, c.ts < end)
                .cte("matching_conversions").prefix_with("MATERIALIZED"))
    per_member = (
        sa.select(a.variant.label("variant"),
                  sa.func.min(matching.c.ts).label("first_ts"),
                  sa.func.sum(matching.c.value).label("value"))
        .select_from(matching.join(ASSIGNMENTS, sa.and_(
            a.tenant_id == exp.tenant_id, a.experiment == exp.name,
            a.member_id == matching.c.member_id)))
        .where(*where, matching.c.ts >= a.first_exposed_at)
        .group_by(a.variant, a.member_id)
        .subquery())
    conv_day = day_of(conn, per_member.c.first_ts) if daily else sa.literal("0000-00-00")
    stmt = (sa.select(per_member.c.variant, conv_day.label("day"), sa.func.count(),
                      sa.func.sum(per_member.c.value),
                      sa.func.sum(per_member.c.value * per_member.c.value))
            .group_by(per_member.c.variant, conv_day))
    converters: dict[str, dict[date, tuple[int, float, float]]] = defaultdict(dict)
    for variant, day_text, n, vsum, vsq in conn.execute(stmt):
        key = _day(day_text) if daily else date.min
        converters[variant][key] = (int(n), float(vsum or 0.0), float(vsq or 0.0))

    totals: dict[str, Sample] = {}
    for v, by_day in members.items():
        conv = converters.get(v, {})
        totals[v] = Sample(sum(by_day.values()), sum(x[0] for x in conv.values()),
                           sum(x[1] for x in conv.values()), sum(x[2] for x in conv.values()))
    days: list[date] = []
    series: dict[str, tuple[Sample, ...]] = {v: () for v in members}
    if daily and first_seen is not None:
        last_day = (end - timedelta(microseconds=1)).date()
        d = first_seen.date()
        while d <= last_day:
            days.append(d)
            d += timedelta(days=1)
        for v, by_day in members.items():
            conv = converters.get(v, {})
            cum_n = cum_c = 0
            out: list[Sample] = []
            for d in days:
                cum_n += by_day.get(d, 0)
                cum_c += conv.get(d, (0, 0.0, 0.0))[0]
                out.append(Sample(cum_n, cum_c))
            series[v] = tuple(out)
    return Counts(first_seen, end, tuple(days), totals, series, exposures)


def count_ratings(conn: Connection, exp: ExperimentDef, end: datetime, *,
                  bot_id: int | None = None) -> dict[str, Sample]:
    """Per variant: members who gave CSAT ratings after their first exposure and before
    ``end``, with the sum and sum of squares of each one's mean rating."""
    from optimizer.stats import Sample

    a, f = ASSIGNMENTS.c, FEEDBACK.c
    where = [a.tenant_id == exp.tenant_id, a.experiment == exp.name,
             a.first_exposed_at < end]
    if bot_id is not None:
        where.append(a.bot_id == bot_id)
    per_member = (
        sa.select(a.variant.label("variant"),
                  sa.func.avg(sa.cast(f.csat_rating, sa.Float)).label("rating"))
        .select_from(FEEDBACK.join(ASSIGNMENTS, sa.and_(
            a.tenant_id == f.tenant_id, a.experiment == exp.name,
            a.member_id == f.member_id)))
        .where(*where, f.tenant_id == exp.tenant_id, f.ts < end, f.ts >= a.first_exposed_at)
        .group_by(a.variant, a.member_id)
        .subquery())
    out = {v.name: Sample(0) for v in exp.settings.variants}
    for variant, n, total, squares in conn.execute(
            sa.select(per_member.c.variant, sa.func.count(), sa.func.sum(per_member.c.rating),
                      sa.func.sum(per_member.c.rating * per_member.c.rating))
            .group_by(per_member.c.variant)):
        out[variant] = Sample(int(n), 0, float(total or 0.0), float(squares or 0.0))
    return out

