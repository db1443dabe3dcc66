"""Running the optimizer over the plugin's database and keeping what it found.

The analyses live in ``optimizer`` (pure statistics over frames); this module feeds them
the tenant's experiments, stores each run in ``optimization_runs`` and the members'
segments in ``member_segments``, and reads them back for the commands and the reports.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .storage.models import MemberSegment, OptimizationRun

if TYPE_CHECKING:
    from optimizer import ExperimentFinding, OptimizationReport

    from .config import Settings

log = logging.getLogger("bot_analytics.optimize")

RUNS = OptimizationRun.__table__  # type: ignore[attr-defined]
SEGMENTS = MemberSegment.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StoredRun:
    id: int
    tenant_id: str
    bot_id: int | None
    period_start: datetime
    period_end: datetime
    created_at: datetime
    source: str
    seconds: float
    result: dict[str, Any]
    error: str | None


def experiment_findings(engine: Engine, tenant_id: str, now: datetime
                        ) -> list[ExperimentFinding]:
    """The tenant's running experiments, as the recommendations read them."""
    from optimizer import ExperimentFinding

    from .experiments import store as exp_store
    from .experiments.analysis import analyze

    with engine.connect() as conn:
        defs = exp_store.load_definitions(conn, tenant_id)
    out: list[ExperimentFinding] = []
    for exp in defs:
        if exp.stopped_at is not None:
            continue
        report = analyze(engine, exp.name, tenant_id=tenant_id, now=now, bayes_draws=0)
        r = report.primary
        comparison = next((c for c in r.comparisons if c.variant == r.winner), None)
        arms = {v.name: v.members for v in r.variants}
        span = (report.window_end - (report.window_start or report.window_end))
        weeks = max(span.total_seconds() / (7 * 86400), 1 / 7)
        members = arms.get(r.winner or "", 0) + arms.get(r.control, 0)
        out.append(ExperimentFinding(
            exp.name, r.metric, r.decision, r.winner, r.control,
            comparison.difference if comparison else None,
            comparison.ci_low if comparison else None,
            comparison.ci_high if comparison else None,
            comparison.sequential_p_adjusted if comparison else None, members / weeks))
    return out


def tenants_with_data(engine: Engine, start: datetime, end: datetime) -> list[str]:
    from .storage.queries import INTERACTIONS

    t = INTERACTIONS.c
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(
            sa.select(t.tenant_id).where(t.ts >= start, t.ts < end).distinct()))


def optimize(engine: Engine, settings: Settings, tenant_id: str, *,
             start: datetime | None = None, end: datetime | None = None,
             bot_id: int | None = None, source: str = "api", store: bool = True,
             now: datetime | None = None, progress: Callable[[str], None] | None = None
             ) -> tuple[OptimizationReport, int | None]:
    """Run every analysis for a tenant over ``[start, end)`` (default: the last
    ``optimizer.days`` days before ``now``); store it unless ``store=False``. Returns the
    report and the stored run's id."""
    from optimizer import BotOptimizer

    o, m = settings.optimizer, settings.metrics
    now = now or datetime.now(UTC)
    end = end or now
    start = start or end - timedelta(days=o.days)
    if end <= start:
        raise ValueError(f"the period is empty: {start.isoformat()} to {end.isoformat()}")
    optimizer = BotOptimizer(
        engine, days=o.days, bot_id=bot_id,
        session_timeout=timedelta(minutes=m.session_timeout_minutes),
        attribution_window=timedelta(hours=m.attribution_window_hours), fdr=o.fdr,
        min_support=o.min_support, funnel_intents=o.funnel_intents,
        containment_target=o.containment_target, seed=o.seed)
    try:
        findings = experiment_findings(engine, tenant_id, end)
    except Exception:  # the experiments must not keep the rest from being found
        log.exception("bot-analytics: reading the experiments for the optimizer failed")
        findings = []
    report = optimizer.run(tenant_id, start, end, experiments=findings, progress=progress)
    run_id = save_run(engine, report, source=source, bot_id=bot_id, now=now) if store else None
    return report, run_id


def save_run(engine: Engine, report: OptimizationReport, *, source: str,
             bot_id: int | None, now: datetime) -> int:
    """Store a run and make its segments the tenant's current ones."""
    with engine.begin() as conn:
        run_id = int(conn.execute(sa.insert(RUNS).values(
            tenant_id=report.tenant_id, bot_id=bot_id,
            period_start=datetime.fromisoformat(report.period_start),
            period_end=datetime.fromisoformat(report.period_end), created_at=now,
            source=source, seconds=report.seconds, interactions=report.interactions,
            members=report.members, recommendations=len(report.recommendations),
            result=report.to_json(), error=report.error)
            .returning(RUNS.c.id)).scalar_one())
        if report.assignments:
            conn.execute(sa.delete(SEGMENTS).where(SEGMENTS.c.tenant_id == report.tenant_id))
            rows = [{"tenant_id": report.tenant_id, "member_id": member, "segment": segment,
                     "run_id": run_id, "assigned_at": now}
                    for member, segment in report.assignments.items()]
            for i in range(0, len(rows), 5000):
                conn.execute(sa.insert(SEGMENTS), rows[i:i + 5000])
    return run_id


