"""Assembling a report: one tenant and bot, one whole period, the sections asked for.

Sections: ``summary`` (the headline KPIs with their change against the period before,
and the daily charts), ``anomalies`` (the days that broke the weekly rhythm, as the
alerts find them), ``experiments`` (each running experiment's decision and chart),
``recommendations`` (the latest optimizer run's, with the chart of intents by
conversion) and ``unknown`` (clusters of the messages the bot did not understand).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..kpis.periods import normalize, period_end, period_start
from ..kpis.queries import format_value, relative_change
from ..kpis.rollup import KPI_METRICS, compute_period

if TYPE_CHECKING:
    from optimizer.anomaly import Anomaly

    from ..config import Settings
    from ..nlp.unknown import UnknownReport

log = logging.getLogger("bot_analytics.reports")

#: The summary's KPIs, in this order.
HEADLINE = ("interactions", "active_users", "new_users", "sessions", "conversion_rate",
            "conversions", "revenue", "csat_avg", "containment_rate",
            "sentiment_positive_rate", "sentiment_negative_rate", "response_time_p95_ms")
PERIOD_WORDS = {"day": "daily", "week": "weekly", "month": "monthly"}


@dataclass(frozen=True)
class SummaryRow:
    metric: str
    value: float
    previous: float | None

    @property
    def change(self) -> float | None:
        return relative_change(self.value, self.previous)

    @property
    def formatted(self) -> str:
        return format_value(self.metric, self.value)


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    png: bytes


@dataclass(frozen=True)
class ExperimentLine:
    name: str
    status: str
    members: int
    decision: str
    winner: str | None
    action: str


@dataclass
class Report:
    tenant_id: str
    bot_id: int
    kind: str                  #: daily, weekly or monthly
    start: datetime
    end: datetime
    sections: list[str]
    summary: list[SummaryRow] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    experiments: list[ExperimentLine] = field(default_factory=list)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    optimizer_run: str | None = None   #: when and over what the recommendations were made
    unknown: UnknownReport | None = None
    charts: list[Chart] = field(default_factory=list)

    @property
    def title(self) -> str:
        word = {"daily": "Daily", "weekly": "Weekly", "monthly": "Monthly"}[self.kind]
        last = self.end - timedelta(days=1)
        span = (f"{self.start:%Y-%m-%d}" if self.kind == "daily"
                else f"{self.start:%Y-%m-%d} to {last:%Y-%m-%d}")
        return f"{word} report, {span}"

    def as_dict(self) -> dict[str, Any]:
        from optimizer.results import plain

        return {
            "title": self.title, "tenant_id": self.tenant_id, "bot_id": self.bot_id,
            "period": self.kind, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "sections": self.sections,
            "summary": [{"metric": r.metric, "value": r.value, "previous": r.previous,
                         "change": r.change} for r in self.summary],
            "anomalies": [plain(a) for a in self.anomalies],
            "experiments": [plain(e) for e in self.experiments],
            "recommendations": self.recommendations, "optimizer_run": self.optimizer_run,
            "unknown": self.unknown.as_dict() if self.unknown is not None else None,
            "charts": [{"name": c.name, "title": c.title} for c in self.charts],
        }


def last_whole_period(kind: str, now: datetime) -> datetime:
    """The start of the last whole period of ``kind`` before ``now``."""
    return period_start(period_start(now, kind) - timedelta(microseconds=1), kind)


def busiest_bot(engine: Engine, tenant: str, start: datetime, end: datetime) -> int | None:
    """The tenant's bot with the most interactions in the period."""
    from ..storage.queries import INTERACTIONS

    t = INTERACTIONS.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.bot_id, sa.func.count().label("n"))
                           .where(t.tenant_id == tenant, t.ts >= start, t.ts < end)
                           .group_by(t.bot_id).order_by(sa.desc("n")).limit(1)).first()
    return None if row is None else int(row[0])


def _kpis(engine: Engine, settings: Settings, tenant: str, bot: int, kind: str,
          start: datetime, now: datetime) -> dict[str, float]:
    """The period's KPI totals: stored by the rollup, else computed now."""
    k = KPI_METRICS.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(k.metric_type, k.metric_value).where(
            k.tenant_id == tenant, k.bot_id == bot, k.aggregation_period == kind,
            k.period_start == start, k.dimension.is_(None))).all()
    if rows:
        return {r.metric_type: float(r.metric_value) for r in rows}
    m = settings.metrics
    computed = compute_period(engine, tenant, bot, kind, start,
                              session_timeout=timedelta(minutes=m.session_timeout_minutes),
                              attribution_window=timedelta(hours=m.attribution_window_hours),
                              now=now)
    return {x.metric: float(x.value) for x in computed
            if x.dimension is None and x.category != "experiments"}


