"""Ranked recommendations built from the analyses, the KPIs and the experiments.

Each recommendation carries its evidence in numbers, an impact estimate with a 95%
interval in a weekly unit (purchases, escalations, negative messages, conversions), and
a priority. The priority comes from the expected impact relative to the bot's weekly
volume of that unit (the score's first factor, capped at 1) times the confidence
(1 - the finding's adjusted p-value): ``high`` from 0.10, ``medium`` from 0.03, ``low``
below. Recommendations are sorted by that score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .data import OptimizerData
from .engagement import SentimentEngagementResult
from .monetization import MonetizationResult, TriggerStat
from .personalization import PersonalizationResult
from .results import Serializable, wilson_interval
from .stats import Sample, proportion_test

HIGH, MEDIUM = 0.10, 0.03


@dataclass(frozen=True)
class ImpactEstimate:
    value: float
    low: float
    high: float
    unit: str                    #: "purchases a week", "escalations a week", ...
    revenue: float | None        #: value x average purchase value, per week
    text: str                    #: "+12 purchases a week, 95% interval 5 to 19"


@dataclass(frozen=True)
class Recommendation(Serializable):
    kind: str
    title: str
    evidence: str
    action: str
    implementation_priority: str   #: high, medium or low
    impact_estimate: ImpactEstimate
    confidence: float
    score: float


@dataclass(frozen=True)
class ExperimentFinding:
    """What the recommendations need to know of an experiment's analysis."""

    name: str
    metric: str
    decision: str                  #: winner, no winner yet, ...
    winner: str | None
    control: str
    difference: float | None       #: winner - control, absolute (rate points as 0-1)
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    members_per_week: float        #: members entering the winner's and control's arms


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:,.1f}"


def _impact(value: float, low: float, high: float, unit: str, revenue_per: float | None,
            prefix: str = "+") -> ImpactEstimate:
    low, high = min(low, high), max(low, high)
    sign = prefix if value >= 0 else "-"
    text = (f"{sign}{_fmt(abs(value))} {unit}, 95% interval {_fmt(low)} to {_fmt(high)}")
    revenue = value * revenue_per if revenue_per is not None else None
    return ImpactEstimate(value, low, high, unit, revenue, text)


def _wald(x1: int, n1: int, x0: int, n0: int) -> tuple[float, float]:
    """The 95% Wald interval of x1/n1 - x0/n0."""
    test = proportion_test(Sample(n0, x0), Sample(n1, x1))
    return test.ci_low, test.ci_high


def _priority(value: float, baseline: float, confidence: float) -> tuple[float, str]:
    relative = min(1.0, abs(value) / baseline) if baseline > 0 else 0.0
    score = relative * confidence
    return score, "high" if score >= HIGH else "medium" if score >= MEDIUM else "low"


def _rec(kind: str, title: str, evidence: str, action: str, impact: ImpactEstimate,
         baseline: float, confidence: float) -> Recommendation:
    score, priority = _priority(impact.value, baseline, confidence)
    return Recommendation(kind, title, evidence, action, priority, impact, confidence, score)


def _pct(x: float) -> str:
    return f"{x:.1%}"


