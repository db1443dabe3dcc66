"""The analysis of one A/B experiment: every variant against the control, and a decision.

Input is an :class:`ExperimentData` of sufficient statistics (members, conversions, value
sums) per variant, optionally at the end of every day so far; output an
:class:`ExperimentResult`. Decisions rest on the sequential test, whose p-values stay
valid when the experiment is looked at every day; the fixed-horizon tests are reported
beside it and are valid once, at the planned sample size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .stats import (
    BayesResult,
    ChiSquareTest,
    MeanTest,
    PowerResult,
    ProportionTest,
    Sample,
    SampleRatioTest,
    SequentialTest,
    adjust_p_values,
    bayes_test,
    chi_square_test,
    mean_power,
    prob_best,
    proportion_test,
    rate_power,
    sample_ratio_test,
    sequential_mean_test,
    sequential_rate_test,
    welch_test,
)

WINNER = "winner"
NO_WINNER_YET = "no winner yet"
NO_EFFECT = "stop: no effect likely"
INVALID_SRM = "invalid: sample ratio mismatch"



@dataclass(frozen=True)
class VariantData:
    name: str
    weight: float
    total: Sample
    #: Cumulative statistics at the end of each day of the experiment (rates only).
    daily: tuple[Sample, ...] = ()
    #: Members assigned, when ``total`` counts fewer (only those who rated, for a
    #: survey metric); the sample ratio test uses this.
    assigned: int | None = None

    @property
    def members(self) -> int:
        return self.total.members if self.assigned is None else self.assigned


@dataclass(frozen=True)
class ExperimentData:
    name: str
    control: str
    variants: tuple[VariantData, ...]
    #: ``"rate"`` (conversion or a named outcome) or ``"mean"`` (revenue per member).
    kind: str = "rate"
    metric: str = "conversion"
    alpha: float = 0.05
    power: float = 0.8
    #: Relative lift over the control worth detecting (0.1: +10%).
    min_detectable_effect: float = 0.1
    correction: str = "holm"
    days_running: float = 0.0
    srm_threshold: float = 0.001
    bayes_draws: int = 200_000
    seed: int = 20261122


@dataclass(frozen=True)
class VariantSummary:
    name: str
    weight: float
    members: int                   #: in the analysis (for csat: members who rated)
    conversions: int
    rate: float
    revenue_per_member: float      #: the mean of the value (for csat: the mean rating)
    revenue_variance: float
    assigned: int = 0              #: members assigned to the variant


@dataclass(frozen=True)
class Comparison:
    """One variant against the control."""

    variant: str
    difference: float              #: of the primary metric, treatment - control
    relative: float | None
    ci_low: float                  #: fixed-horizon 95% (1 - alpha) interval
    ci_high: float
    relative_ci_low: float | None
    relative_ci_high: float | None
    p_value: float                 #: fixed horizon: z-test (rates) or Welch (means)
    p_adjusted: float              #: Holm (or BH) across the variants
    sequential_p: float            #: always valid; the smallest over the daily looks
    sequential_p_adjusted: float
    cs_low: float                  #: confidence sequence for the difference, this look
    cs_high: float
    significant: bool              #: sequential_p_adjusted < alpha
    rate_test: ProportionTest | None = None
    mean_test: MeanTest | None = None
    sequential: SequentialTest | None = None
    bayes: BayesResult | None = None
    prob_best: float | None = None


@dataclass(frozen=True)
class ExperimentResult:
    name: str
    metric: str
    control: str
    decision: str
    winner: str | None
    recommended_action: str
    variants: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...]
    srm: SampleRatioTest
    chi_square: ChiSquareTest | None
    power: PowerResult
    days_to_go: float | None
    #: The original design's summary: the control's and the best variant's primary
    #: metric, and the best variant's relative improvement.
    control_rate: float
    variant_rate: float
    improvement: float | None
    error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def signed_percent(x: float | None) -> str:
    """``+12.3%``, or ``n/a`` for a missing or infinite value."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:+.1%}"


def _tau(data: ExperimentData, control: Sample) -> float:
    """Scale of the sequential test's mixing distribution: the minimum detectable effect
    in the metric's own units at the control's current level."""
    base = control.rate if data.kind == "rate" else control.mean
    if not math.isfinite(base) or base <= 0:
        # Nothing to scale by yet: one percentage point, or one unit of money.
        return 0.01 if data.kind == "rate" else 1.0
    return abs(data.min_detectable_effect) * base


