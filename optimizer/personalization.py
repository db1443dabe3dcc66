"""Personalization: segments of members, rules that say who buys, and what to offer whom.

Member features over the period: recency (days from the last interaction to the period's
end), frequency (sessions), money spent, intent mix (share of the member's messages per
intent, for the most used intents), mean sentiment, tenure (days since first seen) and
campaign. Standardised, they are clustered with k-means, k chosen by the silhouette
between 2 and 8 (seeded), and each segment is named in plain words from its centre.

Rules: a decision tree of depth 3 or less predicting whether a member buys in the period
from the same features except the money spent and the funnel intents (they are the
purchase), exported as if-then rules with their support and conversion rate.

Upsell opportunities: within each segment, the conversion rate of sessions containing an
intent against the segment's other sessions, with lift, Wilson interval and a p-value,
Benjamini-Hochberg adjusted across all pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .data import OptimizerData
from .monetization import DEFAULT_FUNNEL_INTENTS, column_counts, session_features
from .results import Serializable, two_by_two_p_value, wilson_interval
from .stats import adjust_p_values

TOP_INTENTS = 8
TOP_CAMPAIGNS = 5


@dataclass(frozen=True)
class Segment:
    name: str
    members: int
    share: float
    buyers: int
    conversion_rate: float        #: share of the segment's members who bought
    revenue_per_member: float
    description: str              #: the centre in plain words
    centre: dict[str, float]      #: the centre in the features' own units


@dataclass(frozen=True)
class Rule:
    conditions: tuple[str, ...]
    members: int
    buyers: int
    conversion_rate: float
    text: str


@dataclass(frozen=True)
class Upsell:
    segment: str
    intent: str
    sessions: int
    conversions: int
    rate: float
    ci_low: float
    ci_high: float
    rest_sessions: int
    rest_rate: float
    lift: float | None
    p_value: float
    q_value: float
    significant: bool
    text: str


@dataclass(frozen=True)
class PersonalizationResult(Serializable):
    period_start: str
    period_end: str
    members: int
    k: int
    silhouette: float | None
    silhouettes: dict[str, float]        #: k -> silhouette score of each k tried
    segments: tuple[Segment, ...]
    rules: tuple[Rule, ...]
    rules_auc: float | None              #: cross-validated ROC AUC of the tree
    upsell_opportunities: tuple[Upsell, ...]
    error: str | None = None
    #: member id -> segment name (not serialised: it can be large).
    assignments: dict[int, str] = field(default_factory=dict, metadata={"json": False})


def member_features(data: OptimizerData, funnel_intents: Sequence[str]
                    ) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features per active member (index: member id), whether each bought, and what
    each spent in the period's currency."""
    s = data.sessions
    end = pd.Timestamp(data.end)
    g = s.groupby("member_id")
    out = pd.DataFrame({
        "recency_days": (end - g["ts"].max()).dt.total_seconds() / 86400.0,
        "sessions": g["session"].nunique().astype(float),
    })
    p = data.purchases.assign(v=data.purchase_value())
    p = p[p["member_id"].isin(out.index)]
    spent = p.groupby("member_id")["v"].sum().reindex(out.index, fill_value=0.0)
    bought = p.groupby("member_id").size().reindex(out.index, fill_value=0) > 0
    out["spent"] = spent
    named = s[s["intent"].notna() & ~s["intent"].isin(list(funnel_intents))]
    top = named.groupby("intent")["member_id"].nunique().sort_values(ascending=False)
    counts = g.size()
    for intent in sorted(top.index[:TOP_INTENTS]):
        share = named[named["intent"] == intent].groupby("member_id").size() / counts
        out[f"share:{intent}"] = share.reindex(out.index).fillna(0.0)
    sentiment = g["sentiment_score"].mean()
    out["sentiment"] = sentiment.fillna(sentiment.mean() if sentiment.notna().any() else 0.0)
    first = g["ts"].min()
    m = data.members.drop_duplicates("member_id").set_index("member_id")
    if not m.empty:
        known = m["first_seen"].reindex(out.index)
        first = known.where(known.notna() & (known < first), first)
    out["tenure_days"] = (end - first).dt.total_seconds() / 86400.0
    if not m.empty and m["campaign"].notna().any():
        campaigns = m["campaign"].reindex(out.index)
        for name in campaigns.value_counts().index[:TOP_CAMPAIGNS]:
            out[f"campaign:{name}"] = (campaigns == name).astype(float)
    return out.astype(float), bought, spent