def latest_run(engine: Engine, tenant_id: str) -> StoredRun | None:
    """The tenant's most recent stored run."""
    r = RUNS.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(RUNS).where(r.tenant_id == tenant_id)
                           .order_by(r.created_at.desc(), r.id.desc()).limit(1)).first()
    if row is None:
        return None
    return StoredRun(row.id, row.tenant_id, row.bot_id, row.period_start, row.period_end,
                     row.created_at, row.source, row.seconds, json.loads(row.result),
                     row.error)


def load_segments(engine: Engine) -> dict[tuple[str, int], str]:
    """Every member's current segment: (tenant, stored member id) -> name."""
    s = SEGMENTS.c
    with engine.connect() as conn:
        return {(row[0], int(row[1])): row[2] for row in conn.execute(
            sa.select(s.tenant_id, s.member_id, s.segment))}


def format_report(report: OptimizationReport | dict[str, Any], *, limit: int = 5) -> str:
    """The findings in plain text (the CLI and the demo print it)."""
    r = report if isinstance(report, dict) else report.to_dict()
    lines = [f"Optimizer: tenant {r['tenant_id']}, {r['period_start'][:10]} to "
             f"{r['period_end'][:10]}: {r['interactions']:,} interactions, "
             f"{r['members']:,} members"]
    if r.get("error"):
        lines.append(f"  {r['error']}")
        return "\n".join(lines)
    m = r["monetization"]
    lines.append("")
    cur = f" {m['currency']}" if m.get("currency") else ""
    rate = m["conversion_rate"]
    lines.append(f"What sells ({m['sessions']:,} sessions, {m['conversions']:,} with a "
                 f"purchase, {rate:.1%}; revenue {m['revenue']:,.2f}{cur}; model AUC "
                 f"{_num(m['model_auc'], '.3f')}):")
    if not m["profitable_intents"]:
        lines.append("  no intent goes significantly with buying "
                     f"(false discovery rate {m['fdr']:.0%})")
    for t in m["profitable_intents"][:limit]:
        lines.append(f"  {t['key']:<18} {t['rate']:6.1%} of {t['sessions']:,} sessions buy "
                     f"[{t['ci_low']:.1%}, {t['ci_high']:.1%}] vs {t['rest_rate']:.1%}; "
                     f"lift {_num(t['lift'], '.2f')}, q {t['q_value']:.2g}, +"
                     f"{t['expected_incremental_revenue']:,.0f}{cur} incremental, adjusted "
                     f"odds ratio {_num(t['adjusted_odds_ratio'], '.2f')}")
    others = [t for t in m["significant"]
              if t["kind"] != "intent" and t["difference"] > 0][:3]
    for t in others:
        what = t["key"].replace("|", " with sentiment ") if t["kind"] == "intent_sentiment" \
            else f"{t['kind']} {t['key']}"
        lines.append(f"  {what}: {t['rate']:.1%} vs {t['rest_rate']:.1%} "
                     f"(q {t['q_value']:.2g})")
    p = r["personalization"]
    lines.append("")
    if p.get("error"):
        lines.append(f"Segments: {p['error']}")
    else:
        lines.append(f"Segments (k = {p['k']} by silhouette {_num(p['silhouette'], '.2f')}, "
                     f"{p['members']:,} members):")
        for s in p["segments"]:
            lines.append(f"  {s['name']:<38} {s['members']:>6,} members, "
                         f"{s['conversion_rate']:5.1%} buy: {s['description']}")
        if p["rules"]:
            lines.append(f"Who buys (decision tree, AUC {_num(p['rules_auc'], '.3f')}):")
            for rule in p["rules"][:limit]:
                lines.append(f"  {rule['text']}")
        ups = [u for u in p["upsell_opportunities"] if u["significant"]][:3]
        for u in ups:
            lines.append(f"  upsell: {u['text']}")
    sentiment = r["sentiment"]
    lines.append("")
    lines.append(f"Before hand-offs and blocks ({sentiment['escalating_messages']:,} of "
                 f"{sentiment['negative_messages']:,} negative messages came before one):")
    if not sentiment["de_escalation_triggers"]:
        lines.append(f"  {sentiment.get('error') or 'no phrase stands out'}")
    for ph in sentiment["de_escalation_triggers"][:limit]:
        lines.append(f"  '{ph['phrase']}' z {ph['z']:.1f}: {ph['escalation_share']:.0%} of "
                     f"{ph['messages']:,} negative messages with it")
    for resp in [x for x in sentiment["positive_reinforcement_responses"]
                 if x["significant"]][:3]:
        lines.append(f"  reply that cheers ({resp['intent']}): \"{resp['response'][:60]}\" "
                     f"{resp['difference']:+.2f} sentiment next")
    for trend in [t for t in sentiment["sentiment_trends"] if t["direction"] != "stable"]:
        lines.append(f"  {trend['intent']}: sentiment {trend['direction']} "
                     f"({trend['negative_slope_per_week']:+.1%} negative a week)")
    lines.append("")
    lines.append("Recommendations:")
    if not r["recommendations"]:
        lines.append("  none")
    for i, rec in enumerate(r["recommendations"][:limit + 3], 1):
        lines.append(f"  {i}. [{rec['implementation_priority']}] {rec['title']}: "
                     f"{rec['impact_estimate']['text']}")
        lines.append(f"     {rec['evidence']}")
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
