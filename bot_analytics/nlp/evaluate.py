"""Scores an intent model on labelled messages: the figures `bot-analytics intents eval`
prints and the benchmark reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .intents import TextIntentModel


@dataclass(frozen=True)
class IntentScore:
    intent: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    #: Share of in-scope messages labelled with their intent (a message wrongly called
    #: unknown counts as an error).
    in_scope_accuracy: float
    #: Share of out-of-scope messages labelled unknown; ``nan`` when there are none.
    out_of_scope_recall: float
    in_scope_count: int
    out_of_scope_count: int
    per_intent: list[IntentScore]
    #: (true intent, predicted intent, count), most frequent first; unknown included.
    confusions: list[tuple[str, str, int]]


def evaluate(model: TextIntentModel, texts: Sequence[str], labels: Sequence[str],
             unknown_label: str = "unknown", top_confusions: int = 10) -> EvalReport:
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    predicted = [p.intent for p in model.predict(list(texts))]
    pairs = list(zip(labels, predicted, strict=True))
    in_scope = [(t, p) for t, p in pairs if t != unknown_label]
    oos = [p for t, p in pairs if t == unknown_label]
    accuracy = sum(t == p for t, p in in_scope) / len(in_scope) if in_scope else float("nan")
    recall = sum(p == unknown_label for p in oos) / len(oos) if oos else float("nan")
    true_count = Counter(labels)
    pred_count = Counter(predicted)
    hits = Counter(t for t, p in pairs if t == p)
    scores = []
    for intent in sorted(set(labels) | set(predicted)):
        tp = hits[intent]
        prec = tp / pred_count[intent] if pred_count[intent] else 0.0
        rec = tp / true_count[intent] if true_count[intent] else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        scores.append(IntentScore(intent, prec, rec, f1, true_count[intent]))
    confused = Counter((t, p) for t, p in pairs if t != p)
    return EvalReport(accuracy, recall, len(in_scope), len(oos), scores,
                      [(t, p, n) for (t, p), n in confused.most_common(top_confusions)])