def _sequential(data: ExperimentData, control: Sample, treatment: Sample) -> SequentialTest:
    tau = _tau(data, control)
    if data.kind == "rate":
        return sequential_rate_test(control, treatment, tau, data.alpha)
    return sequential_mean_test(control, treatment, tau, data.alpha)


def _running_sequential(data: ExperimentData, control: VariantData,
                        others: Sequence[VariantData]) -> tuple[list[float], list[float]]:
    """The smallest raw and adjusted sequential p-values over the daily looks and now."""
    looks = min(len(control.daily), *(len(v.daily) for v in others))
    raw = [1.0] * len(others)
    adjusted = [1.0] * len(others)
    snapshots: list[tuple[Sample, list[Sample]]] = []
    if data.kind == "rate":
        for day in range(looks):
            snapshots.append((control.daily[day], [v.daily[day] for v in others]))
    snapshots.append((control.total, [v.total for v in others]))
    for c, ts in snapshots:
        ps = [_sequential(data, c, t).p_value for t in ts]
        adj = adjust_p_values(ps, data.correction)
        raw = [min(a, b) for a, b in zip(raw, ps, strict=True)]
        adjusted = [min(a, b) for a, b in zip(adjusted, adj, strict=True)]
    return raw, adjusted


def _empty(data: ExperimentData, error: str) -> ExperimentResult:
    nan = float("nan")
    return ExperimentResult(
        data.name, data.metric, data.control, NO_WINNER_YET, None,
        f"Cannot analyse yet: {error}.", (), (),
        SampleRatioTest((), (), nan, 1.0, False, error), None,
        PowerResult(None, None, None, error), None, nan, nan, None, error)


def analyze_experiment(data: ExperimentData) -> ExperimentResult:
    """Compare every variant with the control and decide."""
    names = [v.name for v in data.variants]
    if len(names) < 2:
        return _empty(data, "an experiment needs a control and at least one variant")
    if data.control not in names:
        return _empty(data, f"the control {data.control!r} is not one of the variants "
                            f"({', '.join(names)})")
    if data.kind not in ("rate", "mean"):
        return _empty(data, f"unknown metric kind {data.kind!r}")
    control = data.variants[names.index(data.control)]
    others = [v for v in data.variants if v.name != data.control]
    c = control.total
    summaries = tuple(VariantSummary(v.name, v.weight, v.total.members, v.total.conversions,
                                     v.total.rate, v.total.mean, v.total.variance,
                                     v.members)
                      for v in data.variants)
    srm = sample_ratio_test([v.members for v in data.variants],
                            [v.weight for v in data.variants], data.srm_threshold)
    chi = chi_square_test([v.total for v in data.variants]) \
        if data.kind == "rate" and len(data.variants) > 2 else None

    fixed: list[ProportionTest | MeanTest] = []
    for v in others:
        fixed.append(proportion_test(c, v.total, data.alpha) if data.kind == "rate"
                     else welch_test(c, v.total, data.alpha))
    p_adj = adjust_p_values([f.p_value for f in fixed], data.correction)
    seq_raw, seq_adj = _running_sequential(data, control, others)
    best_probs: list[float | None] = [None] * len(others)
    if data.kind == "rate" and len(data.variants) > 2 and data.bayes_draws > 0:
        probs = prob_best([v.total for v in data.variants], draws=data.bayes_draws,
                          seed=data.seed)
        best_probs = [probs[names.index(v.name)] for v in others]
    comparisons: list[Comparison] = []
    for i, (v, f) in enumerate(zip(others, fixed, strict=True)):
        seq = _sequential(data, c, v.total)
        bayes = bayes_test(c, v.total, draws=data.bayes_draws, seed=data.seed) \
            if data.kind == "rate" and data.bayes_draws > 0 else None
        if isinstance(f, ProportionTest):
            rel_ci: tuple[float | None, float | None] = (f.relative_ci_low,
                                                         f.relative_ci_high)
            rate_test, mean_test = f, None
        else:
            rel_ci = (None, None)
            rate_test, mean_test = None, f
        comparisons.append(Comparison(
            v.name, f.difference, f.relative, f.ci_low, f.ci_high, rel_ci[0], rel_ci[1],
            f.p_value, p_adj[i], seq_raw[i], seq_adj[i], seq.ci_low, seq.ci_high,
            seq_adj[i] < data.alpha, rate_test, mean_test, seq, bayes, best_probs[i]))

    # Power and time to go, for the planned minimum effect.
    smallest = min(v.total.members for v in data.variants)
    best_other = min(others, key=lambda v: v.total.members)
    if data.kind == "rate":
        power = rate_power(c.rate if c.members else float("nan"),
                           data.min_detectable_effect, c.members, best_other.total.members,
                           data.alpha, data.power)
    else:
        power = mean_power(c.mean, math.sqrt(c.variance) if c.members > 1 else float("nan"),
                           data.min_detectable_effect, c.members, best_other.total.members,
                           data.alpha, data.power)
    days_to_go = None
    if power.required_per_variant is not None and data.days_running > 0:
        per_day = smallest / data.days_running
        missing = max(0, power.required_per_variant - smallest)
        days_to_go = 0.0 if missing == 0 else (missing / per_day if per_day > 0 else None)

    decision, winner, action, notes = _decide(data, srm, comparisons, power, days_to_go)
    metric_of = (lambda s: s.rate) if data.kind == "rate" else (lambda s: s.mean)
    best = max(comparisons, key=lambda x: (x.difference if math.isfinite(x.difference)
                                           else -math.inf))
    best_total = next(v.total for v in others if v.name == best.variant)
    return ExperimentResult(
        data.name, data.metric, data.control, decision, winner, action, summaries,
        tuple(comparisons), srm, chi, power, days_to_go, metric_of(c), metric_of(best_total),
        best.relative, None, notes)


