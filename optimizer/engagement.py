"""Sentiment and engagement: what angers people before they give up, which replies
cheer them up, and how each intent's mood moves.

``de_escalation_triggers``: words and two-word phrases over-represented in negative
messages that precede an escalation (a later hand-off in the same session) or the member
blocking the bot (within the session timeout of the session's end), against the other
negative messages. The statistic is the log-odds ratio with an informative Dirichlet
prior (Monroe, Colaresi and Quinn, "Fightin' Words", 2008): with counts y of a term in
each corpus, corpus sizes n and a prior a_w = a0 * (the term's share of all the period's
text messages),

    delta = log((yA + a_w) / (nA + a0 - yA - a_w)) - log((yB + a_w) / (nB + a0 - yB - a_w))
    z = delta / sqrt(1 / (yA + a_w) + 1 / (yB + a_w))

and terms with z > 1.96 are reported.

``positive_reinforcement_responses``: bot replies after which the member's next message
in the session is more positive than after the other replies to the same intent (Welch's
t-test, Benjamini-Hochberg across replies).

``sentiment_trends``: per intent, the least-squares slope of the sentiment score and of
the share of negative messages against time (per week), with p-values, Benjamini-Hochberg
adjusted across intents.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import OptimizerData
from .results import Serializable
from .stats import adjust_p_values

#: Words of two letters or more (contractions split: "i'm" gives nothing, "isn't" "isn").
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"


@dataclass(frozen=True)
class PhraseStat:
    phrase: str
    z: float
    log_odds_ratio: float
    count_escalating: int       #: occurrences in negative messages before an escalation
    count_other: int            #: occurrences in the other negative messages
    messages: int               #: negative messages containing it
    escalation_share: float     #: of those messages, the share that preceded one


@dataclass(frozen=True)
class ResponseStat:
    intent: str
    response: str
    pairs: int                  #: replies followed by a scored message in the session
    next_sentiment: float       #: mean score of the member's next message
    others_pairs: int
    others_next_sentiment: float
    difference: float
    p_value: float
    q_value: float
    significant: bool


@dataclass(frozen=True)
class IntentTrend:
    intent: str
    messages: int
    sentiment_mean: float
    negative_rate: float
    slope_per_week: float          #: change of the mean score per week
    slope_p_value: float
    negative_slope_per_week: float  #: change of the negative share per week
    negative_ci_low: float
    negative_ci_high: float
    negative_p_value: float
    negative_q_value: float
    direction: str                 #: worsening, improving or stable


@dataclass(frozen=True)
class SentimentEngagementResult(Serializable):
    period_start: str
    period_end: str
    negative_messages: int
    escalating_messages: int        #: negative messages before an escalation or block
    escalated_sessions: int
    blocked_sessions: int
    de_escalation_triggers: tuple[PhraseStat, ...]
    positive_reinforcement_responses: tuple[ResponseStat, ...]
    sentiment_trends: tuple[IntentTrend, ...]
    error: str | None = None


def _escalating_flags(data: OptimizerData) -> tuple[pd.DataFrame, int, int]:
    """The period's interactions in session order with ``escalating``: a later hand-off
    in the session, or a block within the timeout after the session's end."""
    s = data.sessions.copy()
    g = s.groupby("session")
    last_escalation = s["pos"].where(s["escalated"]).groupby(s["session"]).transform("max")
    s["escalating"] = last_escalation.notna() & (s["pos"] < last_escalation)
    escalated_sessions = int(last_escalation.groupby(s["session"]).first().notna().sum())
    blocked = 0
    b = data.blocks
    if not b.empty and not s.empty:
        ends = pd.DataFrame({"member_id": g["member_id"].first(), "last": g["ts"].max()})
        ends = ends.reset_index().merge(b[["member_id", "ts"]], on="member_id")
        hit = ends[(ends["ts"] >= ends["last"])
                   & (ends["ts"] <= ends["last"] + pd.Timedelta(data.session_timeout))]
        ids = set(hit["session"])
        blocked = len(ids)
        s["escalating"] |= s["session"].isin(ids)
    return s, escalated_sessions, blocked


