"""Monetization triggers: what in a session goes with a purchase.

The unit is the session (KPIS.md); a session converts when it contains the trigger of a
purchase. Each candidate (an intent, an intent with a sentiment label, the hour of day or
the weekday the session starts, the campaign the member came from) splits the sessions
in two: those with it and the rest.
For each candidate the analysis reports both conversion rates, the lift, a Wilson 95%
interval, a two-sided p-value (Fisher's exact test where an expected count is under 5,
the pooled z-test otherwise), revenue per session, and the expected incremental revenue
``sessions with it x (revenue per session with it - without it)``. Candidates under the
minimum support are not tested; the others are adjusted together by Benjamini-Hochberg.

Only what happens up to a session's first purchase trigger counts, so a "thank you"
after the payment is not taken for a cause of it. Funnel intents (the purchase button,
the checkout and the payment itself) are left out: they are the purchase, not what leads
to it.

A cross-validated L2-regularised logistic regression over the same features (and the
session's length up to a purchase, funnel intents left out, since long sessions contain
more of everything) separates intents that
only travel together: the adjusted odds ratio of an intent that merely accompanies a
profitable one stays near 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .data import OptimizerData
from .results import Serializable, two_by_two_p_value, wilson_interval
from .stats import adjust_p_values

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DEFAULT_FUNNEL_INTENTS = ("purchase", "checkout", "payment")


@dataclass(frozen=True)
class TriggerStat:
    """One candidate against the rest of the sessions."""

    kind: str                  #: intent, intent_sentiment, hour, weekday or campaign
    key: str                   #: "pricing", "complaint|negative", "14", "Friday", "promo"
    sessions: int              #: sessions with it
    conversions: int
    rate: float
    ci_low: float              #: Wilson 95% interval of ``rate``
    ci_high: float
    rest_sessions: int
    rest_conversions: int
    rest_rate: float
    lift: float | None         #: rate / rest_rate (None when the rest never converts)
    difference: float          #: rate - rest_rate
    p_value: float
    test: str                  #: fisher, z or none
    q_value: float             #: Benjamini-Hochberg adjusted
    significant: bool
    revenue_per_session: float
    rest_revenue_per_session: float
    expected_incremental_revenue: float
    adjusted_odds_ratio: float | None = None  #: from the logistic regression

    @property
    def label(self) -> str:
        if self.kind == "intent":
            return self.key
        if self.kind == "intent_sentiment":
            intent, label = self.key.split("|", 1)
            return f"{intent} ({label})"
        if self.kind == "hour":
            return f"{int(self.key):02d}:00-{int(self.key):02d}:59 UTC"
        if self.kind == "campaign":
            return f"campaign {self.key}"
        return self.key


@dataclass(frozen=True)
class MonetizationResult(Serializable):
    period_start: str
    period_end: str
    sessions: int
    conversions: int            #: converted sessions
    conversion_rate: float
    revenue: float
    currency: str | None
    fdr: float
    min_support: int
    #: Significant positive intents, by expected incremental revenue.
    profitable_intents: tuple[TriggerStat, ...]
    #: Every significant candidate of every kind (positive or negative), by q-value.
    significant: tuple[TriggerStat, ...]
    #: Every tested candidate.
    candidates: tuple[TriggerStat, ...]
    untested: int               #: candidates under the minimum support
    excluded_intents: tuple[str, ...]
    model_auc: float | None     #: cross-validated ROC AUC of the logistic regression
    model_features: int
    error: str | None = None


def session_features(data: OptimizerData, funnel_intents: Sequence[str] = DEFAULT_FUNNEL_INTENTS
                     ) -> tuple[sparse.csr_matrix, list[tuple[str, str]], pd.DataFrame]:
    """The session x candidate 0/1 matrix, the candidates' (kind, key), and the session
    table it was built from (computed once per data and funnel intents)."""
    cache_key = ("session_features", tuple(funnel_intents))
    cached: Any = data.cache.get(cache_key)
    if cached is not None:
        return cached
    s = data.sessions
    table = data.session_table()
    if s.empty:
        empty: tuple[sparse.csr_matrix, list[tuple[str, str]], pd.DataFrame] = (
            sparse.csr_matrix((0, 0)), [], table)
        data.cache[cache_key] = empty
        return empty
    pre = s[s["before_purchase"]]
    named = pre[pre["intent"].notna() & ~pre["intent"].isin(list(funnel_intents))]
    labelled = named[named["sentiment"].notna()]
    starts = table["start"]
    parts = [
        ("intent", named["session"].to_numpy(), named["intent"].astype(str).to_numpy()),
        ("intent_sentiment", labelled["session"].to_numpy(),
         (labelled["intent"].astype(str) + "|" + labelled["sentiment"].astype(str)).to_numpy()),
        ("hour", table.index.to_numpy(), starts.dt.hour.to_numpy()),
        ("weekday", table.index.to_numpy(), starts.dt.day_of_week.to_numpy()),
    ]
    members = data.members.drop_duplicates("member_id").set_index("member_id")["campaign"]
    campaign = table["member_id"].map(members)
    came = campaign.notna().to_numpy()
    if came.any():
        parts.append(("campaign", table.index.to_numpy()[came],
                      campaign[came].astype(str).to_numpy()))
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    keys: list[tuple[str, str]] = []
    for kind, sessions, values in parts:
        codes, uniques = pd.factorize(values, sort=True)
        rows.append(sessions)
        cols.append(codes + len(keys))
        for u in uniques:
            key = WEEKDAYS[int(u)] if kind == "weekday" else str(u)
            keys.append((kind, key))
    r, c = np.concatenate(rows), np.concatenate(cols)
    matrix = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(table), len(keys)))
    matrix.data[:] = 1.0  # repeated (session, candidate) pairs were summed
    result = (matrix, keys, table)
    data.cache[cache_key] = result
    return result


def column_counts(matrix: sparse.csr_matrix, converted: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate column: the sessions with it, and how many of those converted."""
    with_n = np.asarray(matrix.sum(axis=0)).ravel().astype(int)
    with_x = np.asarray(matrix.T @ converted.astype(float)).ravel().round().astype(int)
    return with_n, with_x


