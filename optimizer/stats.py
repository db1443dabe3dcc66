"""Small pure tests for comparing variants, on sufficient statistics.

Every function takes counts or :class:`Sample` values and returns a frozen result with an
``error`` string instead of raising on degenerate input (no members, no variation).
Frequentist tests follow the textbook definitions that statsmodels and scipy implement;
the test suite checks them against those libraries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

_NAN = float("nan")


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _norm_ppf(q: float) -> float:
    return float(special.ndtri(q))


def two_sided_z(alpha: float) -> float:
    """The critical value of a two-sided normal test at level ``alpha``."""
    return _norm_ppf(1.0 - alpha / 2.0)


@dataclass(frozen=True)
class Sample:
    """Sufficient statistics of one group: members, conversions, and the sum and sum of
    squares of a per-member value (revenue). They add across days and shards."""

    members: int
    conversions: int = 0
    value_sum: float = 0.0
    value_sum_squares: float = 0.0

    def __add__(self, other: Sample) -> Sample:
        return Sample(self.members + other.members, self.conversions + other.conversions,
                      self.value_sum + other.value_sum,
                      self.value_sum_squares + other.value_sum_squares)

    @property
    def rate(self) -> float:
        return self.conversions / self.members if self.members else _NAN

    @property
    def mean(self) -> float:
        return self.value_sum / self.members if self.members else _NAN

    @property
    def variance(self) -> float:
        """Sample variance of the per-member value (n - 1 in the denominator)."""
        n = self.members
        if n < 2:
            return _NAN
        return max(0.0, (self.value_sum_squares - self.value_sum ** 2 / n) / (n - 1))


# -- conversion rates --------------------------------------------------------------------
@dataclass(frozen=True)
class ProportionTest:
    """Treatment against control for a conversion rate."""

    control_rate: float
    treatment_rate: float
    difference: float           #: treatment - control (absolute)
    ci_low: float               #: of the difference (Wald, unpooled variance)
    ci_high: float
    relative: float | None      #: treatment / control - 1
    relative_ci_low: float | None  #: from the log of the ratio (delta method)
    relative_ci_high: float | None
    z: float                    #: pooled two-proportion z statistic
    p_value: float              #: two-sided
    error: str | None = None


def proportion_test(control: Sample, treatment: Sample, alpha: float = 0.05
                    ) -> ProportionTest:
    """Two-proportion z-test with the pooled variance (statsmodels ``proportions_ztest``)
    and a Wald interval for the difference (statsmodels ``confint_proportions_2indep``,
    ``method="wald"``); the relative difference's interval is that of the log ratio
    (``compare="ratio", method="log"``)."""
    n1, x1, n2, x2 = control.members, control.conversions, treatment.members, \
        treatment.conversions
    if n1 <= 0 or n2 <= 0:
        return ProportionTest(_NAN, _NAN, _NAN, _NAN, _NAN, None, None, None, _NAN, 1.0,
                              "a group has no members")
    for name, x, n in (("control", x1, n1), ("treatment", x2, n2)):
        if not 0 <= x <= n:
            return ProportionTest(_NAN, _NAN, _NAN, _NAN, _NAN, None, None, None, _NAN,
                                  1.0, f"{name} has {x} conversions of {n} members")
    p1, p2 = x1 / n1, x2 / n2
    diff = p2 - p1
    z_crit = two_sided_z(alpha)
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    low, high = diff - z_crit * se, diff + z_crit * se
    rel = rel_low = rel_high = None
    if x1 > 0:
        rel = p2 / p1 - 1.0
        if x2 > 0:
            se_log = math.sqrt((1 - p1) / x1 + (1 - p2) / x2)
            log_ratio = math.log(p2 / p1)
            rel_low = math.exp(log_ratio - z_crit * se_log) - 1.0
            rel_high = math.exp(log_ratio + z_crit * se_log) - 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se0 == 0.0:
        what = "none converted" if pooled == 0 else "everyone converted"
        return ProportionTest(p1, p2, diff, low, high, rel, rel_low, rel_high, _NAN, 1.0,
                              f"no variation to test: {what} in either group")
    z = diff / se0
    return ProportionTest(p1, p2, diff, low, high, rel, rel_low, rel_high, z,
                          min(1.0, 2.0 * _norm_sf(abs(z))))


@dataclass(frozen=True)
class ChiSquareTest:
    statistic: float
    dof: int
    p_value: float
    error: str | None = None


def chi_square_test(samples: Sequence[Sample]) -> ChiSquareTest:
    """Pearson's chi-square test of independence on the variants x (converted, not)
    table, without continuity correction (scipy ``chi2_contingency(correction=False)``)."""
    if len(samples) < 2:
        return ChiSquareTest(_NAN, 0, 1.0, "need at least two groups")
    table = np.array([[s.conversions, s.members - s.conversions] for s in samples], float)
    if (table < 0).any():
        return ChiSquareTest(_NAN, 0, 1.0, "conversions exceed members in a group")
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    if (rows == 0).any():
        return ChiSquareTest(_NAN, 0, 1.0, "a group has no members")
    if (cols == 0).any():
        return ChiSquareTest(_NAN, 0, 1.0, "no variation to test: every group has the "
                             "same all-or-nothing outcome")
    expected = np.outer(rows, cols) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    dof = len(samples) - 1
    return ChiSquareTest(stat, dof, float(special.chdtrc(dof, stat)))


# -- means (revenue per member) ----------------------------------------------------------
@dataclass(frozen=True)
class MeanTest:
    control_mean: float
    treatment_mean: float
    difference: float
    ci_low: float
    ci_high: float
    relative: float | None
    t: float
    dof: float
    p_value: float
    error: str | None = None


def welch_test(control: Sample, treatment: Sample, alpha: float = 0.05) -> MeanTest:
    """Welch's t-test of the per-member value (scipy ``ttest_ind_from_stats`` with
    ``equal_var=False``) and the matching interval for the difference of means."""
    n1, n2 = control.members, treatment.members
    m1, m2 = control.mean, treatment.mean
    if n1 < 2 or n2 < 2:
        return MeanTest(m1, m2, m2 - m1, _NAN, _NAN, None, _NAN, _NAN, 1.0,
                        "each group needs at least two members")
    v1, v2 = control.variance / n1, treatment.variance / n2
    diff = m2 - m1
    rel = diff / m1 if m1 else None
    se2 = v1 + v2
    if se2 == 0.0:
        return MeanTest(m1, m2, diff, diff, diff, rel, _NAN, _NAN, 1.0 if diff == 0 else 0.0,
                        "no variation to test: every member has the same value")
    dof = se2 ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    se = math.sqrt(se2)
    t = diff / se
    t_crit = float(special.stdtrit(dof, 1.0 - alpha / 2.0))
    p = 2.0 * float(special.stdtr(dof, -abs(t)))
    return MeanTest(m1, m2, diff, diff - t_crit * se, diff + t_crit * se, rel, t, dof,
                    min(1.0, p))


# -- multiple comparisons and sample ratio -------------------------------------------------
def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Holm (family-wise error) or Benjamini-Hochberg (``"bh"``, false discovery rate)
    adjusted p-values, by statsmodels ``multipletests``."""
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return []
    names = {"holm": "holm", "bh": "fdr_bh", "fdr_bh": "fdr_bh", "none": None}
    if method not in names:
        raise ValueError(f"unknown correction {method!r}: use holm, bh or none")
    if names[method] is None or len(p_values) == 1:
        return [float(p) for p in p_values]
    return [float(p) for p in multipletests(list(p_values), method=names[method])[1]]


