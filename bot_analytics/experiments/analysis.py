"""Analysing a stored experiment: counts from SQL, statistics from ``optimizer.abtest``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine

from optimizer.abtest import (
    ExperimentData,
    ExperimentResult,
    VariantData,
    analyze_experiment,
    signed_percent,
)
from optimizer.results import wilson_interval
from optimizer.stats import Sample

from . import ExperimentDef
from . import store as st


@dataclass(frozen=True)
class DailyPoint:
    """One variant's cumulative members and conversions at the end of a day."""

    day: date
    variant: str
    members: int
    conversions: int
    rate: float
    ci_low: float   #: 95% Wilson interval of the rate
    ci_high: float


@dataclass(frozen=True)
class ExperimentReport:
    """Everything known about one experiment. ``control_rate``, ``variant_rate``,
    ``improvement``, ``winner`` and ``recommended_action`` are the primary metric's."""

    test_id: int
    tenant_id: str
    name: str
    status: str
    source: str
    metric: str
    window_start: datetime | None
    window_end: datetime
    stopped_at: datetime | None
    served: str | None          #: the variant everyone gets once stopped
    exposures: dict[str, int]
    primary: ExperimentResult
    secondary: dict[str, ExperimentResult] = field(default_factory=dict)
    daily: tuple[DailyPoint, ...] = ()

    @property
    def control_rate(self) -> float:
        return self.primary.control_rate

    @property
    def variant_rate(self) -> float:
        return self.primary.variant_rate

    @property
    def improvement(self) -> float | None:
        return self.primary.improvement

    @property
    def winner(self) -> str | None:
        return self.primary.winner

    @property
    def decision(self) -> str:
        return self.primary.decision

    @property
    def recommended_action(self) -> str:
        return self.primary.recommended_action

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (NaN becomes null, times ISO 8601)."""
        return _plain({**asdict(self), "control_rate": self.control_rate,
                       "variant_rate": self.variant_rate, "improvement": self.improvement,
                       "winner": self.winner, "recommended_action": self.recommended_action})


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def wilson(conversions: int, members: int) -> tuple[float, float]:
    """The 95% Wilson interval of a rate (``optimizer.results.wilson_interval``)."""
    return wilson_interval(conversions, members)


MEAN_METRICS = ("revenue_per_member", "csat")


def _result(exp: ExperimentDef, counts: st.Counts, metric: str, *, bayes_draws: int,
            ratings: dict[str, Sample] | None = None) -> ExperimentResult:
    s = exp.settings
    kind = "mean" if metric in MEAN_METRICS else "rate"
    if metric == "csat":
        assert ratings is not None
        variants = tuple(VariantData(v.name, v.weight, ratings[v.name],
                                     assigned=counts.totals[v.name].members)
                         for v in s.variants)
    else:
        variants = tuple(
            VariantData(v.name, v.weight, counts.totals[v.name],
                        counts.daily.get(v.name, ()) if kind == "rate" else ())
            for v in s.variants)
    return analyze_experiment(ExperimentData(
        exp.name, exp.control, variants, kind=kind, metric=metric, alpha=s.alpha,
        power=s.power, min_detectable_effect=s.min_detectable_effect,
        correction=s.correction, days_running=counts.days_running,
        bayes_draws=bayes_draws))


def analyze(engine: Engine, name: str | None = None, *, test_id: int | None = None,
            tenant_id: str | None = None, now: datetime | None = None,
            bayes_draws: int = 200_000) -> ExperimentReport:
    """Analyse an experiment by name (or id) over its window: from the first exposure to
    its stop, or ``now``."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        if test_id is not None:
            exp = st.find_by_id(conn, test_id)
            found_id = test_id
        elif name is not None:
            found_id, exp = st.find(conn, name, tenant_id)
        else:
            raise ValueError("analyze: pass a name or a test_id")
        end = min(t for t in (exp.end(), now) if t is not None)
        metrics = [exp.metric, *[m for m in exp.settings.secondary_metrics
                                 if m != exp.metric]]
        counts: dict[str, st.Counts] = {}
        for metric in metrics:
            outcome = st.OUTCOME_OF[metric]
            if outcome not in counts:
                counts[outcome] = st.count(conn, exp, end, outcome=outcome)
        ratings = st.count_ratings(conn, exp, end) if "csat" in metrics else None
    primary_counts = counts[st.OUTCOME_OF[exp.metric]]
    primary = _result(exp, primary_counts, exp.metric, bayes_draws=bayes_draws,
                      ratings=ratings)
    secondary = {m: _result(exp, counts[st.OUTCOME_OF[m]], m, bayes_draws=bayes_draws,
                            ratings=ratings)
                 for m in metrics[1:]}
    daily = []
    for i, d in enumerate(primary_counts.days):
        for v in exp.settings.variants:
            series = primary_counts.daily.get(v.name, ())
            if i < len(series):
                sample = series[i]
                low, high = wilson(sample.conversions, sample.members)
                daily.append(DailyPoint(d, v.name, sample.members, sample.conversions,
                                        sample.rate, low, high))
    stopped = exp.is_stopped(now)
    if stopped:
        primary = _stopped_view(primary, exp)
    return ExperimentReport(
        found_id, exp.tenant_id, exp.name, exp.status(now), exp.source, exp.metric,
        primary_counts.window_start, end, exp.end() if stopped else None,
        exp.served_after_stop() if stopped else None, primary_counts.exposures, primary,
        secondary, tuple(daily))