def _adjusted_odds(matrix: sparse.csr_matrix, y: np.ndarray, seed: int,
                   max_sessions: int) -> tuple[np.ndarray | None, float | None]:
    """Odds ratios of each feature from an L2 logistic regression whose strength is
    chosen by cross-validated ROC AUC, and that AUC (None when there is too little to
    fit)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    positives = int(y.sum())
    if positives < 10 or len(y) - positives < 10 or matrix.shape[1] == 0:
        return None, None
    rng = np.random.default_rng(seed)
    if len(y) > max_sessions:
        keep = np.sort(rng.choice(len(y), max_sessions, replace=False))
        matrix, y = matrix[keep], y[keep]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    best: tuple[float, float] | None = None
    for c in (0.1, 1.0, 10.0):
        auc = float(np.mean(cross_val_score(LogisticRegression(C=c, max_iter=1000), matrix,
                                            y, cv=folds, scoring="roc_auc")))
        if best is None or auc > best[1]:
            best = (c, auc)
    assert best is not None
    model = LogisticRegression(C=best[0], max_iter=1000).fit(matrix, y)
    return np.exp(model.coef_[0]), best[1]


def analyze_monetization_triggers(
        data: OptimizerData, *, fdr: float = 0.05, min_support: int = 30,
        funnel_intents: Sequence[str] = DEFAULT_FUNNEL_INTENTS, model: bool = True,
        seed: int = 7, max_model_sessions: int = 200_000) -> MonetizationResult:
    """See the module's description. ``model=False`` skips the logistic regression."""
    period = (data.start.isoformat(), data.end.isoformat())
    matrix, keys, table = session_features(data, funnel_intents)
    n = len(table)
    if n == 0:
        return MonetizationResult(*period, 0, 0, math.nan, 0.0, data.currency, fdr,
                                  min_support, (), (), (), 0, tuple(funnel_intents), None, 0,
                                  error="no sessions in the period")
    y = table["converted"].to_numpy(dtype=bool)
    revenue = table["revenue"].to_numpy(dtype=float)
    total_conv, total_rev = int(y.sum()), float(revenue.sum())
    with_n, with_x = column_counts(matrix, y)
    with_rev = np.asarray(matrix.T @ revenue).ravel()
    tested = [j for j in range(len(keys))
              if with_n[j] >= min_support and n - with_n[j] >= min_support]
    odds, auc = (None, None)
    if model:
        # The session's length (before any purchase) joins the features, so that long
        # sessions, which contain more of everything, lend no intent an effect.
        s = data.sessions
        pre = s.loc[s["before_purchase"] & ~s["intent"].isin(list(funnel_intents))]
        length = pre.groupby("session").size().reindex(table.index, fill_value=0)
        design = sparse.hstack([matrix, sparse.csr_matrix(
            np.log1p(length.to_numpy(dtype=float))[:, None])], format="csr")
        odds, auc = _adjusted_odds(design, y.astype(int), seed, max_model_sessions)
    raw: list[dict[str, object]] = []
    for j in tested:
        n1, x1 = int(with_n[j]), int(with_x[j])
        n0, x0 = n - n1, total_conv - x1
        p, test = two_by_two_p_value(x1, n1, x0, n0)
        rate, rest = x1 / n1, x0 / n0
        low, high = wilson_interval(x1, n1)
        rps1, rps0 = with_rev[j] / n1, (total_rev - with_rev[j]) / n0
        raw.append(dict(kind=keys[j][0], key=keys[j][1], sessions=n1, conversions=x1,
                        rate=rate, ci_low=low, ci_high=high, rest_sessions=n0,
                        rest_conversions=x0, rest_rate=rest,
                        lift=rate / rest if rest > 0 else None, difference=rate - rest,
                        p_value=p, test=test, revenue_per_session=rps1,
                        rest_revenue_per_session=rps0,
                        expected_incremental_revenue=n1 * (rps1 - rps0),
                        adjusted_odds_ratio=float(odds[j]) if odds is not None else None))
    q_values = adjust_p_values([float(r["p_value"]) for r in raw], "bh")  # type: ignore[arg-type]
    stats = [TriggerStat(q_value=q, significant=q <= fdr, **r)  # type: ignore[arg-type]
             for r, q in zip(raw, q_values, strict=True)]
    significant = sorted((s for s in stats if s.significant), key=lambda s: (s.q_value, s.key))
    profitable = sorted((s for s in significant if s.kind == "intent" and s.difference > 0),
                        key=lambda s: -s.expected_incremental_revenue)
    return MonetizationResult(
        *period, n, total_conv, total_conv / n, total_rev, data.currency, fdr, min_support,
        tuple(profitable), tuple(significant),
        tuple(sorted(stats, key=lambda s: (s.kind, s.key))), len(keys) - len(tested),
        tuple(funnel_intents), auc, len(keys))


@dataclass(frozen=True)
class IntentConversion:
    intent: str
    sessions: int
    conversions: int
    rate: float
    ci_low: float
    ci_high: float


def intent_conversions(data: OptimizerData,
                       funnel_intents: Sequence[str] = DEFAULT_FUNNEL_INTENTS
                       ) -> list[IntentConversion]:
    """Every intent's sessions and their conversion rate with a Wilson 95% interval,
    by sessions (no test: for tables and charts)."""
    matrix, keys, table = session_features(data, funnel_intents)
    if not keys:
        return []
    with_n, with_x = column_counts(matrix, table["converted"].to_numpy(dtype=float))
    out = []
    for j, (kind, key) in enumerate(keys):
        if kind != "intent" or with_n[j] == 0:
            continue
        low, high = wilson_interval(int(with_x[j]), int(with_n[j]))
        out.append(IntentConversion(key, int(with_n[j]), int(with_x[j]),
                                    with_x[j] / with_n[j], low, high))
    return sorted(out, key=lambda c: (-c.sessions, c.intent))