def generate_optimization_recommendations(
        data: OptimizerData, monetization: MonetizationResult,
        personalization: PersonalizationResult | None,
        engagement: SentimentEngagementResult | None,
        experiments: Sequence[ExperimentFinding] = (), *, containment_target: float = 0.8,
        heavy_traffic_share: float = 0.10, limit: int = 12, per_kind_limit: int = 2
        ) -> list[Recommendation]:
    """The ranked list (see the module's description)."""
    from scipy.stats import chi2, norm

    weeks = max(data.weeks, 1e-9)
    table = data.session_table()
    sessions = len(table)
    purchases_week = monetization.conversions / weeks
    per_purchase = (monetization.revenue / monetization.conversions
                    if monetization.conversions and monetization.currency else None)
    cur = f" {monetization.currency}" if monetization.currency else ""
    out: list[Recommendation] = []

    def sells(t: TriggerStat) -> str:
        return (f"sessions with {t.label} bought {_pct(t.rate)} of the time (95% CI "
                f"{_pct(t.ci_low)} to {_pct(t.ci_high)}) against {_pct(t.rest_rate)} without; "
                f"{t.sessions:,} sessions, q = {t.q_value:.2g}")

    for t in monetization.profitable_intents[:3]:
        if t.adjusted_odds_ratio is not None and t.adjusted_odds_ratio <= 1.0:
            continue  # it only travels with something that sells
        lo, hi = _wald(t.conversions, t.sessions, t.rest_conversions, t.rest_sessions)
        per_week = t.sessions / weeks
        impact = _impact(per_week * t.difference, per_week * lo, per_week * hi,
                         "purchases a week", per_purchase)
        rev = (f"; {t.revenue_per_session:,.2f}{cur} revenue per session against "
               f"{t.rest_revenue_per_session:,.2f}{cur}" if monetization.currency else "")
        out.append(_rec("profitable_intent", f"{t.key} sells: lead more people to it",
                        sells(t) + rev,
                        f"Offer the {t.key} answer where people hesitate (greeting, help, "
                        f"fallback) and keep it prominent.", impact, purchases_week,
                        1 - t.q_value))

    for t in monetization.significant:
        if t.kind != "intent" or t.difference >= 0 or sessions == 0 \
                or t.sessions / sessions < heavy_traffic_share:
            continue
        negative = data.interactions.loc[data.interactions["intent"] == t.key, "sentiment"]
        if len(negative) and (negative == "negative").mean() >= 0.5:
            continue  # complaints are not a place to sell
        lo, hi = _wald(t.rest_conversions, t.rest_sessions, t.conversions, t.sessions)
        per_week = t.sessions / weeks
        impact = _impact(per_week * -t.difference, per_week * lo, per_week * hi,
                         "purchases a week", per_purchase)
        out.append(_rec("low_conversion_intent",
                        f"{t.key} has heavy traffic and converts poorly",
                        f"{t.sessions / sessions:.0%} of sessions; " + sells(t),
                        f"Add an offer or a next step to the {t.key} answers; the estimate "
                        f"assumes they convert like the other sessions.", impact,
                        purchases_week, 1 - t.q_value))

    if sessions:
        escalated = int(table["escalated"].sum())
        containment = 1 - escalated / sessions
        if containment < containment_target:
            c_low, c_high = (1 - x for x in wilson_interval(escalated, sessions)[::-1])
            per_week = sessions / weeks
            impact = _impact(per_week * (containment_target - containment),
                             per_week * max(0.0, containment_target - c_high),
                             per_week * (containment_target - c_low), "escalations a week",
                             None, prefix="-")
            phrases = ""
            if engagement is not None and engagement.de_escalation_triggers:
                phrases = "; messages before hand-offs often say " + ", ".join(
                    f"'{p.phrase}'" for p in engagement.de_escalation_triggers[:3])
            out.append(_rec("containment",
                            f"Containment {_pct(containment)} is under the target "
                            f"{_pct(containment_target)}",
                            f"{escalated:,} of {sessions:,} sessions were handed to a human"
                            + phrases,
                            "Answer the commonest reasons for hand-offs in the bot before "
                            "offering a human.", impact, escalated / weeks or 1.0, 0.99))

    if engagement is not None:
        negative_week = max(engagement.negative_messages / weeks, 1e-9)
        for p in engagement.de_escalation_triggers[:2]:
            count = p.messages * p.escalation_share
            low = chi2.ppf(0.025, 2 * count) / 2 if count > 0 else 0.0
            high = chi2.ppf(0.975, 2 * (count + 1)) / 2
            impact = _impact(count / weeks, low / weeks, high / weeks,
                             "escalations or blocks a week follow it", None, prefix="")
            confidence = 1 - 2 * float(norm.sf(p.z))
            out.append(_rec("de_escalation", f"'{p.phrase}' comes before people give up",
                            f"{p.escalation_share:.0%} of {p.messages:,} negative messages "
                            f"with '{p.phrase}' were followed by a hand-off or a block "
                            f"(log-odds z = {p.z:.1f})",
                            f"Give messages mentioning '{p.phrase}' a specific answer (status, "
                            f"apology, what happens next) before offering a human.", impact,
                            max(engagement.escalating_messages / weeks, 1e-9), confidence))
        for trend in engagement.sentiment_trends:
            if trend.direction != "worsening":
                continue
            per_week = trend.messages / weeks
            impact = _impact(trend.negative_slope_per_week * per_week,
                             trend.negative_ci_low * per_week, trend.negative_ci_high * per_week,
                             "more negative messages a week, each week", None)
            out.append(_rec("sentiment_trend", f"Sentiment on {trend.intent} is worsening",
                            f"the share of negative {trend.intent} messages rises by "
                            f"{trend.negative_slope_per_week:+.1%} a week (q = "
                            f"{trend.negative_q_value:.2g}); now {_pct(trend.negative_rate)} "
                            f"of {trend.messages:,} messages",
                            f"Read recent {trend.intent} conversations and fix what changed.",
                            impact, negative_week, 1 - trend.negative_q_value))

    for e in experiments:
        if e.decision != "winner" or e.winner is None or e.difference is None:
            continue
        low = e.ci_low if e.ci_low is not None else e.difference
        high = e.ci_high if e.ci_high is not None else e.difference
        unit = "conversions a week" if e.metric != "revenue_per_member" else "revenue a week"
        impact = _impact(e.difference * e.members_per_week / 2, low * e.members_per_week / 2,
                         high * e.members_per_week / 2, unit,
                         per_purchase if e.metric == "conversion" else None)
        out.append(_rec("experiment_winner", f"Ship {e.winner} from experiment {e.name}",
                        f"{e.winner} beats {e.control} on {e.metric} by "
                        f"{e.difference:+.3g} (95% CI {low:+.3g} to {high:+.3g}), "
                        f"p = {e.p_value if e.p_value is not None else float('nan'):.2g}",
                        f"Stop {e.name} with {e.winner} as the winner "
                        f"(`bot-analytics ab stop {e.name} --winner {e.winner}`).",
                        impact, purchases_week or 1.0,
                        1 - (e.p_value if e.p_value is not None else 0.05)))

    if personalization is not None:
        for u in [u for u in personalization.upsell_opportunities if u.significant][:2]:
            x1 = round(u.rate * u.sessions)
            x0 = round(u.rest_rate * u.rest_sessions)
            lo, hi = _wald(x1, u.sessions, x0, u.rest_sessions)
            per_week = u.rest_sessions / weeks
            diff = u.rate - u.rest_rate
            impact = _impact(per_week * diff, per_week * lo, per_week * hi,
                             "purchases a week at most", per_purchase)
            out.append(_rec("segment_upsell", f"Offer {u.intent} to {u.segment}",
                            u.text + f" ({u.sessions:,} and {u.rest_sessions:,} sessions, "
                            f"q = {u.q_value:.2g})",
                            f"When a member of '{u.segment}' writes, bring up {u.intent} "
                            "(analytics.segment() tells the segment in a handler).", impact,
                            purchases_week, 1 - u.q_value))

    out.sort(key=lambda r: (-r.score, r.title))
    kept: list[Recommendation] = []
    per_kind: dict[str, int] = {}
    for rec in out:  # at most two of a kind, so one finding does not fill the list
        per_kind[rec.kind] = per_kind.get(rec.kind, 0) + 1
        if per_kind[rec.kind] <= per_kind_limit:
            kept.append(rec)
    return kept[:limit]
