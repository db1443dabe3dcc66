"""Intent classifier: quality on the generated corpus, training and prediction speed, size.

    python benchmarks/bench_intents.py [--embeddings]

Quality: bot_analytics.examples.intent_corpus (45 intents in three domains, 100 training
examples each, out-of-scope queries), threshold chosen on the validation split, then
scored on the test split and on the unseen-phrasing split. Speed: 15,000 training
examples over 136 classes (each intent's phrasings split into three sub-intents, plus
out-of-scope), the size of the public 150-intent benchmark; prediction in batches of 500.
``--embeddings`` measures the same with sentence vectors (the optional embeddings
extra): quality, training time on the corpus and prediction speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot_analytics.examples.intent_corpus import UNKNOWN, make_corpus

from bot_analytics.nlp.classifier import IntentClassifier
from bot_analytics.nlp.evaluate import evaluate


def quality(embeddings: bool = False) -> IntentClassifier:
    corpus = make_corpus()
    for name, with_val in (("validation threshold", True), ("cross-validated threshold", False)):
        clf = IntentClassifier(embeddings=embeddings)
        train_texts, train_labels = zip(*corpus.train, strict=True)
        start = time.perf_counter()
        if with_val:
            clf.fit(train_texts, train_labels, *zip(*corpus.val, strict=True))
        else:
            clf.fit(train_texts, train_labels)
        took = time.perf_counter() - start
        choice = clf.threshold_choice_
        assert choice is not None
        vectors = f", {clf.embedding_model_} sentence vectors" if clf.embedding_model_ else ""
        print(f"{name}: threshold {choice.threshold:.3f} ({choice.method}{vectors}); "
              f"trained in {took:.1f} s")
        for split, data in (("test", corpus.test), ("unseen phrasings", corpus.test_unseen)):
            texts, labels = zip(*data, strict=True)
            report = evaluate(clf, texts, labels)
            print(f"  {split:17s} in-scope accuracy {report.in_scope_accuracy:6.1%}   "
                  f"out-of-scope recall {report.out_of_scope_recall:6.1%}   "
                  f"({report.in_scope_count} in-scope, {report.out_of_scope_count} "
                  "out-of-scope)")
    return clf


def prediction_speed(clf: IntentClassifier, texts: list[str], rounds: int) -> float:
    batch = (texts * (1 + 500 // max(1, len(texts))))[:500]
    clf.predict(batch)
    start = time.perf_counter()
    for _ in range(rounds):
        clf.predict(batch)
    return (time.perf_counter() - start) / (rounds * len(batch))


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
    per = prediction_speed(clf, val_texts, 40)
    print(f"  prediction: {per * 1e6:.1f} µs per message in batches of 500")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.bam")
        clf.save(path)
        size = os.path.getsize(path)
        start = time.perf_counter()
        IntentClassifier.load(path)
        print(f"  model file: {size / 1e6:.1f} MB, loads in "
              f"{time.perf_counter() - start:.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--embeddings", action="store_true",
                   help="with sentence vectors (needs the optional embeddings extra)")
    if p.parse_args().embeddings:
        from bot_analytics.nlp.embeddings import INSTALL_HINT, available

        if not available():
            sys.exit(f"--embeddings needs the optional extra: {INSTALL_HINT}")
        clf = quality(embeddings=True)
        per = prediction_speed(clf, [t for t, _ in make_corpus().test], 5)
        print(f"  prediction with sentence vectors: {per * 1e6:,.0f} µs per message in "
              "batches of 500")
        return
    quality()
    speed()


if __name__ == "__main__":
    main()