def de_escalation_triggers(data: OptimizerData, *, prior_scale: float = 500.0,
                           min_count: int = 3, z_threshold: float = 1.96, top: int = 15,
                           max_background: int = 200_000
                           ) -> tuple[list[PhraseStat], int, int, int, int]:
    from sklearn.feature_extraction.text import CountVectorizer

    s, escalated, blocked = _escalating_flags(data)
    texts = s[s["text"].notna() & (s["text"].astype(str).str.strip() != "")]
    negative = texts[(texts["sentiment"] == "negative") & ~texts["escalated"]]
    a_docs = negative.loc[negative["escalating"], "text"].astype(str).tolist()
    b_docs = negative.loc[~negative["escalating"], "text"].astype(str).tolist()
    if not a_docs or not b_docs:
        return [], len(negative), len(a_docs), escalated, blocked
    vectorizer = CountVectorizer(ngram_range=(1, 2), stop_words="english",
                                 token_pattern=TOKEN_PATTERN, min_df=1)
    # Messages repeat a lot: each distinct text is read once and weighted by its count.
    everything = texts["text"].astype(str).value_counts()
    if len(everything) > max_background:
        everything = everything.sample(max_background, random_state=0)
    background = vectorizer.fit_transform(everything.index)
    prior = np.asarray(background.T @ everything.to_numpy(float)).ravel()
    if prior.sum() == 0:
        return [], len(negative), len(a_docs), escalated, blocked
    alpha = prior_scale * prior / prior.sum()
    a0 = float(alpha.sum())

    def counts(docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        distinct = pd.Series(docs).value_counts()
        mat = vectorizer.transform(distinct.index)
        weights = distinct.to_numpy(float)
        occurrences = np.asarray(mat.T @ weights).ravel()
        documents = np.asarray((mat > 0).T @ weights).ravel()
        return occurrences, documents

    ya, docs_a = counts(a_docs)
    yb, docs_b = counts(b_docs)
    na, nb = ya.sum(), yb.sum()
    delta = (np.log((ya + alpha) / (na + a0 - ya - alpha))
             - np.log((yb + alpha) / (nb + a0 - yb - alpha)))
    z = delta / np.sqrt(1.0 / (ya + alpha) + 1.0 / (yb + alpha))
    terms = vectorizer.get_feature_names_out()
    keep = np.flatnonzero((z > z_threshold) & (ya >= min_count))
    keep = keep[np.argsort(-z[keep], kind="stable")]
    # A phrase seen exactly where one of its words is seen says nothing more: keep the word.
    seen: dict[tuple[float, float], list[set[str]]] = {}
    for j in keep:
        seen.setdefault((ya[j], yb[j]), []).append(set(str(terms[j]).split()))
    out: list[PhraseStat] = []
    for j in keep:
        words = set(str(terms[j]).split())
        if any(other < words for other in seen[(ya[j], yb[j])]):
            continue
        docs = docs_a[j] + docs_b[j]
        out.append(PhraseStat(str(terms[j]), float(z[j]), float(delta[j]), int(ya[j]),
                              int(yb[j]), int(docs), float(docs_a[j] / docs) if docs else 0.0))
        if len(out) == top:
            break
    return out, len(negative), len(a_docs), escalated, blocked


_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def _normalize_reply(text: str) -> str:
    return _SPACE.sub(" ", _DIGITS.sub("#", text.strip().lower()))[:200]


def positive_reinforcement(data: OptimizerData, *, min_pairs: int = 10, fdr: float = 0.05,
                           top: int = 10) -> list[ResponseStat]:
    from scipy.stats import ttest_ind

    s = data.sessions
    if s.empty:
        return []
    same = s["session"].shift(-1) == s["session"]
    pairs = pd.DataFrame({"intent": s["intent"], "reply": s["response_text"],
                          "next": s["sentiment_score"].shift(-1).where(same)})
    pairs = pairs.dropna()
    if pairs.empty:
        return []
    pairs["key"] = pairs["reply"].astype(str).map(_normalize_reply)
    raw: list[dict[str, object]] = []
    for intent, group in pairs.groupby("intent", sort=True):
        counts = group["key"].value_counts()
        if len(counts) < 2:
            continue
        for key in counts.index[counts >= min_pairs]:
            mine = group.loc[group["key"] == key, "next"].to_numpy(float)
            rest = group.loc[group["key"] != key, "next"].to_numpy(float)
            if len(rest) < 2:
                continue
            if np.var(mine) == 0 and np.var(rest) == 0:
                p = 1.0 if mine.mean() == rest.mean() else 0.0
            else:
                p = float(ttest_ind(mine, rest, equal_var=False).pvalue)
            example = str(group.loc[group["key"] == key, "reply"].iloc[0])
            raw.append(dict(intent=str(intent), response=example[:200], pairs=len(mine),
                            next_sentiment=float(mine.mean()), others_pairs=len(rest),
                            others_next_sentiment=float(rest.mean()),
                            difference=float(mine.mean() - rest.mean()),
                            p_value=p if math.isfinite(p) else 1.0))
    q = adjust_p_values([float(r["p_value"]) for r in raw], "bh")  # type: ignore[arg-type]
    stats = [ResponseStat(**r, q_value=qv, significant=qv <= fdr)  # type: ignore[arg-type]
             for r, qv in zip(raw, q, strict=True) if float(r["difference"]) > 0]  # type: ignore[arg-type]
    stats.sort(key=lambda r: (not r.significant, -r.difference))
    return stats[:top]


def sentiment_trends(data: OptimizerData, *, min_messages: int = 30, min_days: int = 7,
                     fdr: float = 0.05) -> list[IntentTrend]:
    from scipy.stats import linregress
    from scipy.stats import t as student_t

    i = data.interactions
    scored = i[i["sentiment_score"].notna() & i["intent"].notna()]
    raw: list[dict[str, object]] = []
    start = pd.Timestamp(data.start)
    for intent, group in scored.groupby("intent", sort=True):
        weeks = ((group["ts"] - start).dt.total_seconds() / (7 * 86400.0)).to_numpy()
        days = np.unique(np.floor(weeks * 7))
        if len(group) < min_messages or len(days) < min_days:
            continue
        score = group["sentiment_score"].to_numpy(float)
        negative = (group["sentiment"] == "negative").to_numpy(float)
        mean_fit = linregress(weeks, score) if np.ptp(score) > 0 else None
        if np.ptp(negative) > 0:
            neg_fit = linregress(weeks, negative)
            slope, se, p = float(neg_fit.slope), float(neg_fit.stderr), float(neg_fit.pvalue)
        else:
            slope, se, p = 0.0, 0.0, 1.0
        crit = float(student_t.ppf(0.975, len(group) - 2))
        raw.append(dict(intent=str(intent), messages=len(group),
                        sentiment_mean=float(score.mean()), negative_rate=float(negative.mean()),
                        slope_per_week=float(mean_fit.slope) if mean_fit else 0.0,
                        slope_p_value=float(mean_fit.pvalue) if mean_fit else 1.0,
                        negative_slope_per_week=slope, negative_ci_low=slope - crit * se,
                        negative_ci_high=slope + crit * se, negative_p_value=p))
    q = adjust_p_values([float(r["negative_p_value"]) for r in raw], "bh")  # type: ignore[arg-type]
    out = []
    for r, qv in zip(raw, q, strict=True):
        slope = float(r["negative_slope_per_week"])  # type: ignore[arg-type]
        direction = "stable" if qv > fdr else "worsening" if slope > 0 else "improving"
        out.append(IntentTrend(**r, negative_q_value=qv, direction=direction))  # type: ignore[arg-type]
    out.sort(key=lambda t: (t.direction != "worsening", t.negative_q_value, t.intent))
    return out


def optimize_sentiment_engagement(data: OptimizerData, *, fdr: float = 0.05,
                                  min_count: int = 3, min_pairs: int = 10
                                  ) -> SentimentEngagementResult:
    """See the module's description."""
    period = (data.start.isoformat(), data.end.isoformat())
    if data.interactions.empty:
        return SentimentEngagementResult(*period, 0, 0, 0, 0, (), (), (),
                                         error="no interactions in the period")
    phrases, negative, escalating, escalated, blocked = de_escalation_triggers(
        data, min_count=min_count)
    error = None
    if data.interactions["text"].isna().all():
        error = "no message texts stored (privacy.store_text is off): no phrases"
    return SentimentEngagementResult(
        *period, negative, escalating, escalated, blocked, tuple(phrases),
        tuple(positive_reinforcement(data, min_pairs=min_pairs, fdr=fdr)),
        tuple(sentiment_trends(data, fdr=fdr)), error)
