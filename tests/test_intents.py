"""The intent classifier: thresholds, rules with a model, persistence, bad input, the
config and CLI, and the unknown-message report."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from bot_analytics.examples.intent_corpus import make_corpus

from bot_analytics import Analytics
from bot_analytics.cli import main
from bot_analytics.config import ConfigError, IntentRule, load_config
from bot_analytics.emulator import TelegramEmulator
from bot_analytics.nlp.classifier import IntentClassifier, ModelFileError, _choose
from bot_analytics.nlp.data import TrainingDataError, load_examples
from bot_analytics.nlp.evaluate import evaluate
from bot_analytics.nlp.intents import DefaultIntentDetector, Prediction
from bot_analytics.nlp.unknown import cluster_messages, load_unknown_texts
from bot_analytics.storage import db

from .conftest import RunningBot, make_settings, new_bot, rows
from .test_nlp import ev

SMALL = {
    "order_status": ["where is my order", "track my package", "has my parcel shipped",
                     "when will my order arrive", "delivery status please",
                     "my package has not come yet", "where is my delivery",
                     "tracking number for my order"],
    "refund": ["I want my money back", "refund my purchase", "where is my refund",
               "how long do refunds take", "give me a refund", "refund not received",
               "I was charged twice, refund me", "money back please"],
    "opening_hours": ["when do you open", "what are your opening hours",
                      "are you open on sunday", "what time do you close",
                      "opening times please", "are you open today",
                      "until when are you open", "holiday opening hours"],
}


def small_data() -> tuple[list[str], list[str]]:
    texts = [t for examples in SMALL.values() for t in examples]
    labels = [i for i, examples in SMALL.items() for _ in examples]
    return texts, labels


@pytest.fixture(scope="module")
def shop() -> tuple[IntentClassifier, object]:
    corpus = make_corpus(domains=("shop",), train_per_intent=60, oos_train=60)
    clf = IntentClassifier().fit(*zip(*corpus.train, strict=True),
                                 *zip(*corpus.val, strict=True))
    return clf, corpus


# -- thresholds ----------------------------------------------------------------------
def test_choose_maximises_mean_of_accuracy_and_recall() -> None:
    # in-scope: (conf, right?)  out-of-scope: conf of a wrong in-scope guess
    conf = [0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.95]
    pred = ["a", "b", "a", "b", "a", "b", "a", "unknown"]
    true = ["a", "b", "b", "b", "unknown", "unknown", "unknown", "unknown"]
    got = _choose(np.array(conf), pred, true, "unknown", "validation")
    # By hand, for each threshold t (accept when conf >= t):
    #   t<=0.2: acc 3/4, recall 1/4 -> 1.0;  t in (0.2,0.3]: 3/4, 2/4 -> 1.25
    #   t in (0.3,0.5]: acc 2/4 (0.3 right one lost), recall 2/4 -> 1.0
    #   t in (0.5,0.7]: 2/4, 3/4 -> 1.25;  t in (0.7,0.8]: 2/4, 4/4 -> 1.5
    #   t in (0.8,0.9]: 1/4, 1 -> 1.25;  t > 0.9: 0, 1 -> 1.0
    # The smallest candidate reaching 1.5 is 0.8 (the confidence of 'b' kept there).
    assert got.threshold == pytest.approx(0.8)
    assert got.in_scope_accuracy == pytest.approx(0.5)
    assert got.out_of_scope_recall == pytest.approx(1.0)


def test_validation_threshold_and_quality_on_held_out_data(shop: tuple) -> None:
    clf, corpus = shop
    assert clf.threshold_choice_.method == "validation"
    assert 0.0 < clf.threshold_ < 1.0
    report = evaluate(clf, *zip(*corpus.test, strict=True))
    assert report.in_scope_accuracy >= 0.95
    assert report.out_of_scope_recall >= 0.8
    # Independently: a text the model calls unknown has either the unknown class or a
    # best intent probability under the threshold.
    best, conf = clf._scores([t for t, _ in corpus.test])
    preds = clf.predict([t for t, _ in corpus.test])
    for b, c, p in zip(best, conf, preds, strict=True):
        expected = ("unknown" if clf.classes_[b] == "unknown" or c < clf.threshold_
                    else clf.classes_[b])
        assert p.intent == expected


def test_cross_validated_threshold_without_validation_data() -> None:
    corpus = make_corpus(domains=("bank",), train_per_intent=40, oos_train=0, seed=3)
    clf = IntentClassifier().fit(*zip(*corpus.train, strict=True))
    choice = clf.threshold_choice_
    assert choice.method == "cross-validation" and choice.examples > 0
    assert "unknown" not in clf.classes_          # no out-of-scope examples to learn from
    report = evaluate(clf, *zip(*corpus.test, strict=True))
    assert report.in_scope_accuracy >= 0.9
    assert report.out_of_scope_recall >= 0.5      # left-out intents stood in for them


def test_two_intents_without_out_of_scope_use_the_quantile() -> None:
    texts, labels = small_data()
    keep = [i for i, label in enumerate(labels) if label != "opening_hours"]
    clf = IntentClassifier().fit([texts[i] for i in keep], [labels[i] for i in keep])
    assert clf.threshold_choice_.method == "in-scope quantile"


def test_fixed_thresholds() -> None:
    texts, labels = small_data()
    never = IntentClassifier(threshold=0.0).fit(texts, labels)
    assert all(p.intent != "unknown" for p in never.predict(["asdf qwer", "where is it"]))
    always = IntentClassifier(threshold=1.0).fit(texts, labels)
    assert {p.intent for p in always.predict(texts)} == {"unknown"}
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        IntentClassifier(threshold=1.5)


def test_unknown_label_examples_form_their_own_class() -> None:
    texts, labels = small_data()
    oos = ["tell me a joke", "what is the capital of peru", "who won the match",
           "sing me a song", "what's two plus two", "write a poem"] * 2
    clf = IntentClassifier(unknown_label="none", threshold=0.0).fit(
        texts + oos, labels + ["none"] * len(oos))
    assert "none" in clf.classes_ and "none" not in clf.intents
    assert clf.predict(["tell me a joke please"])[0].intent == "none"
    assert clf.predict(["where is my order please"])[0].intent == "order_status"


# -- rules and the model together ----------------------------------------------------
def test_commands_rules_and_prefixes_override_the_model() -> None:
    texts, labels = small_data()
    clf = IntentClassifier().fit(texts, labels)
    d = DefaultIntentDetector({"escalate": IntentRule(keywords=["human"])},
                              {"buy:": "purchase"}, model=clf)
    got = d.detect([ev("/start", command="/start"), ev("where is my order, human?"),
                    ev(None, event_type="callback_query", callback="buy:1"),
                    ev("has my parcel shipped yet")])
    assert [p.intent for p in got if p] == ["/start", "escalate", "purchase", "order_status"]
    assert got[3] is not None and 0.0 < got[3].confidence <= 1.0


# -- persistence -----------------------------------------------------------------------
def test_save_and_load_give_the_same_predictions(shop: tuple, tmp_path: Path) -> None:
    clf, corpus = shop
    path = tmp_path / "shop.model"
    clf.save(path)
    loaded = IntentClassifier.load(path)
    texts = [t for t, _ in corpus.test]
    a, b = clf.predict(texts), loaded.predict(texts)
    # Weights are stored as float16: labels agree, probabilities to about 1e-2.
    same = sum(x.intent == y.intent for x, y in zip(a, b, strict=True))
    assert same >= len(texts) - 2
    assert max(abs(x.confidence - y.confidence) for x, y in zip(a, b, strict=True)) < 0.02
    assert loaded.threshold_ == clf.threshold_ and loaded.classes_ == clf.classes_
    assert path.stat().st_size < 50e6


def test_bad_model_files(shop: tuple, tmp_path: Path) -> None:
    clf, _ = shop
    with pytest.raises(ModelFileError, match="no such model file"):
        IntentClassifier.load(tmp_path / "missing.model")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a model archive"):
        IntentClassifier.load(text)
    good = tmp_path / "good.model"
    clf.save(good)
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}

    def rewrite(name: str, change: dict) -> Path:
        meta = json.loads(np.load(good)["meta"].tobytes().decode())
        meta.update(change)
        out = tmp_path / name
        arrays = {n[:-4]: np.load(good)[n[:-4]] for n in members}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with out.open("wb") as f:
            np.savez(f, **arrays)
        return out

    with pytest.raises(ModelFileError, match="format version 99 is not supported"):
        IntentClassifier.load(rewrite("future.model", {"version": 99}))
    with pytest.raises(ModelFileError, match="not a bot-analytics intent model"):
        IntentClassifier.load(rewrite("other.model", {"format": "something-else"}))
    with pytest.raises(ModelFileError, match="damaged"):
        IntentClassifier.load(rewrite("short.model", {"classes": ["a", "b"]}))
    pickled = tmp_path / "pickled.model"
    with pickled.open("wb") as f:
        np.save(f, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFileError):
        IntentClassifier.load(pickled)


# -- bad input -------------------------------------------------------------------------
def test_awkward_texts_get_a_label_not_an_error(shop: tuple) -> None:
    clf, _ = shop
    texts = ["", "   ", "😀🎉👍🏽", "x" * 4096, "где мой заказ", "我的订单在哪里",
             "nul\x00byte", "lone \ud800 surrogate", "where is " + "my order " * 500]
    preds = clf.predict(texts)
    assert len(preds) == len(texts)
    assert all(isinstance(p, Prediction) and 0.0 <= p.confidence <= 1.0 for p in preds)
    assert preds[0].intent == preds[1].intent == preds[2].intent == "unknown"
    assert clf.predict([]) == []
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        clf.predict(["fine", 3])  # type: ignore[list-item]


def test_training_errors() -> None:
    with pytest.raises(ValueError, match="3 texts but 2 labels"):
        IntentClassifier().fit(["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="no in-scope examples"):
        IntentClassifier().fit(["a", "b"], ["unknown", "unknown"])
    with pytest.raises(ValueError, match=r"labels\[1\] is ''"):
        IntentClassifier().fit(["a", "b"], ["x", ""])
    with pytest.raises(RuntimeError, match="not trained"):
        IntentClassifier().predict(["hello"])


def test_an_intent_with_a_single_example_and_a_single_intent() -> None:
    texts, labels = small_data()
    clf = IntentClassifier().fit([*texts, "cancel my subscription"], [*labels, "cancel"])
    assert "cancel" in clf.intents and clf.threshold_choice_.method == "cross-validation"
    # One example makes a weak class: it is the model's best guess for its own text,
    # though the automatic threshold may still call it unknown.
    best, _ = clf._scores(["cancel my subscription"])
    assert clf.classes_[best[0]] == "cancel"
    one = IntentClassifier(threshold=0.5).fit(["hello there", "hi"], ["greet", "greet"])
    assert one.predict(["hello"])[0] == Prediction("greet", 1.0)


def test_training_files(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text('text,intent\n"hello, there",greet\nbye,farewell\n\n')
    assert load_examples(csv) == (["hello, there", "bye"], ["greet", "farewell"])
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"text": "hi", "intent": "greet"}\n\n{"text": "yo"}\n')
    with pytest.raises(TrainingDataError, match=r"data.jsonl:3: empty or missing intent"):
        load_examples(jsonl)
    jsonl.write_text('{"text": "hi", "intent": "greet"}\n{text: 1}\n')
    with pytest.raises(TrainingDataError, match=r"data.jsonl:2: not JSON"):
        load_examples(jsonl)
    csv.write_text("text,intent\nhi,greet\nbad,row,here\n")
    with pytest.raises(TrainingDataError, match=r"data.csv:3: 3 fields"):
        load_examples(csv)
    csv.write_text("message,label\nhi,greet\n")
    with pytest.raises(TrainingDataError, match=r"data.csv:1: the header must name"):
        load_examples(csv)
    csv.write_bytes(b"text,intent\n\xff\xfe,greet\n")
    with pytest.raises(TrainingDataError, match="not UTF-8"):
        load_examples(csv)
    yml = tmp_path / "config.yaml"
    yml.write_text("intents:\n  examples:\n    greet: [hi, hello]\n    bye: [ciao]\n")
    assert load_examples(yml) == (["hi", "hello", "ciao"], ["greet", "greet", "bye"])
    yml.write_text("greet: hello\n")
    with pytest.raises(TrainingDataError, match="greet: expected a list"):
        load_examples(yml)
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(TrainingDataError, match=r"unknown format \.txt"):
        load_examples(notes)


# -- config and the writer ---------------------------------------------------------------
def test_config_model_path_is_relative_to_the_config_file(shop: tuple, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    clf, _ = shop
    (tmp_path / "models").mkdir()
    clf.save(tmp_path / "models" / "shop.model")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("intents:\n  model: models/shop.model\n")
    monkeypatch.chdir(Path("/"))
    settings = load_config(cfg)
    assert settings.intents.model == str(tmp_path / "models" / "shop.model")
    analytics = Analytics(settings)
    detector = analytics.enricher.detector
    assert isinstance(detector, DefaultIntentDetector)
    assert isinstance(detector.model, IntentClassifier)
    cfg.write_text("intents:\n  model: models/missing.model\n")
    with pytest.raises(ConfigError, match=r"intents\.model: .*no such model file"):
        Analytics(load_config(cfg))


async def test_examples_in_config_label_live_messages(database_url: str, tmp_path: Path,
                                                      emulator: TelegramEmulator) -> None:
    from .test_e2e import shop_dispatcher

    examples = {**SMALL, "unknown": ["tell me a joke", "who won the game",
                                     "what is the meaning of life", "sing a song"]}
    analytics = Analytics(make_settings(database_url, tmp_path,
                                        intents={"examples": examples}))
    dp = shop_dispatcher([])
    analytics.setup(dp)
    token = emulator.add_bot()
    eve = emulator.user("Eve")
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        eve.send("where is my order??")
        eve.send("I want a refund")
        eve.send("hi there")                 # the greeting rule beats the model
        await running.settle(3)
    got = rows(database_url, "SELECT text, intent, intent_confidence FROM interactions "
                             "ORDER BY id")
    assert [r.intent for r in got] == ["order_status", "refund", "greeting"]
    assert 0 < got[0].intent_confidence <= 1 and got[2].intent_confidence == 1.0
    with pytest.raises(ConfigError, match=r"intents.examples: .*refund\[0\]"):
        Analytics(make_settings(database_url, tmp_path,
                                intents={"examples": {"refund": [""]}}))


# -- CLI -------------------------------------------------------------------------------
def test_cli_train_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = make_corpus(domains=("travel",), train_per_intent=40, oos_train=40, seed=5)
    for name, data in (("train", corpus.train), ("val", corpus.val), ("test", corpus.test)):
        with (tmp_path / f"{name}.jsonl").open("w") as f:
            for text, intent in data:
                f.write(json.dumps({"text": text, "intent": intent}) + "\n")
    model = tmp_path / "travel.model"
    assert main(["intents", "train", str(tmp_path / "train.jsonl"), "--val",
                 str(tmp_path / "val.jsonl"), "--out", str(model)]) == 0
    out = capsys.readouterr().out
    assert "of 15 intents and 40 out-of-scope examples" in out and "(validation:" in out
    assert main(["intents", "eval", str(tmp_path / "test.jsonl"), "--model", str(model),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # Recompute accuracy from the model's own labels of the test file.
    clf = IntentClassifier.load(model)
    texts, labels = zip(*corpus.test, strict=True)
    preds = [p.intent for p in clf.predict(list(texts))]
    in_scope = [(p, t) for p, t in zip(preds, labels, strict=True) if t != "unknown"]
    assert report["in_scope_accuracy"] == pytest.approx(
        sum(p == t for p, t in in_scope) / len(in_scope))
    assert report["in_scope_count"] == len(in_scope)
    assert main(["intents", "eval", str(tmp_path / "test.jsonl"), "--model",
                 str(tmp_path / "train.jsonl")]) == 2
    assert "not a model archive" in capsys.readouterr().err


# -- the unknown-message report ----------------------------------------------------------
PLANTED = {
    "gift": (["can you gift wrap my order", "do you offer gift wrapping",
              "gift wrap for a birthday present", "is gift wrapping free",
              "add a gift note and wrapping", "how much is gift wrapping",
              "gift wrapping for christmas"], 40),
    "pets": (["are dogs allowed in the store", "can I bring my dog inside",
              "is the shop dog friendly", "dogs welcome?", "can my dog come in",
              "pet policy for dogs"], 25),
    "parking": (["is there parking near the shop", "where can I park my car",
                 "free parking available?", "parking for customers?",
                 "how much does parking cost", "car park opening hours"], 12),
}


def planted_texts() -> list[str]:
    rng = np.random.default_rng(1)
    out = []
    for phrases, n in PLANTED.values():
        out += [phrases[i] for i in rng.integers(0, len(phrases), n)]
    rng.shuffle(out)
    return out


def test_clusters_find_the_planted_topics() -> None:
    report = cluster_messages([*planted_texts(), "😀😀", ""])
    assert report.messages == 77                  # emoji-only and empty texts left out
    topic_of = {p.lower(): topic for topic, (phrases, _) in PLANTED.items() for p in phrases}
    for cluster in report.clusters:
        topics = {topic_of[e] for e in cluster.examples}
        assert len(topics) == 1, cluster           # no cluster mixes planted topics
    sizes: dict[str, int] = {}
    for cluster in report.clusters:
        topic = topic_of[cluster.examples[0]]
        sizes[topic] = sizes.get(topic, 0) + cluster.size
    assert sizes == {topic: n for topic, (_, n) in PLANTED.items()}
    assert [c.size for c in report.clusters] == sorted(
        (c.size for c in report.clusters), reverse=True)
    biggest = report.clusters[0]
    assert topic_of[biggest.examples[0]] == "gift" and "gift" in " ".join(biggest.terms)
    assert sum(c.share for c in report.clusters) == pytest.approx(1.0)
    assert cluster_messages([]).clusters == []
    assert [c.size for c in cluster_messages(["same text"] * 5).clusters] == [5]
    # Texts with nothing in common stay apart rather than being forced together.
    apart = cluster_messages(["asdf"] * 3 + ["tell me a joke"] * 2
                             + ["do you sell bikes?"] * 4 + ["is this a bot?"])
    assert [(c.size, c.examples) for c in apart.clusters] == [
        (4, ["do you sell bikes?"]), (3, ["asdf"]), (2, ["tell me a joke"]),
        (1, ["is this a bot?"])]


def test_unknown_texts_come_from_the_period(database_url: str, tmp_path: Path) -> None:
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    base = dict(tenant_id="t", bot_id=1, event_type="message", chat_id=1,
                chat_type="private", member_id=1, handler_time_ms=1.0, reply_count=0,
                escalated=False, monetization_event=False)
    data = [  # (text, intent, handled, command, age)
        ("gift wrap?", "unknown", True, None, timedelta(days=1)),
        ("asdf", "refund", False, None, timedelta(days=2)),      # no handler took it
        ("where is my order", "order_status", True, None, timedelta(days=1)),
        ("/nonsense", "/nonsense", False, "/nonsense", timedelta(days=1)),
        ("old question", "unknown", True, None, timedelta(days=9)),
        (None, "unknown", True, None, timedelta(days=1)),
    ]
    from bot_analytics.storage.models import Interaction
    with engine.begin() as conn:
        conn.execute(sa.insert(Interaction.__table__), [
            {**base, "update_id": i, "ts": now - age, "text": text, "intent": intent,
             "handled": handled, "command": command}
            for i, (text, intent, handled, command, age) in enumerate(data)])
    got = load_unknown_texts(engine, now - timedelta(days=7), now)
    assert got == ["gift wrap?", "asdf"]
    assert load_unknown_texts(engine, now - timedelta(days=7), now, tenant_id="x") == []
    engine.dispose()


def test_a_bot_without_a_model_does_not_load_numpy_for_intents(tmp_path: Path) -> None:
    """The classifier is imported only when a model or examples are configured: a new
    interpreter with the plugin set up on rules alone has no numpy, one with examples
    has it, and the package still exports the classifier."""
    import subprocess
    import sys

    script = """
import sys
from bot_analytics import Analytics
from bot_analytics.config import parse_settings
settings = {"database": "sqlite:///%s", "intents": %s}
Analytics(parse_settings(settings))
print("numpy" in sys.modules)
from bot_analytics.nlp import IntentClassifier, ModelFileError
print(IntentClassifier.__name__, issubclass(ModelFileError, Exception))
"""
    examples = {"examples": {"greeting": ["hello there", "hi", "good morning"],
                             "refund": ["I want my money back", "refund please",
                                        "give me a refund"]}}
    for intents, loaded in (({"rules": {"greeting": {"keywords": ["hello"]}}}, "False"),
                            (examples, "True")):
        out = subprocess.run(
            [sys.executable, "-c", script % (tmp_path / "a.sqlite3", intents)],
            capture_output=True, text=True, timeout=120, check=True).stdout.split("\n")
        assert out[0] == loaded
        assert out[1] == "IntentClassifier True"