def build_report(engine: Engine, settings: Settings, tenant_id: str, period: str = "week", *,
                 bot_id: int | None = None, start: datetime | None = None,
                 now: datetime | None = None, sections: list[str] | None = None,
                 charts: bool = True) -> Report:
    """The report of the last whole ``period`` (day, week or month) before ``now``, or
    of the one starting at ``start``. Raises ValueError when the tenant has no data."""
    kind = normalize(PERIOD_WORDS.get(period, period))
    now = now or datetime.now(UTC)
    start = period_start(start, kind) if start is not None else last_whole_period(kind, now)
    end = period_end(start, kind)
    if bot_id is None:
        bot_id = busiest_bot(engine, tenant_id, start, end)
        if bot_id is None:
            raise ValueError(f"tenant {tenant_id!r} has no interactions from "
                             f"{start:%Y-%m-%d} to {end:%Y-%m-%d}")
    wanted = sections or ["summary", "anomalies", "experiments", "recommendations",
                          "unknown"]
    report = Report(tenant_id, bot_id, kind, start, end, list(wanted))
    previous = period_start(start - timedelta(microseconds=1), kind)
    # A day alone makes no chart: daily charts cover at least two weeks.
    first_day = min(start.date(), end.date() - timedelta(days=14))
    last_day = end.date() - timedelta(days=1)
    if "summary" in wanted:
        now_values = _kpis(engine, settings, tenant_id, bot_id, kind, start, now)
        before = _kpis(engine, settings, tenant_id, bot_id, kind, previous, now)
        report.summary = [SummaryRow(m, now_values[m], before.get(m)) for m in HEADLINE
                          if m in now_values]
        if charts:
            _summary_charts(engine, report, first_day, last_day)
    if "anomalies" in wanted:
        from ..alerts import find_anomalies

        report.anomalies = find_anomalies(engine, settings, tenant_id, bot_id, start.date(),
                                          last_day)
    if "experiments" in wanted:
        _experiments(engine, report, now, charts)
    if "recommendations" in wanted:
        _recommendations(engine, settings, report, charts)
    if "unknown" in wanted:
        from ..nlp.unknown import cluster_messages, load_unknown_texts

        texts = load_unknown_texts(engine, start, end, tenant_id=tenant_id, bot_id=bot_id,
                                   unknown_label=settings.intents.unknown_label)
        report.unknown = cluster_messages(texts, max_clusters=6)
    return report


def _summary_charts(engine: Engine, report: Report, first: date, last: date) -> None:
    from ..admin.charts import daily_chart, sentiment_chart
    from ..alerts import daily_series

    days, series = daily_series(engine, report.tenant_id, report.bot_id,
                                ["interactions", "conversions", "sentiment_positive_rate",
                                 "sentiment_neutral_rate", "sentiment_negative_rate"],
                                first, last)
    if len(days) < 2 or not any(series["interactions"]):
        return
    report.charts.append(Chart("daily", "Interactions and purchases by day", daily_chart(
        "Interactions and purchases by day", days,
        {"interactions": [v or 0.0 for v in series["interactions"]],
         "purchases": [v or 0.0 for v in series["conversions"]]})))
    scored = [i for i, d in enumerate(days) if series["sentiment_positive_rate"][i] is not None]
    if len(scored) >= 2:
        shares = {label: [series[f"sentiment_{label}_rate"][i] or 0.0 for i in scored]
                  for label in ("positive", "neutral", "negative")}
        report.charts.append(Chart("sentiment", "Sentiment of messages by day",
                                   sentiment_chart("Sentiment of messages by day",
                                                   [days[i] for i in scored], shares)))


def _experiments(engine: Engine, report: Report, now: datetime, charts: bool) -> None:
    from ..admin.charts import experiment_chart
    from ..experiments import store as exp_store
    from ..experiments.analysis import analyze

    with engine.connect() as conn:
        defs = exp_store.load_definitions(conn, report.tenant_id)
    for exp in defs:
        if exp.stopped_at is not None and exp.stopped_at < report.start:
            continue
        r = analyze(engine, exp.name, tenant_id=report.tenant_id, now=min(now, report.end),
                    bayes_draws=0)
        members = sum(v.assigned or v.members for v in r.primary.variants)
        report.experiments.append(ExperimentLine(r.name, r.status, members, r.decision,
                                                 r.winner, r.recommended_action))
        if charts and r.daily and len(report.charts) < 8:
            report.charts.append(Chart(f"experiment-{r.name}", f"Experiment {r.name}",
                                       experiment_chart(r.name, r.daily, r.primary.control)))


def _recommendations(engine: Engine, settings: Settings, report: Report, charts: bool) -> None:
    from ..optimize import latest_run

    run = latest_run(engine, report.tenant_id)
    if run is None:
        return
    report.optimizer_run = (f"optimizer run {run.id} of {run.created_at:%Y-%m-%d %H:%M} UTC "
                            f"over {run.period_start:%Y-%m-%d} to {run.period_end:%Y-%m-%d}")
    report.recommendations = list(run.result.get("recommendations", []))[:5]
    if not charts:
        return
    from optimizer import load_data
    from optimizer.monetization import intent_conversions

    from ..admin.charts import intents_chart

    m = settings.metrics
    data = load_data(engine, report.tenant_id, report.start, report.end, bot_id=report.bot_id,
                     session_timeout=timedelta(minutes=m.session_timeout_minutes),
                     attribution_window=timedelta(hours=m.attribution_window_hours),
                     with_text=False)
    rows = intent_conversions(data, settings.optimizer.funnel_intents)[:10]
    if len(rows) >= 2 and any(r.conversions for r in rows):
        report.charts.append(Chart("intents", "Conversion by intent", intents_chart(
            "Sessions that bought, by intent",
            [(r.intent, r.sessions, r.rate, r.ci_low, r.ci_high) for r in rows])))