def _describe(name: str, value: float, currency: str | None) -> str:
    if name == "recency_days":
        return f"last seen {value:.1f} days before the end"
    if name == "sessions":
        return f"{value:.1f} sessions"
    if name == "spent":
        return f"spent {value:.2f}{' ' + currency if currency else ''}"
    if name == "sentiment":
        return f"mean sentiment {value:+.2f}"
    if name == "tenure_days":
        return f"member for {value:.0f} days"
    if name.startswith("share:"):
        return f"{max(0.0, value):.0%} of messages {name[6:]}"
    if name.startswith("campaign:"):
        return f"{max(0.0, value):.0%} from campaign {name[9:]}"
    return f"{name} {value:.2f}"


def _name(z: pd.Series) -> tuple[str, str | None]:
    """A plain name from a centre in standard units, and a qualifier."""
    if z.get("spent", 0) >= 0.5:
        base = "high-value buyers"
    elif z.get("recency_days", 0) >= 0.75:
        base = "at risk"
    elif z.get("tenure_days", 0) <= -0.75:
        base = "new"
    elif z.get("sessions", 0) >= 0.75:
        base = "regulars"
    elif z.get("sentiment", 0) <= -0.75:
        base = "unhappy"
    else:
        base = "browsers"
    extra = z[[c for c in z.index if c.startswith(("share:", "campaign:"))]]
    extra = extra[extra >= 0.75]
    qualifier = None
    if not extra.empty:
        top = str(extra.idxmax())
        qualifier = (f"asking about {top[6:]}" if top.startswith("share:")
                     else f"from {top[9:]}")
    return base, qualifier


def _segment(x: np.ndarray, seed: int, k_range: range, sample: int
             ) -> tuple[np.ndarray, np.ndarray, int, float | None, dict[str, float]]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(x)
    scores: dict[str, float] = {}
    best: tuple[int, float, Any] | None = None
    for k in k_range:
        if k >= n:
            break
        km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
        if len(set(km.labels_)) < 2:
            continue
        score = float(silhouette_score(x, km.labels_, sample_size=min(n, sample),
                                       random_state=seed))
        scores[str(k)] = score
        if best is None or score > best[1]:
            best = (k, score, km)
    if best is None:
        return np.zeros(n, dtype=int), x.mean(axis=0, keepdims=True), 1, None, scores
    return best[2].labels_, best[2].cluster_centers_, best[0], best[1], scores


