"""Intent classifier: quality on the generated corpus, training and prediction speed, size.

    python benchmarks/bench_intents.py

Quality: bot_analytics.examples.intent_corpus (45 intents in three domains, 100 training
examples each, out-of-scope queries), threshold chosen on the validation split, then
scored on the test split and on the unseen-phrasing split. Speed: 15,000 training
examples over 136 classes (each intent's phrasings split into three sub-intents, plus
out-of-scope), the size of the public 150-intent benchmark; prediction in batches of 500.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot_analytics.examples.intent_corpus import UNKNOWN, make_corpus

from bot_analytics.nlp.classifier import IntentClassifier
from bot_analytics.nlp.evaluate import evaluate


def quality() -> None:
    corpus = make_corpus()
    for name, with_val in (("validation threshold", True), ("cross-validated threshold", False)):
        clf = IntentClassifier()
        train_texts, train_labels = zip(*corpus.train, strict=True)
        if with_val:
            clf.fit(train_texts, train_labels, *zip(*corpus.val, strict=True))
        else:
            clf.fit(train_texts, train_labels)
        choice = clf.threshold_choice_
        assert choice is not None
        print(f"{name}: threshold {choice.threshold:.3f} ({choice.method})")
        for split, data in (("test", corpus.test), ("unseen phrasings", corpus.test_unseen)):
            texts, labels = zip(*data, strict=True)
            report = evaluate(clf, texts, labels)
            print(f"  {split:17s} in-scope accuracy {report.in_scope_accuracy:6.1%}   "
                  f"out-of-scope recall {report.out_of_scope_recall:6.1%}   "
                  f"({report.in_scope_count} in-scope, {report.out_of_scope_count} "
                  "out-of-scope)")


def _speed_set() -> tuple[list[str], list[str], list[str], list[str]]:
    """15,000 training texts over 136 classes, and a validation set of the same kind."""
    corpus = make_corpus(train_per_intent=330, val_per_intent=20, oos_train=150)
    def relabel(text: str, label: str) -> str:
        # Three sub-intents per intent, by the text's last word (a slot value or a
        # sign-off), so that the classes are learnable but overlap in wording.
        if label == UNKNOWN:
            return label
        digest = sum(map(ord, text.split(" ")[-1])) if text else 0
        return f"{label}#{digest % 3}"

    tr = corpus.train[:15_000]
    va = corpus.val
    return ([t for t, _ in tr], [relabel(t, lab) for t, lab in tr],
            [t for t, _ in va], [relabel(t, lab) for t, lab in va])


def speed() -> None:
    texts, labels, val_texts, val_labels = _speed_set()
    print(f"speed set: {len(texts)} training examples, {len(set(labels))} classes")
    for name, args in (("with validation data", (val_texts, val_labels)),
                       ("cross-validated threshold", ())):
        start = time.perf_counter()
        clf = IntentClassifier().fit(texts, labels, *args)
        print(f"  training, {name}: {time.perf_counter() - start:.1f} s")
    batch = (val_texts * 10)[:500]
    clf.predict(batch)
    rounds = 40
    start = time.perf_counter()
    for _ in range(rounds):
        clf.predict(batch)
    per = (time.perf_counter() - start) / (rounds * len(batch))
    print(f"  prediction: {per * 1e6:.1f} µs per message in batches of 500")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.bam")
        clf.save(path)
        size = os.path.getsize(path)
        start = time.perf_counter()
        IntentClassifier.load(path)
        print(f"  model file: {size / 1e6:.1f} MB, loads in "
              f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    quality()
    speed()
