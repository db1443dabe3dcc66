"""What users ask that the bot does not understand: clusters of ``unknown`` and unhandled
messages, each with its size, its most typical messages and the words that set it apart.

:func:`cluster_messages` is pure (texts in, report out); :func:`load_unknown_texts` reads
a period's messages from the database. ``bot-analytics intents unknown`` prints the
report; the admin command and scheduled reports use the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp
import sqlalchemy as sa
from sqlalchemy.engine import Engine

#: Period names the report understands, as days back from now.
PERIODS = {"day": 1, "week": 7, "month": 30, "quarter": 91}


@dataclass(frozen=True)
class MessageCluster:
    size: int
    share: float
    #: The messages nearest the cluster's centre, most typical first (distinct texts).
    examples: list[str]
    #: Words and word pairs far more frequent in this cluster than in the rest.
    terms: list[str]


@dataclass(frozen=True)
class UnknownReport:
    messages: int
    clusters: list[MessageCluster] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def cluster_messages(texts: Sequence[str], max_clusters: int = 12, examples: int = 3,
                     terms: int = 5, max_messages: int = 20_000,
                     random_state: int = 0) -> UnknownReport:
    """Cluster texts with TF-IDF and k-means, k chosen by silhouette (2..max_clusters).

    More than ``max_messages`` texts are sampled (seeded) for clustering; sizes are then
    scaled to the full count. Texts with no word at all (only emoji, say) are left out."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import silhouette_samples
    from sklearn.preprocessing import normalize

    kept = [t for t in (_normal(x) for x in texts if isinstance(x, str)) if any(
        ch.isalnum() for ch in t)]
    total = len(kept)
    if not kept:
        return UnknownReport(0)
    rng = np.random.default_rng(random_state)
    if total > max_messages:
        kept = [kept[i] for i in sorted(rng.choice(total, max_messages, replace=False))]
    scale = total / len(kept)
    # Cluster distinct texts weighted by how often they were sent: repeated texts would
    # otherwise make every distinct wording look like a perfect cluster of its own.
    counts: dict[str, int] = {}
    for text in kept:
        counts[text] = counts.get(text, 0) + 1
    distinct = list(counts)
    weight = np.array([counts[t] for t in distinct], dtype=np.float64)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                 stop_words="english")
    try:
        x = vectorizer.fit_transform(distinct)
    except ValueError:        # nothing but stop words
        vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b")
        x = vectorizer.fit_transform(distinct)
    vocab = np.array(vectorizer.get_feature_names_out())
    # Clustering also looks at character n-grams, so "dog" and "dogs", "park" and
    # "parking" count as alike in short messages.
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    space = normalize(sp.hstack([x, chars.fit_transform(distinct)], format="csr"))
    if len(distinct) < 3:
        labels = np.zeros(len(distinct), dtype=int)
    else:
        best: tuple[float, np.ndarray] | None = None
        sample = rng.choice(len(distinct), min(len(distinct), 3000), replace=False)
        for k in range(2, min(max_clusters, len(distinct) - 1) + 1):
            model = KMeans(n_clusters=k, n_init=3, random_state=random_state).fit(
                space, sample_weight=weight)
            if len(set(model.labels_[sample])) < 2:
                continue
            # Silhouette weighted by how often each text was sent: the clusters that
            # hold most messages decide.
            score = float(np.average(silhouette_samples(
                space[sample], model.labels_[sample], metric="cosine"),
                weights=weight[sample]))
            if best is None or score > best[0]:
                best = (float(score), model.labels_)
        labels = best[1] if best is not None else np.zeros(len(distinct), dtype=int)
    labels = _split_loners(space, labels)
    overall = np.asarray(weight @ x).ravel() / weight.sum()
    clusters = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        w = weight[members]
        centre = np.asarray(w @ x[members]).ravel() / w.sum()
        closeness = space[members] @ (np.asarray(w @ space[members]).ravel() / w.sum())
        order = members[np.argsort(-closeness, kind="stable")]
        typical = [distinct[i] for i in order[:examples]]
        lift = centre - overall
        top = [str(vocab[j]) for j in np.argsort(-lift, kind="stable")[:terms] if lift[j] > 0]
        size = round(w.sum() * scale)
        clusters.append(MessageCluster(size, size / total, typical, top))
    clusters.sort(key=lambda m: (-m.size, m.examples))
    return UnknownReport(total, clusters)


#: A text whose cosine similarity to every other text of its cluster is below this has
#: nothing in common with them and is reported as a cluster of its own.
LONER_SIMILARITY = 0.2


def _split_loners(space: Any, labels: np.ndarray) -> np.ndarray:
    labels = labels.copy()
    next_label = int(labels.max()) + 1 if len(labels) else 0
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        sims = (space[members] @ space[members].T).toarray()
        np.fill_diagonal(sims, 0.0)
        for i in members[sims.max(axis=1) < LONER_SIMILARITY]:
            labels[i] = next_label
            next_label += 1
    return labels


def load_unknown_texts(engine: Engine, start: datetime, end: datetime, *,
                       tenant_id: str | None = None, bot_id: int | None = None,
                       unknown_label: str = "unknown", limit: int = 100_000) -> list[str]:
    """Texts of the period's messages labelled unknown or handled by no handler, most
    recent first (only stored texts: with ``privacy.store_text: false`` there are none)."""
    from ..storage.models import Interaction

    t = Interaction.__table__  # type: ignore[attr-defined]
    query = (sa.select(t.c.text)
             .where(t.c.ts >= start, t.c.ts < end, t.c.text.is_not(None),
                    t.c.command.is_(None),
                    sa.or_(t.c.intent == unknown_label, t.c.handled.is_(False)))
             .order_by(t.c.ts.desc()).limit(limit))
    if tenant_id is not None:
        query = query.where(t.c.tenant_id == tenant_id)
    if bot_id is not None:
        query = query.where(t.c.bot_id == bot_id)
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(query)]


def unknown_report(engine: Engine, period: str = "week", now: datetime | None = None,
                   **kwargs: Any) -> UnknownReport:
    """The report for the last day, week, month or quarter up to ``now``."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    end = now or datetime.now(UTC)
    load = {k: kwargs.pop(k) for k in ("tenant_id", "bot_id", "unknown_label")
            if k in kwargs}
    texts = load_unknown_texts(engine, end - timedelta(days=PERIODS[period]), end, **load)
    return cluster_messages(texts, **kwargs)


def format_report(report: UnknownReport, period: str = "") -> str:
    if not report.clusters:
        return f"No unknown or unhandled messages{' in the last ' + period if period else ''}."
    lines = [f"{report.messages:,} unknown or unhandled messages"
             f"{' in the last ' + period if period else ''}, {len(report.clusters)} clusters:"]
    for n, c in enumerate(report.clusters, 1):
        lines.append(f"\n{n}. {c.size:,} messages ({c.share:.1%})"
                     + (f" — {', '.join(c.terms)}" if c.terms else ""))
        lines += [f"   “{e}”" for e in c.examples]
    return "\n".join(lines)