@dataclass(frozen=True)
class SampleRatioTest:
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    mismatch: bool          #: p below the threshold: assignment is broken somewhere
    error: str | None = None


def sample_ratio_test(members: Sequence[int], weights: Sequence[float],
                      threshold: float = 0.001) -> SampleRatioTest:
    """Chi-square goodness of fit of the members per variant against the configured
    weights (scipy ``chisquare``)."""
    total = sum(members)
    if len(members) != len(weights) or len(members) < 2:
        return SampleRatioTest(tuple(members), (), _NAN, 1.0, False,
                               "need one weight per group and at least two groups")
    if any(w <= 0 for w in weights):
        return SampleRatioTest(tuple(members), (), _NAN, 1.0, False,
                               "weights must be positive")
    if total == 0:
        return SampleRatioTest(tuple(members), tuple(0.0 for _ in weights), _NAN, 1.0,
                               False, "no members yet")
    wsum = float(sum(weights))
    expected = [total * w / wsum for w in weights]
    stat = sum((o - e) ** 2 / e for o, e in zip(members, expected, strict=True))
    p = float(special.chdtrc(len(members) - 1, stat))
    return SampleRatioTest(tuple(members), tuple(expected), stat, p, p < threshold)


# -- power ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerResult:
    required_per_variant: int | None  #: members per variant for the minimum effect
    achieved_power: float | None      #: at the current sample and the minimum effect
    effect_size: float | None         #: Cohen's h (rates) or d (means)
    error: str | None = None