def _rules(features: pd.DataFrame, bought: pd.Series, seed: int
           ) -> tuple[list[Rule], float | None]:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    y = bought.to_numpy(dtype=int)
    if y.sum() < 5 or len(y) - y.sum() < 5 or features.shape[1] == 0:
        return [], None
    leaf = max(10, len(y) // 100)
    tree = DecisionTreeClassifier(max_depth=3, min_samples_leaf=leaf, random_state=seed)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    auc = float(np.mean(cross_val_score(tree, features, y, cv=folds, scoring="roc_auc")))
    tree.fit(features, y)
    t = tree.tree_
    names = list(features.columns)
    leaves = tree.apply(features)
    rules: list[Rule] = []

    def walk(node: int, bounds: dict[str, tuple[float, float]]) -> None:
        if t.children_left[node] == -1:
            members = int((leaves == node).sum())
            buyers = int(y[leaves == node].sum())
            conditions = tuple(_condition(f, lo, hi) for f, (lo, hi) in sorted(bounds.items()))
            rate = buyers / members if members else math.nan
            when = " and ".join(conditions) if conditions else "everyone"
            rules.append(Rule(conditions, members, buyers, rate,
                              f"if {when}: {rate:.0%} buy ({buyers:,} of {members:,} members)"))
            return
        f, thr = names[t.feature[node]], float(t.threshold[node])
        lo, hi = bounds.get(f, (-math.inf, math.inf))
        walk(t.children_left[node], {**bounds, f: (lo, min(hi, thr))})
        walk(t.children_right[node], {**bounds, f: (max(lo, thr), hi)})

    walk(0, {})
    rules.sort(key=lambda r: (-r.conversion_rate, -r.members))
    return rules, auc


def _condition(name: str, lo: float, hi: float) -> str:
    """``lo < feature <= hi`` in words."""
    if name.startswith("campaign:"):
        return (f"came from {name[9:]}" if lo >= 0.5 else f"did not come from {name[9:]}")

    def fmt(v: float) -> str:
        if name.startswith("share:"):
            return f"{v:.0%}"
        return f"{v:.1f}" if abs(v) < 100 else f"{v:,.0f}"

    label = {"recency_days": "days since last seen", "sessions": "sessions",
             "sentiment": "mean sentiment", "tenure_days": "days as a member"}.get(name)
    if label is None and name.startswith("share:"):
        label = f"share of {name[6:]} messages"
    label = label or name
    if lo == -math.inf:
        return f"{label} <= {fmt(hi)}"
    if hi == math.inf:
        return f"{label} > {fmt(lo)}"
    return f"{fmt(lo)} < {label} <= {fmt(hi)}"


def _upsell(data: OptimizerData, assignments: pd.Series, funnel_intents: Sequence[str],
            fdr: float, min_support: int) -> list[Upsell]:
    matrix, keys, table = session_features(data, funnel_intents)
    if not keys:
        return []
    intents = [j for j, (kind, _) in enumerate(keys) if kind == "intent"]
    seg_of = table["member_id"].map(assignments)
    y = table["converted"].to_numpy(dtype=float)
    raw: list[dict[str, Any]] = []
    for segment in sorted(seg_of.dropna().unique()):
        rows = np.flatnonzero((seg_of == segment).to_numpy())
        sub = matrix[rows][:, intents]
        n, conv = len(rows), int(y[rows].sum())
        with_n, with_x = column_counts(sub, y[rows])
        for col, j in enumerate(intents):
            n1, x1 = int(with_n[col]), int(with_x[col])
            n0, x0 = n - n1, conv - x1
            if n1 < min_support or n0 < min_support:
                continue
            p, _ = two_by_two_p_value(x1, n1, x0, n0)
            low, high = wilson_interval(x1, n1)
            raw.append(dict(segment=segment, intent=keys[j][1], sessions=n1, conversions=x1,
                            rate=x1 / n1, ci_low=low, ci_high=high, rest_sessions=n0,
                            rest_rate=x0 / n0, lift=(x1 / n1) / (x0 / n0) if x0 else None,
                            p_value=p))
    q = adjust_p_values([r["p_value"] for r in raw], "bh")
    out = []
    for r, qv in zip(raw, q, strict=True):
        if r["rate"] <= r["rest_rate"]:
            continue
        text = (f"{r['segment']}: sessions with {r['intent']} buy {r['rate']:.0%} of the time "
                f"against {r['rest_rate']:.0%} without")
        out.append(Upsell(**r, q_value=qv, significant=qv <= fdr, text=text))
    out.sort(key=lambda u: (not u.significant, -(u.lift or math.inf), u.q_value))
    return out[:10]


def generate_personalization_rules(
        data: OptimizerData, *, seed: int = 7, k_min: int = 2, k_max: int = 8,
        funnel_intents: Sequence[str] = DEFAULT_FUNNEL_INTENTS, fdr: float = 0.05,
        min_support: int = 20, silhouette_sample: int = 4000) -> PersonalizationResult:
    """See the module's description."""
    from sklearn.preprocessing import StandardScaler

    period = (data.start.isoformat(), data.end.isoformat())
    if data.interactions.empty:
        return PersonalizationResult(*period, 0, 0, None, {}, (), (), None, (),
                                     error="no interactions in the period")
    features, bought, spent = member_features(data, funnel_intents)
    n = len(features)
    if n < max(10, k_min + 1):
        return PersonalizationResult(*period, n, 0, None, {}, (), (), None, (),
                                     error=f"too few members to segment ({n})")
    scaler = StandardScaler()
    x = scaler.fit_transform(features.to_numpy())
    labels, centres, k, silhouette, scores = _segment(x, seed, range(k_min, k_max + 1),
                                                      silhouette_sample)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    named: dict[int, str] = {}
    used: set[str] = set()
    segments: list[Segment] = []
    order = np.argsort(-np.bincount(labels, minlength=k))
    for c in order:
        z = pd.Series(centres[c], index=features.columns)
        base, qualifier = _name(z)
        name = f"{base}, {qualifier}" if qualifier else base
        unique, i = name, 2
        while unique in used:
            unique, i = f"{name} ({i})", i + 1
        name = unique
        used.add(name)
        named[int(c)] = name
        mask = labels == c
        centre = dict(zip(features.columns, (centres[c] * scale + scaler.mean_).round(4),
                          strict=True))
        strongest = z.abs().sort_values(ascending=False).index[:3]
        description = ", ".join(_describe(f, float(centre[f]), data.currency)
                                for f in strongest)
        members = int(mask.sum())
        buyers = int(bought.to_numpy()[mask].sum())
        segments.append(Segment(name, members, members / n, buyers, buyers / members,
                                float(spent.to_numpy()[mask].sum()) / members, description,
                                {str(key): float(v) for key, v in centre.items()}))
    assignments = pd.Series([named[int(c)] for c in labels], index=features.index)
    tree_features = features.drop(columns=["spent"])
    rules, auc = _rules(tree_features, bought, seed)
    upsell = _upsell(data, assignments, funnel_intents, fdr, min_support)
    return PersonalizationResult(
        *period, n, k, silhouette, scores, tuple(segments), tuple(rules), auc, tuple(upsell),
        assignments={int(m): s for m, s in assignments.items()})