def _decide(data: ExperimentData, srm: SampleRatioTest, comparisons: list[Comparison],
            power: PowerResult, days_to_go: float | None
            ) -> tuple[str, str | None, str, tuple[str, ...]]:
    notes: list[str] = []
    if srm.mismatch:
        observed = ", ".join(f"{v.name} {n:,}" for v, n in zip(data.variants, srm.observed,
                                                               strict=True))
        return (INVALID_SRM, None,
                f"Do not act on these results: members per variant ({observed}) do not "
                f"match the weights (sample ratio mismatch, p = {srm.p_value:.2g}). Look "
                "for variants that fail or are filtered more often, fix the cause and "
                "restart the experiment under a new name or salt.", ())
    if any(v.total.members == 0 for v in data.variants):
        return (NO_WINNER_YET, None, "Keep the experiment running: some variants have "
                "no data yet.", ())
    better = [x for x in comparisons if x.significant and x.difference > 0]
    worse = [x for x in comparisons if x.significant and x.difference < 0]
    unit = "points" if data.kind == "rate" else (
        "rating points" if data.metric == "csat" else "per member")
    if better:
        top = max(better, key=lambda x: x.difference)
        lift = signed_percent(top.relative)
        diff = (f"{top.difference * 100:+.2f} {unit}" if data.kind == "rate"
                else f"{top.difference:+.4g} {unit}")
        return (WINNER, top.variant,
                f"Roll out '{top.variant}': it beats the control on {data.metric} by {diff} "
                f"({lift}, always-valid p = {top.sequential_p_adjusted:.3g}). Stop the "
                "experiment to serve it to everyone.", tuple(notes))
    if worse and len(worse) == len(comparisons):
        return (WINNER, data.control,
                f"Keep the control '{data.control}': every variant does worse on "
                f"{data.metric}. Stop the experiment.", tuple(notes))
    mde = abs(data.min_detectable_effect)
    control = next(v.total for v in data.variants if v.name == data.control)
    base = control.rate if data.kind == "rate" else control.mean
    if math.isfinite(base) and base > 0:
        bound = mde * base
        if all(math.isfinite(x.cs_high) and x.cs_high < bound and x.cs_low > -bound
               for x in comparisons):
            return (NO_EFFECT, None,
                    f"Stop the experiment and keep the control: no variant moves "
                    f"{data.metric} by {mde:.0%} or more in either direction (the "
                    "confidence sequences rule it out).", tuple(notes))
    if days_to_go is not None and days_to_go > 0:
        wait = f"about {math.ceil(days_to_go)} more days at the current traffic"
    elif days_to_go == 0:
        wait = ("the planned sample size is reached; the sequential test needs more data "
                "to be sure")
    else:
        wait = "more data"
    return (NO_WINNER_YET, None,
            f"Keep the experiment running: no variant differs from the control yet "
            f"({wait}).", tuple(notes))
