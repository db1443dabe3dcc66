"""Anomalies and threshold alerts on the daily KPIs (``alerts:`` in config.yaml).

The daily job runs after the daily rollup: for each tenant and bot with KPIs for the day
that just ended, it checks that day for anomalies against the weekly rhythm of the
previous ``history_days`` (``optimizer.anomaly``) and evaluates the threshold rules, and
sends what it finds to the alert chats through the bot, once per alert and day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from optimizer.anomaly import Anomaly, ThresholdRule, detect_anomalies, parse_rule

from .admin.text import esc
from .kpis.periods import period_end, period_start
from .kpis.queries import format_value, relative_change
from .kpis.rollup import KPI_METRICS

if TYPE_CHECKING:
    from .config import Settings
    from .plugin import Analytics

log = logging.getLogger("bot_analytics.alerts")

UNITS = {"daily": "day", "weekly": "week", "monthly": "month"}

#: Counts: a day without a row had none.
COUNTS = frozenset({"interactions", "sessions", "active_users", "new_users", "conversions",
                    "revenue"})


def daily_series(engine: Engine, tenant: str, bot: int, metrics: list[str], first: date,
                 last: date) -> tuple[list[date], dict[str, list[float | None]]]:
    """Each metric's daily total from ``kpi_metrics``, ``first`` (or the first day with
    KPIs, if later) to ``last`` inclusive; missing days are 0 for counts and None for
    rates and times."""
    k = KPI_METRICS.c
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(k.period_start, k.metric_type, k.metric_value).where(
            k.tenant_id == tenant, k.bot_id == bot, k.aggregation_period == "daily",
            k.dimension.is_(None), k.metric_type.in_(metrics), k.period_start >= start,
            k.period_start < end)).all()
    values = {(r.period_start.date(), r.metric_type): float(r.metric_value) for r in rows}
    # The series starts on the first day with KPIs: the days before the bot existed
    # are no history of zeros.
    first = max(first, min((d for d, _ in values), default=last))
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return days, {m: [values.get((d, m), 0.0 if m in COUNTS else None) for d in days]
                  for m in metrics}


def find_anomalies(engine: Engine, settings: Settings, tenant: str, bot: int, since: date,
                   until: date) -> list[Anomaly]:
    """Anomalies of the configured metrics on the days ``since`` to ``until``, each
    against the ``history_days`` before it."""
    a = settings.alerts
    days, series = daily_series(engine, tenant, bot, a.metrics,
                                since - timedelta(days=a.history_days), until)
    found: list[Anomaly] = []
    for metric in a.metrics:
        found += detect_anomalies(metric, days, series[metric],
                                  threshold=a.anomaly_threshold, since=since)
    return sorted(found, key=lambda x: (x.day, -abs(x.score)))


@dataclass(frozen=True)
class Alert:
    tenant_id: str
    bot_id: int
    day: date
    key: str          #: what it is about, for sending it once
    text: str         #: HTML


def _latest(engine: Engine, tenant: str, bot: int, metric: str, kind: str,
            start: datetime) -> tuple[float | None, float | None]:
    """The metric's total in the period of ``kind`` starting at ``start`` and the one
    before."""
    k = KPI_METRICS.c
    before = period_start(start - timedelta(microseconds=1), kind)
    with engine.connect() as conn:
        rows = {r.period_start: float(r.metric_value) for r in conn.execute(
            sa.select(k.period_start, k.metric_value).where(
                k.tenant_id == tenant, k.bot_id == bot, k.aggregation_period == kind,
                k.dimension.is_(None), k.metric_type == metric,
                k.period_start.in_([start, before])))}
    return rows.get(start), rows.get(before)


def evaluate_rule(engine: Engine, tenant: str, bot: int, rule: ThresholdRule,
                  day: date) -> Alert | None:
    """The rule on the day that just ended: the day's value, or the change of the
    latest whole week or month ending by then against the one before."""
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    if rule.change is None:
        value, _ = _latest(engine, tenant, bot, rule.metric, "daily", end - timedelta(days=1))
        if value is None or not rule.breached(value):
            return None
        text = (f"⚠️ <b>{esc(rule.metric)}</b> was {esc(format_value(rule.metric, value))} "
                f"on {day:%Y-%m-%d} (rule: <code>{esc(rule.text)}</code>)")
        return Alert(tenant, bot, day, f"rule:{rule.text}", text)
    start = period_start(end, rule.change)
    if period_end(start, rule.change) > end:   # the current period is not over
        start = period_start(start - timedelta(microseconds=1), rule.change)
    if period_end(start, rule.change) != end:
        return None   # judged on the day its period ends, once
    value, previous = _latest(engine, tenant, bot, rule.metric, rule.change, start)
    if value is None or previous is None:
        return None
    change = relative_change(value, previous)
    if change is None or not rule.breached(change):
        return None
    unit = UNITS[rule.change]
    text = (f"⚠️ <b>{esc(rule.metric)}</b> {change:+.1%} {unit} over {unit}: "
            f"{esc(format_value(rule.metric, value))} "
            f"in the period from {start:%Y-%m-%d}, after "
            f"{esc(format_value(rule.metric, previous))} (rule: <code>{esc(rule.text)}</code>)")
    return Alert(tenant, bot, day, f"rule:{rule.text}", text)


def describe(anomaly: Anomaly) -> str:
    arrow = "📈" if anomaly.direction == "spike" else "📉"
    return (f"{arrow} <b>{esc(anomaly.metric)}</b> {anomaly.direction} on "
            f"{anomaly.day:%Y-%m-%d}: {esc(format_value(anomaly.metric, anomaly.value))}, "
            f"expected about {esc(format_value(anomaly.metric, anomaly.expected))} for the "
            f"weekday (robust z {anomaly.score:+.1f})")


def check_day(engine: Engine, settings: Settings, tenant: str, bot: int, day: date
              ) -> list[Alert]:
    """Every alert for one tenant, bot and day."""
    out = [Alert(tenant, bot, day, f"anomaly:{a.metric}", describe(a))
           for a in find_anomalies(engine, settings, tenant, bot, day, day)]
    for text in settings.alerts.rules:
        alert = evaluate_rule(engine, tenant, bot, parse_rule(text), day)
        if alert is not None:
            out.append(alert)
    return out


def pairs_with_kpis(engine: Engine, day: date) -> list[tuple[str, int]]:
    k = KPI_METRICS.c
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with engine.connect() as conn:
        return sorted((r[0], int(r[1])) for r in conn.execute(
            sa.select(k.tenant_id, k.bot_id).where(k.aggregation_period == "daily",
                                                   k.period_start == start).distinct()))


async def send_alerts(analytics: Analytics, now: datetime | None = None) -> dict[str, int]:
    """Check the day that ended before ``now`` and send its alerts; returns how many
    deliveries ended how."""
    from .reports.deliver import Piece, Target, deliver

    now = now or datetime.now(UTC)
    day = (period_start(now, "daily") - timedelta(days=1)).date()
    chats = analytics.settings.alert_chats
    outcome: dict[str, int] = {}
    if not chats:
        return outcome

    def work() -> list[Alert]:
        alerts: list[Alert] = []
        for tenant, bot in pairs_with_kpis(analytics.engine, day):
            alerts += check_day(analytics.engine, analytics.settings, tenant, bot, day)
        return alerts

    alerts = await analytics.writer.run_in_worker(work)
    for alert in alerts:
        bot = analytics.bot_for(alert.tenant_id, alert.bot_id)
        if bot is None:
            log.warning("bot-analytics: no running bot %s to send an alert with",
                        alert.bot_id)
            continue
        for chat in chats:
            target = Target(alert.tenant_id, "alert", alert.key,
                            datetime(day.year, day.month, day.day, tzinfo=UTC), chat)
            status = await deliver(analytics.engine, bot, target, [Piece(alert.text)],
                                   now=now, counters=analytics.delivery_counters,
                                   run=analytics.writer.run_in_worker)
            outcome[status] = outcome.get(status, 0) + 1
    return outcome
