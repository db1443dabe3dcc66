"""optimizer.stats and optimizer.abtest against statsmodels, scipy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from optimizer.abtest import (
    INVALID_SRM,
    NO_EFFECT,
    NO_WINNER_YET,
    WINNER,
    ExperimentData,
    VariantData,
    analyze_experiment,
)
from optimizer.stats import (
    Sample,
    adjust_p_values,
    bayes_test,
    chi_square_test,
    msprt,
    prob_best,
    proportion_test,
    rate_power,
    sample_ratio_test,
    sequential_rate_test,
    welch_test,
)

TOL = 1e-6

# (control members, conversions), (treatment members, conversions): ordinary, tiny,
# lopsided, no conversions in one group, every member converted in one group, one member.
RATE_CASES = [
    ((1000, 100), (1100, 140)),
    ((3, 1), (4, 3)),
    ((10_000, 5), (20, 3)),
    ((50, 0), (60, 5)),
    ((30, 30), (40, 20)),
    ((1, 0), (1, 1)),
    ((250_000, 12_500), (250_000, 12_900)),
]


@pytest.mark.parametrize(("control", "treatment"), RATE_CASES)
def test_proportion_test_matches_statsmodels(control: tuple[int, int],
                                             treatment: tuple[int, int]) -> None:
    (n1, x1), (n2, x2) = control, treatment
    r = proportion_test(Sample(n1, x1), Sample(n2, x2))
    assert r.error is None
    z, p = proportions_ztest([x2, x1], [n2, n1])
    assert r.z == pytest.approx(z, abs=TOL)
    assert r.p_value == pytest.approx(p, abs=TOL)
    low, high = confint_proportions_2indep(x2, n2, x1, n1, method="wald", compare="diff")
    assert (r.ci_low, r.ci_high) == pytest.approx((low, high), abs=TOL)
    if x1 > 0 and x2 > 0:
        low, high = confint_proportions_2indep(x2, n2, x1, n1, method="log", compare="ratio")
        assert r.relative_ci_low == pytest.approx(low - 1, abs=TOL)
        assert r.relative_ci_high == pytest.approx(high - 1, abs=TOL)
        assert r.relative == pytest.approx((x2 / n2) / (x1 / n1) - 1, abs=TOL)
    else:
        assert r.relative_ci_low is None


@pytest.mark.parametrize(("control", "treatment", "message"), [
    (Sample(10, 0), Sample(12, 0), "none converted"),
    (Sample(10, 10), Sample(12, 12), "everyone converted"),
    (Sample(0, 0), Sample(12, 3), "no members"),
    (Sample(5, 7), Sample(12, 3), "7 conversions of 5 members"),
])
def test_proportion_test_degenerate_input_gives_an_error_not_an_exception(
        control: Sample, treatment: Sample, message: str) -> None:
    r = proportion_test(control, treatment)
    assert r.error is not None and message in r.error
    assert r.p_value == 1.0


@pytest.mark.parametrize("table", [
    [(1000, 100), (1100, 140), (900, 95)],
    [(3, 1), (4, 3)],
    [(10, 0), (12, 5), (7, 7), (30, 2)],
])
def test_chi_square_matches_scipy(table: list[tuple[int, int]]) -> None:
    r = chi_square_test([Sample(n, x) for n, x in table])
    stat, p, dof, _ = stats.chi2_contingency([[x, n - x] for n, x in table], correction=False)
    assert r.error is None
    assert r.statistic == pytest.approx(stat, abs=TOL)
    assert r.p_value == pytest.approx(p, abs=TOL)
    assert r.dof == dof


def test_chi_square_without_variation_is_an_error() -> None:
    assert chi_square_test([Sample(10, 0), Sample(20, 0), Sample(5, 0)]).error
    assert chi_square_test([Sample(10, 1)]).error


def _sample_of(values: np.ndarray, conversions: int = 0) -> Sample:
    return Sample(len(values), conversions, float(values.sum()), float((values ** 2).sum()))


@pytest.mark.parametrize(("n1", "n2", "scale2"), [(500, 520, 1.2), (2, 3, 5.0),
                                                   (40, 4000, 0.5)])
def test_welch_matches_scipy_on_raw_values(n1: int, n2: int, scale2: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    a = rng.exponential(10.0, n1) * (rng.random(n1) < 0.3)   # revenue: mostly zeros
    b = rng.exponential(10.0 * scale2, n2) * (rng.random(n2) < 0.3)
    r = welch_test(_sample_of(a), _sample_of(b))
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert r.error is None
    assert r.t == pytest.approx(ref.statistic, abs=TOL)
    assert r.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert r.dof == pytest.approx(ref.df, abs=1e-6)
    ci = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-6)
    ref_stats = stats.ttest_ind_from_stats(b.mean(), b.std(ddof=1), n2, a.mean(),
                                           a.std(ddof=1), n1, equal_var=False)
    assert r.p_value == pytest.approx(ref_stats.pvalue, abs=TOL)


def test_welch_degenerate_input() -> None:
    assert "at least two" in (welch_test(Sample(1, 0, 5, 25), Sample(10, 0, 50, 300)).error
                              or "")
    same = welch_test(Sample(10, 0, 50, 250), Sample(10, 0, 50, 250))
    assert same.error is not None and same.p_value == 1.0


def test_holm_and_benjamini_hochberg_by_hand() -> None:
    # Holm: sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04).
    assert adjust_p_values([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # BH: p_(i) * m / i from the largest down, cumulative minimum.
    assert adjust_p_values([0.01, 0.04, 0.03], "bh") == pytest.approx([0.03, 0.04, 0.04])
    assert adjust_p_values([0.2]) == [0.2]
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p_values([0.1, 0.2], "bonferonni")


@pytest.mark.parametrize(("members", "weights"), [
    ([5000, 5100], [1, 1]), ([1000, 1000, 2300], [1, 1, 2]), ([4800, 5400], [1, 1]),
    ([3, 9], [1, 3]),
])
def test_sample_ratio_matches_scipy(members: list[int], weights: list[float]) -> None:
    r = sample_ratio_test(members, weights)
    total = sum(members)
    expected = [total * w / sum(weights) for w in weights]
    ref = stats.chisquare(members, expected)
    assert r.statistic == pytest.approx(ref.statistic, abs=TOL)
    assert r.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert r.mismatch == (ref.pvalue < 0.001)


def test_sample_ratio_mismatch_is_flagged() -> None:
    assert sample_ratio_test([4800, 5400], [1, 1]).mismatch      # p about 3e-9
    assert not sample_ratio_test([5000, 5100], [1, 1]).mismatch
    assert sample_ratio_test([0, 0], [1, 1]).error == "no members yet"


@pytest.mark.parametrize(("baseline", "lift", "alpha", "power"), [
    (0.10, 0.10, 0.05, 0.8), (0.02, 0.5, 0.05, 0.9), (0.5, -0.2, 0.01, 0.8)])
def test_sample_size_and_power_match_the_closed_form(baseline: float, lift: float,
                                                      alpha: float, power: float) -> None:
    r = rate_power(baseline, lift, 1000, 1500, alpha, power)
    target = baseline * (1 + lift)
    h = abs(2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline)))
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    assert r.effect_size == pytest.approx(h, abs=TOL)
    assert r.required_per_variant == math.ceil(2 * (za + zb) ** 2 / h ** 2)
    se = math.sqrt(1 / 1000 + 1 / 1500)
    achieved = stats.norm.cdf(h / se - za) + stats.norm.cdf(-h / se - za)
    assert r.achieved_power == pytest.approx(achieved, abs=TOL)


def test_power_of_a_rate_that_cannot_move() -> None:
    assert rate_power(0.0, 0.1, 10, 10).error
    assert rate_power(0.8, 0.5, 10, 10).error   # 120% is not a rate


@pytest.mark.parametrize(("control", "treatment"), [
    (Sample(1000, 100), Sample(1100, 140)), (Sample(3, 0), Sample(4, 4)),
    (Sample(1, 0), Sample(1, 1)), (Sample(200, 20), Sample(200, 20))])
def test_bayesian_probability_and_loss_match_integration(control: Sample,
                                                         treatment: Sample) -> None:
    r = bayes_test(control, treatment)
    a1, b1 = 1 + control.conversions, 1 + control.members - control.conversions
    a2, b2 = 1 + treatment.conversions, 1 + treatment.members - treatment.conversions
    prob, _ = integrate.quad(lambda x: stats.beta.pdf(x, a2, b2) * stats.beta.cdf(x, a1, b1),
                             0, 1, epsabs=1e-10, epsrel=1e-10, limit=200)
    assert r.prob_beat_control == pytest.approx(prob, abs=TOL)

    def inner(x: float) -> float:
        # E[(x - B)+] = x F_B(x) - E[B] F_{Beta(a2+1, b2)}(x)
        return (x * stats.beta.cdf(x, a2, b2)
                - a2 / (a2 + b2) * stats.beta.cdf(x, a2 + 1, b2))

    loss, _ = integrate.quad(lambda x: stats.beta.pdf(x, a1, b1) * inner(x), 0, 1,
                             epsabs=1e-12, limit=200)
    assert r.expected_loss == pytest.approx(loss, rel=0.03, abs=2e-4)  # simulation
    assert r.control_ci == pytest.approx(stats.beta.ppf([0.025, 0.975], a1, b1), abs=TOL)
    assert bayes_test(control, treatment) == r  # seeded: the same inputs, the same numbers


def test_probability_to_be_best_adds_up_and_ranks() -> None:
    probs = prob_best([Sample(1000, 100), Sample(1000, 130), Sample(1000, 90)])
    assert sum(probs) == pytest.approx(1.0)
    assert probs[1] > 0.95 and probs[1] == max(probs)


def test_msprt_likelihood_ratio_is_the_normal_mixture() -> None:
    diff, v, tau = 0.02, 0.0001, 0.01

    def mixture(theta: float) -> float:
        return stats.norm.pdf(diff, theta, math.sqrt(v)) * stats.norm.pdf(theta, 0, tau)

    numerator, _ = integrate.quad(mixture, -1, 1, points=[0, diff], epsabs=1e-14)
    lr = numerator / stats.norm.pdf(diff, 0, math.sqrt(v))
    r = msprt(diff, v, v, tau)
    assert r.likelihood_ratio == pytest.approx(lr, rel=1e-6)
    assert r.p_value == pytest.approx(min(1.0, 1 / lr), rel=1e-6)
    # The confidence sequence's ends are where the ratio against them reaches 1/alpha.
    for end in (r.ci_low, r.ci_high):
        assert msprt(diff - end, v, v, tau).likelihood_ratio == pytest.approx(20.0, rel=1e-6)


def _aa_paths(sims: int, days: int, per_day: int, rate: float, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conv = rng.binomial(per_day, rate, size=(2, sims, days)).cumsum(axis=2)
    members = np.arange(1, days + 1) * per_day
    return conv, members


def test_aa_experiments_looked_at_daily_keep_false_positives_under_alpha() -> None:
    """2,000 A/A experiments (no true difference), looked at every day for 30 days. The
    fixed-horizon z-test, stopped at the first look with p < 0.05, declares a difference
    far more often than 5%; the sequential test stays at or under 5%."""
    alpha, mde, sims, days = 0.05, 0.1, 2000, 30
    conv, members = _aa_paths(sims, days, 200, 0.1, seed=1)
    fixed_hits = seq_hits = 0
    for s in range(sims):
        fixed = seq = False
        for d in range(days):
            n = int(members[d])
            a, b = Sample(n, int(conv[0, s, d])), Sample(n, int(conv[1, s, d]))
            fixed = fixed or proportion_test(a, b).p_value < alpha
            # tau as the analysis sets it: the minimum effect at the control's level now.
            seq = seq or sequential_rate_test(a, b, mde * a.rate, alpha).p_value < alpha
        fixed_hits += fixed
        seq_hits += seq
    fixed_rate, seq_rate = fixed_hits / sims, seq_hits / sims
    assert fixed_rate > 0.15, fixed_rate     # peeking inflates the fixed test (about 25%)
    assert seq_rate <= alpha, seq_rate


def test_sequential_test_finds_a_real_effect() -> None:
    """With a true +30% lift the same daily-looked sequential test finds it in most runs."""
    sims, days, per_day = 300, 30, 200
    rng = np.random.default_rng(2)
    a_conv = rng.binomial(per_day, 0.10, size=(sims, days)).cumsum(axis=1)
    b_conv = rng.binomial(per_day, 0.13, size=(sims, days)).cumsum(axis=1)
    found = 0
    for s in range(sims):
        for d in range(days):
            n = per_day * (d + 1)
            a, b = Sample(n, int(a_conv[s, d])), Sample(n, int(b_conv[s, d]))
            if sequential_rate_test(a, b, 0.1 * a.rate).p_value < 0.05:
                found += 1
                break
    assert found / sims > 0.8


def _data(variants: list[tuple[str, int, int]], **kw: object) -> ExperimentData:
    return ExperimentData("exp", variants[0][0], tuple(
        VariantData(name, 1.0, Sample(n, x)) for name, n, x in variants), **kw)  # type: ignore[arg-type]


def test_decision_winner_control_and_chi_square() -> None:
    r = analyze_experiment(_data([("a", 5000, 500), ("b", 5000, 650), ("c", 5000, 520)],
                                 days_running=10, bayes_draws=20_000))
    assert r.decision == WINNER and r.winner == "b"
    assert "Roll out 'b'" in r.recommended_action
    assert r.control_rate == pytest.approx(0.1) and r.variant_rate == pytest.approx(0.13)
    assert r.improvement == pytest.approx(0.3)
    assert r.chi_square is not None and r.chi_square.dof == 2
    c = {x.variant: x for x in r.comparisons}
    # Holm across the two comparisons, by hand.
    ps = sorted([c["b"].p_value, c["c"].p_value])
    assert c["b"].p_adjusted == pytest.approx(min(1, 2 * ps[0]))
    assert c["c"].p_adjusted == pytest.approx(min(1, max(2 * ps[0], ps[1])))
    assert c["b"].prob_best is not None and c["b"].prob_best > 0.99
    worse = analyze_experiment(_data([("a", 5000, 650), ("b", 5000, 500)], days_running=5))
    assert worse.decision == WINNER and worse.winner == "a"


def test_decision_sample_ratio_mismatch_overrides_a_winner() -> None:
    r = analyze_experiment(_data([("a", 4000, 400), ("b", 5000, 650)], days_running=5))
    assert r.srm.mismatch
    assert r.decision == INVALID_SRM and r.winner is None
    assert "sample ratio mismatch" in r.recommended_action


def test_decision_no_effect_and_not_yet() -> None:
    big = analyze_experiment(_data([("a", 400_000, 40_000), ("b", 400_000, 40_100)],
                                   days_running=20, bayes_draws=0))
    assert big.decision == NO_EFFECT
    small = analyze_experiment(_data([("a", 500, 50), ("b", 500, 55)], days_running=5,
                                     bayes_draws=0))
    assert small.decision == NO_WINNER_YET
    assert small.days_to_go is not None and small.days_to_go > 0
    assert f"about {math.ceil(small.days_to_go)} more days" in small.recommended_action


def test_sequential_p_is_the_smallest_over_the_daily_looks() -> None:
    daily_a = (Sample(100, 5), Sample(200, 12), Sample(300, 30))
    daily_b = (Sample(100, 15), Sample(200, 24), Sample(300, 33))
    data = ExperimentData("exp", "a", (VariantData("a", 1, daily_a[-1], daily_a),
                                       VariantData("b", 1, daily_b[-1], daily_b)),
                          bayes_draws=0)
    r = analyze_experiment(data)
    per_look = [sequential_rate_test(a, b, 0.1 * a.rate).p_value
                for a, b in zip(daily_a, daily_b, strict=True)]
    assert r.comparisons[0].sequential_p == pytest.approx(min(per_look))
    assert min(per_look) < per_look[-1]   # an earlier look was the strongest


@pytest.mark.parametrize("variants", [
    [("a", 0, 0), ("b", 0, 0)], [("a", 10, 0), ("b", 12, 0)], [("a", 1, 1), ("b", 1, 1)]])
def test_degenerate_experiments_analyse_without_exceptions(
        variants: list[tuple[str, int, int]]) -> None:
    r = analyze_experiment(_data(variants, bayes_draws=1000))
    assert r.decision in (NO_WINNER_YET, NO_EFFECT)
    assert r.winner is None


def test_bad_definitions_come_back_as_errors() -> None:
    r = analyze_experiment(ExperimentData("e", "z", (VariantData("a", 1, Sample(1)),
                                                     VariantData("b", 1, Sample(1)))))
    assert r.error is not None and "not one of the variants" in r.error
    assert analyze_experiment(ExperimentData("e", "a", (VariantData("a", 1, Sample(1)),))
                              ).error