def _stopped_view(result: ExperimentResult, exp: ExperimentDef) -> ExperimentResult:
    from dataclasses import replace

    served = exp.served_after_stop()
    end = exp.end()
    when = f" on {end:%Y-%m-%d %H:%M} UTC" if end else ""
    return replace(result, recommended_action=(
        f"Stopped{when}; everyone now gets '{served}'. The figures cover the experiment "
        f"until then. {result.recommended_action}"))


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)


def _result_lines(result: ExperimentResult, kind: str) -> list[str]:
    rate = kind == "rate"
    lines: list[str] = []
    scale, unit = (100.0, " pts") if rate else (1.0, "")
    head = (f"  {'vs ' + result.control:16} {'difference':>12} {'95% CI':>21} {'relative':>9}"
            f" {'p fixed':>8} {'p adj':>7} {'p seq':>7}")
    if rate:
        head += f" {'P(beat)':>8} {'exp.loss':>9}"
    lines.append(head)
    for c in result.comparisons:
        ci = f"[{_num(c.ci_low * scale, '+.2f')}, {_num(c.ci_high * scale, '+.2f')}]"
        row = (f"  {c.variant[:16]:16} {_num(c.difference * scale, '+.2f') + unit:>12} "
               f"{ci:>21} {signed_percent(c.relative):>9} {_num(c.p_value, '.4f'):>8} "
               f"{_num(c.p_adjusted, '.4f'):>7} {_num(c.sequential_p_adjusted, '.4f'):>7}")
        if rate and c.bayes is not None:
            row += (f" {_num(c.bayes.prob_beat_control, '.1%'):>8} "
                    f"{_num(c.bayes.expected_loss * scale, '.3f') + unit:>9}")
        lines.append(row)
    return lines


def _rate_table(r: ExperimentReport) -> list[str]:
    p = r.primary
    lines = [f"  {'variant':16} {'members':>9} {'exposures':>10} {'converted':>10} "
             f"{'rate':>7} {'95% CI':>17} {'revenue/member':>15}"]
    for v in p.variants:
        low, high = wilson(v.conversions, v.members)
        mark = " *" if v.name == p.control else ""
        lines.append(
            f"  {(v.name + mark)[:16]:16} {v.members:9,} {r.exposures.get(v.name, 0):10,} "
            f"{v.conversions:10,} {_num(v.rate, '.1%'):>7} "
            f"{'[' + _num(low, '.1%') + ', ' + _num(high, '.1%') + ']':>17} "
            f"{_num(v.revenue_per_member, ',.2f'):>15}")
    lines.append(f"  (* control; converted = reached '{st.OUTCOME_OF[r.metric]}' after first "
                 "exposure)")
    return lines