def rate_power(baseline: float, relative_effect: float, n_control: int, n_treatment: int,
               alpha: float = 0.05, power: float = 0.8) -> PowerResult:
    """Sample size per variant to detect ``baseline * (1 + relative_effect)`` against
    ``baseline`` with a two-sided z-test, from Cohen's h (statsmodels
    ``proportion_effectsize`` and ``NormalIndPower``)."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    target = baseline * (1.0 + relative_effect)
    if not 0.0 < baseline < 1.0 or not math.isfinite(target):
        return PowerResult(None, None, None, f"baseline rate {baseline:.4g} leaves nothing "
                           "to detect (it must be strictly between 0 and 1)")
    if not 0.0 <= target <= 1.0 or relative_effect == 0:
        return PowerResult(None, None, None, f"a relative effect of {relative_effect:+.1%} "
                           f"on a rate of {baseline:.2%} is not a rate")
    h = abs(float(proportion_effectsize(target, baseline)))
    analysis = NormalIndPower()
    n = float(analysis.solve_power(effect_size=h, alpha=alpha, power=power, ratio=1.0,
                                   alternative="two-sided"))
    achieved = None
    if n_control > 0 and n_treatment > 0:
        achieved = float(analysis.power(effect_size=h, nobs1=n_control, alpha=alpha,
                                        ratio=n_treatment / n_control,
                                        alternative="two-sided"))
    return PowerResult(math.ceil(n), achieved, h)


def mean_power(mean: float, std: float, relative_effect: float, n_control: int,
               n_treatment: int, alpha: float = 0.05, power: float = 0.8) -> PowerResult:
    """As :func:`rate_power` for a mean (revenue per member), from Cohen's d with the
    control's standard deviation (statsmodels ``TTestIndPower``)."""
    from statsmodels.stats.power import TTestIndPower

    if not (std > 0 and math.isfinite(std)) or not mean or relative_effect == 0:
        return PowerResult(None, None, None, "the control's values do not vary yet")
    d = abs(mean * relative_effect / std)
    analysis = TTestIndPower()
    n = float(analysis.solve_power(effect_size=d, alpha=alpha, power=power, ratio=1.0,
                                   alternative="two-sided"))
    achieved = None
    if n_control > 1 and n_treatment > 1:
        achieved = float(analysis.power(effect_size=d, nobs1=n_control, alpha=alpha,
                                        ratio=n_treatment / n_control,
                                        alternative="two-sided"))
    return PowerResult(math.ceil(n), achieved, d)


# -- Bayesian -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BayesResult:
    prob_beat_control: float   #: P(treatment rate > control rate), exact
    expected_loss: float       #: E[max(control - treatment, 0)]: the cost of shipping it
    control_ci: tuple[float, float]    #: 95% credible intervals of each rate
    treatment_ci: tuple[float, float]
    draws: int                 #: simulation draws behind expected_loss
    error: str | None = None


def _beta_params(s: Sample, prior: tuple[float, float]) -> tuple[float, float]:
    return prior[0] + s.conversions, prior[1] + s.members - s.conversions


def prob_b_beats_a(a1: float, b1: float, a2: float, b2: float) -> float:
    """P(X2 > X1) for X1 ~ Beta(a1, b1), X2 ~ Beta(a2, b2) with integer ``a2``: the
    closed-form sum over a2 terms (Evan Miller's formula), in log space."""
    if a2 != int(a2):
        raise ValueError("the closed form needs an integer first parameter")
    i = np.arange(int(a2), dtype=float)
    terms = (special.betaln(a1 + i, b1 + b2) - np.log(b2 + i) - special.betaln(1 + i, b2)
             - special.betaln(a1, b1))
    return float(min(1.0, max(0.0, np.exp(terms).sum())))


