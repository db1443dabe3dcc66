"""Sentence embeddings for the intent classifier: the optional extra and its fallback.

The tests that need the extra run when it is installed; with
BOT_ANALYTICS_TEST_EMBEDDINGS=1 (as in CI) a missing extra fails them instead of
skipping."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from bot_analytics.nlp import classifier as classifier_module
from bot_analytics.nlp import embeddings
from bot_analytics.nlp.classifier import IntentClassifier, ModelFileError

from .test_intents import small_data

# Worded unlike every training example of tests.test_intents.SMALL: no word in common
# but stop words, so n-grams have little to go on.
PARAPHRASES = [
    ("the courier still hasn't shown up with it", "order_status"),
    ("which city is the shipment in right now", "order_status"),
    ("reimburse me, the thing broke", "refund"),
    ("return the cash to my card", "refund"),
    ("at what hour does the store shut", "opening_hours"),
    ("is the shop accessible on weekends", "opening_hours"),
]


def _missing(*_: object) -> embeddings.SentenceEncoder:
    raise embeddings.EmbeddingsUnavailable(
        f"sentence embeddings need the optional extra (torch is missing): "
        f"{embeddings.INSTALL_HINT}")


def test_without_the_extra_training_falls_back_to_ngrams(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(classifier_module, "load_encoder", _missing)
    texts, labels = small_data()
    with caplog.at_level(logging.WARNING, logger="bot_analytics.nlp.classifier"):
        wanted = IntentClassifier(embeddings=True, threshold=0.0).fit(texts, labels)
    assert wanted.embedding_model_ is None
    assert 'pip install "bot-analytics[embeddings]"' in caplog.text
    assert "n-grams only" in caplog.text
    plain = IntentClassifier(threshold=0.0).fit(texts, labels)
    probe = [t for t, _ in PARAPHRASES] + texts
    assert wanted.predict(probe) == plain.predict(probe)


def test_a_model_with_embeddings_says_what_it_needs_to_load(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(classifier_module, "load_encoder", _missing)
    texts, labels = small_data()
    path = tmp_path / "plain.model"
    IntentClassifier().fit(texts, labels).save(path)

    def claiming(name: str, encoder: str) -> Path:
        with np.load(path) as archive:
            arrays = {n: archive[n] for n in archive.files}
        meta = json.loads(arrays["meta"].tobytes().decode())
        meta.update({"version": 2, "embeddings": encoder})
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        out = tmp_path / name
        with out.open("wb") as f:
            np.savez(f, **arrays)
        return out

    with pytest.raises(ModelFileError, match=r"uses sentence embeddings.*"
                                             r"bot-analytics\[embeddings\]"):
        IntentClassifier.load(claiming("needs.model", "all-MiniLM-L6-v2"))
    with pytest.raises(ModelFileError, match="made with the sentence encoder 'other-model'"):
        IntentClassifier.load(claiming("other.model", "other-model"))


@pytest.fixture(scope="module")
def encoder() -> embeddings.SentenceEncoder:
    if not embeddings.available():
        if os.environ.get("BOT_ANALYTICS_TEST_EMBEDDINGS") == "1":
            pytest.fail("BOT_ANALYTICS_TEST_EMBEDDINGS=1 but the embeddings extra is not "
                        f"installed: {embeddings.INSTALL_HINT}")
        pytest.skip(f"the embeddings extra is not installed ({embeddings.INSTALL_HINT})")
    return embeddings.load_encoder()


def test_sentence_vectors_label_paraphrases_the_ngrams_miss(
        encoder: embeddings.SentenceEncoder) -> None:
    texts, labels = small_data()
    with_vectors = IntentClassifier(embeddings=True, threshold=0.0).fit(texts, labels)
    plain = IntentClassifier(threshold=0.0).fit(texts, labels)
    assert with_vectors.embedding_model_ == "all-MiniLM-L6-v2"
    probe = [t for t, _ in PARAPHRASES]
    truth = [label for _, label in PARAPHRASES]
    right = sum(p.intent == t for p, t in zip(with_vectors.predict(probe), truth, strict=True))
    right_plain = sum(p.intent == t for p, t in zip(plain.predict(probe), truth, strict=True))
    assert right >= 5 and right > right_plain
    # Nothing was fetched from a hub: the encoder loaded with the hub switched off.
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    vectors = encoder.encode(probe)
    assert vectors.shape == (len(probe), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_an_embeddings_model_round_trips_and_thresholds(
        encoder: embeddings.SentenceEncoder, tmp_path: Path) -> None:
    texts, labels = small_data()
    oos = ["tell me a joke", "what is the capital of peru", "play some jazz",
           "how tall is mount everest", "translate hello into german", "who won the match"]
    val = ([t for t, _ in PARAPHRASES] + ["recommend a film", "what is two plus two"],
           [label for _, label in PARAPHRASES] + ["unknown", "unknown"])
    clf = IntentClassifier(embeddings=True).fit(texts + oos, labels + ["unknown"] * len(oos),
                                                *val)
    assert clf.threshold_choice_ is not None
    assert clf.threshold_choice_.method == "validation"
    path = tmp_path / "vectors.model"
    clf.save(path)
    with np.load(path) as archive:
        meta = json.loads(archive["meta"].tobytes().decode())
    assert (meta["version"], meta["embeddings"]) == (2, "all-MiniLM-L6-v2")
    loaded = IntentClassifier.load(path)
    assert loaded.embedding_model_ == "all-MiniLM-L6-v2"
    probe = [t for t, _ in PARAPHRASES] + ["", "😀😀", "x" * 4096, "где мой заказ"]
    a, b = clf.predict(probe), loaded.predict(probe)
    assert [p.intent for p in a] == [p.intent for p in b]
    assert max(abs(x.confidence - y.confidence) for x, y in zip(a, b, strict=True)) < 0.02


def _write_small(tmp_path: Path) -> Path:
    texts, labels = small_data()
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps({"text": t, "intent": i}) + "\n"
                            for t, i in zip(texts, labels, strict=True)))
    return data


def test_cli_asks_for_the_extra_before_training(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from bot_analytics.cli import main

    monkeypatch.setattr(embeddings, "available", lambda: False)
    out = tmp_path / "never.model"
    assert main(["intents", "train", str(_write_small(tmp_path)), "--embeddings",
                 "--out", str(out)]) == 1
    assert 'needs the optional embeddings extra: pip install "bot-analytics[embeddings]"' \
        in capsys.readouterr().err
    assert not out.exists()


def test_cli_trains_with_sentence_vectors(encoder: embeddings.SentenceEncoder,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from bot_analytics.cli import main

    out = tmp_path / "vectors.model"
    assert main(["intents", "train", str(_write_small(tmp_path)), "--embeddings",
                 "--out", str(out)]) == 0
    assert "with all-MiniLM-L6-v2 sentence vectors" in capsys.readouterr().out
    assert IntentClassifier.load(out).embedding_model_ == "all-MiniLM-L6-v2"