def _csat_table(r: ExperimentReport) -> list[str]:
    p = r.primary
    lines = [f"  {'variant':16} {'members':>9} {'exposures':>10} {'rated':>8} "
             f"{'mean rating':>12} {'sd':>6}"]
    for v in p.variants:
        mark = " *" if v.name == p.control else ""
        sd = math.sqrt(v.revenue_variance) if math.isfinite(v.revenue_variance) else None
        lines.append(
            f"  {(v.name + mark)[:16]:16} {v.assigned:9,} {r.exposures.get(v.name, 0):10,} "
            f"{v.members:8,} {_num(v.revenue_per_member, '.2f'):>12} {_num(sd, '.2f'):>6}")
    lines.append("  (* control; rated = gave CSAT ratings after first exposure; each "
                 "member's mean rating counts once)")
    return lines


def format_report(r: ExperimentReport) -> str:
    """The plain-text report of ``bot-analytics ab show``."""
    p = r.primary
    since = f"since {r.window_start:%Y-%m-%d}" if r.window_start else "no exposures yet"
    lines = [f"Experiment {r.name} (tenant {r.tenant_id}, id {r.test_id}): {r.status}, "
             f"{since}" + (f", until {r.window_end:%Y-%m-%d %H:%M} UTC"
                           if r.status == "stopped" else ""),
             f"Primary metric: {r.metric}" + (
                 f"; secondary: {', '.join(r.secondary)}" if r.secondary else "")]
    if p.error:
        lines.append(f"  {p.error}")
        return "\n".join(lines)
    lines.append("")
    lines += _csat_table(r) if r.metric == "csat" else _rate_table(r)
    lines.append("")
    kind = "mean" if r.metric in MEAN_METRICS else "rate"
    lines += _result_lines(p, kind)
    if p.chi_square is not None and p.chi_square.error is None:
        lines.append(f"  all variants (chi-square, {p.chi_square.dof} df): p = "
                     f"{p.chi_square.p_value:.4f}")
    lines.append("")
    srm = p.srm
    verdict = "MISMATCH" if srm.mismatch else "ok"
    lines.append(f"Sample ratio: p = {_num(srm.p_value, '.3g')} ({verdict})")
    pw = p.power
    if pw.required_per_variant is not None:
        togo = ("reached" if p.days_to_go == 0 else
                f"about {math.ceil(p.days_to_go)} more days" if p.days_to_go else "unknown")
        lines.append(f"Power: {pw.required_per_variant:,} members per variant detect the "
                     f"minimum effect; achieved power {_num(pw.achieved_power, '.0%')}; "
                     f"planned size {togo}")
    elif pw.error:
        lines.append(f"Power: {pw.error}")
    lines.append("")
    lines.append(f"Decision: {p.decision}" + (f" ({p.winner})" if p.winner else ""))
    lines.append(p.recommended_action)
    for metric, res in r.secondary.items():
        lines.append("")
        lines.append(f"Secondary metric {metric}:")
        kind = "mean" if metric in MEAN_METRICS else "rate"
        lines += _result_lines(res, kind)
    return "\n".join(lines)


def format_list(reports: list[ExperimentReport]) -> str:
    if not reports:
        return "no experiments yet (define them under experiments: in config.yaml)"
    lines = [f"{'name':24} {'tenant':12} {'status':10} {'members':>9} {'metric':20} decision"]
    for r in reports:
        members = sum(v.members for v in r.primary.variants)
        decision = r.decision + (f" ({r.winner})" if r.winner else "")
        lines.append(f"{r.name[:24]:24} {r.tenant_id[:12]:12} {r.status:10} {members:9,} "
                     f"{r.metric[:20]:20} {decision}")
    return "\n".join(lines)