def bayes_test(control: Sample, treatment: Sample, *, prior: tuple[float, float] = (1, 1),
               draws: int = 200_000, seed: int = 20261122) -> BayesResult:
    """Beta-binomial comparison under Beta(1, 1) priors: the probability to beat the
    control exactly, the expected loss from a seeded simulation (the same inputs always
    give the same numbers)."""
    if control.members <= 0 or treatment.members <= 0:
        return BayesResult(_NAN, _NAN, (_NAN, _NAN), (_NAN, _NAN), 0,
                           "a group has no members")
    a1, b1 = _beta_params(control, prior)
    a2, b2 = _beta_params(treatment, prior)
    prob = prob_b_beats_a(a1, b1, a2, b2)
    rng = np.random.default_rng(seed)
    x1 = rng.beta(a1, b1, draws)
    x2 = rng.beta(a2, b2, draws)
    loss = float(np.maximum(x1 - x2, 0.0).mean())

    def interval(a: float, b: float) -> tuple[float, float]:
        return float(special.betaincinv(a, b, 0.025)), float(special.betaincinv(a, b, 0.975))

    return BayesResult(prob, loss, interval(a1, b1), interval(a2, b2), draws)


def prob_best(samples: Sequence[Sample], *, prior: tuple[float, float] = (1, 1),
              draws: int = 200_000, seed: int = 20261122) -> list[float]:
    """Each group's probability of having the highest rate, by seeded simulation."""
    if not samples or any(s.members <= 0 for s in samples):
        return [_NAN] * len(samples)
    rng = np.random.default_rng(seed)
    sims = np.stack([rng.beta(*_beta_params(s, prior), draws) for s in samples])
    best = np.bincount(sims.argmax(axis=0), minlength=len(samples))
    return [float(b) / draws for b in best]


# -- sequential --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SequentialTest:
    """A mixture sequential probability ratio test (mSPRT) of "no difference", with a
    normal mixing distribution N(0, tau^2) over the difference. Its p-value and
    confidence sequence stay valid however often they are looked at."""

    difference: float
    p_value: float      #: always valid: min(1, 1 / likelihood ratio)
    ci_low: float       #: confidence sequence for the difference at this look
    ci_high: float
    likelihood_ratio: float
    error: str | None = None


def msprt(difference: float, variance_h0: float, variance: float, tau: float,
          alpha: float = 0.05) -> SequentialTest:
    """The mSPRT of a difference estimate with variance ``variance_h0`` under the null
    (for rates: the pooled variance) and ``variance`` for its confidence sequence.

    ``tau`` is the standard deviation of the mixing distribution: the size of effect
    the test is most sensitive to (the minimum detectable effect suits)."""
    if not (tau > 0 and math.isfinite(tau)):
        return SequentialTest(difference, 1.0, _NAN, _NAN, 1.0,
                              "the mixing scale must be positive")
    t2 = tau * tau
    if variance_h0 > 0:
        v = variance_h0
        log_lr = 0.5 * math.log(v / (v + t2)) + difference ** 2 * t2 / (2 * v * (v + t2))
        lr = math.exp(min(log_lr, 700.0))
        p = min(1.0, 1.0 / lr)
    else:
        lr, p = 1.0, 1.0
    if variance > 0:
        v = variance
        half = math.sqrt(2 * v * (v + t2) / t2 * (math.log(1 / alpha)
                                                 + 0.5 * math.log((v + t2) / v)))
        low, high = difference - half, difference + half
    else:
        low = high = _NAN
    error = None if variance_h0 > 0 else "no variation to test yet"
    return SequentialTest(difference, p, low, high, lr, error)


def sequential_rate_test(control: Sample, treatment: Sample, tau: float,
                         alpha: float = 0.05) -> SequentialTest:
    """:func:`msprt` for the difference of two conversion rates."""
    n1, n2 = control.members, treatment.members
    if n1 <= 0 or n2 <= 0:
        return SequentialTest(_NAN, 1.0, _NAN, _NAN, 1.0, "a group has no members")
    p1, p2 = control.conversions / n1, treatment.conversions / n2
    pooled = (control.conversions + treatment.conversions) / (n1 + n2)
    v0 = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    v = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    return msprt(p2 - p1, v0, v if v > 0 else v0, tau, alpha)


def sequential_mean_test(control: Sample, treatment: Sample, tau: float,
                         alpha: float = 0.05) -> SequentialTest:
    """:func:`msprt` for the difference of two means (revenue per member)."""
    n1, n2 = control.members, treatment.members
    if n1 < 2 or n2 < 2:
        return SequentialTest(_NAN, 1.0, _NAN, _NAN, 1.0,
                              "each group needs at least two members")
    v = control.variance / n1 + treatment.variance / n2
    return msprt(treatment.mean - control.mean, v, v, tau, alpha)
