"""Redaction, sentiment and rule-based intents."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot_analytics.config import IntentRule
from bot_analytics.events import InteractionEvent
from bot_analytics.nlp.intents import DefaultIntentDetector, Prediction, RuleSet, certain
from bot_analytics.nlp.redact import clean_text, iban_valid, luhn_valid, redact
from bot_analytics.nlp.sentiment import VaderAnalyzer, label_for, mostly_latin


@pytest.mark.parametrize(("text", "expected"), [
    ("write to anna.b+shop@mail.example.co.uk now", "write to [email] now"),
    ("call +1 (415) 555-2671 today", "call [phone] today"),
    ("call 415-555-2671", "call [phone]"),
    ("my number is 4155552671", "my number is [phone]"),
    ("card 4111 1111 1111 1111 exp 12/27", "card [card] exp 12/27"),
    ("card 5500-0000-0000-0004", "card [card]"),
    ("iban GB82 WEST 1234 5698 7654 32 please", "iban [iban] please"),
    ("iban DE89370400440532013000", "iban [iban]"),
    # Not personal data: must stay as typed.
    ("order 4111 1111 1111 1112 shipped", "order 4111 1111 1111 1112 shipped"),
    ("meet on 2026-11-21 at 10:30", "meet on 2026-11-21 at 10:30"),
    ("order #12345 costs $29.99", "order #12345 costs $29.99"),
    ("GB00 WEST 1234 5698 7654 32", "GB00 WEST 1234 5698 7654 32"),
])
def test_redaction(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_check_sums_against_known_values() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")


def test_clean_text_drops_nul_and_lone_surrogates() -> None:
    assert clean_text("a\x00b") == "ab"
    cleaned = clean_text("x\ud800y")
    cleaned.encode("utf-8")  # now storable
    assert cleaned.startswith("x") and cleaned.endswith("y")


@pytest.mark.parametrize(("score", "label"), [
    (0.05, "positive"), (0.0499, "neutral"), (0.0, "neutral"), (-0.0499, "neutral"),
    (-0.05, "negative"), (1.0, "positive"), (-1.0, "negative")])
def test_label_thresholds(score: float, label: str) -> None:
    assert label_for(score) == label


def test_vader_behaviour() -> None:
    v = VaderAnalyzer()

    def s(text: str) -> float:
        score = v.score(text)
        assert score is not None
        return score

    assert s("The service is good") > 0.05
    assert s("The service is not good") < -0.05             # negation flips
    assert s("The service is very good") > s("The service is good")  # intensifier
    assert s("The service is GOOD") > s("The service is good")       # all-caps emphasis
    assert s("The service is good!!!") > s("The service is good")    # exclamation
    # Emoji carry sentiment through VADER's emoji descriptions ("angry face", ...).
    assert s("😀") >= 0.05 and s("ok 👍") >= 0.05
    assert s("😠") <= -0.05 and s("I am 😢") <= -0.05
    assert s("The service is good, but the delivery was awful") < s("The service is good")


# Words VADER's rules treat specially, emoticons, punctuation around words, and texts
# with no sentiment word at all.
VADER_EDGE_CASES = [
    "no", "no way", "no no no", "kind of", "kind of good", "but", "ok but", "at least",
    "least", ":)", ":-(", "<3", "(:", ":D", "xD", "'great'", "(great)", "GREAT!!!", "k",
    "not bad", "hello!!!", "??", "...", "a", "it's ok", "lol", "wtf", "yes", "so-so",
    "hmm...", "/start", "/help", "I'd like a refund", "#1", "$29.99", "don't", "isn't good",
    "sort of", "kinda", "where is my order?", "WHERE IS MY ORDER", "order #12345 status",
    "no.", "--good--", "!!", "nope :(", "call me on +44 20 7946 0958", "  spaced  out  ",
    "tab\tseparated\nlines", "hello 👋", "ça va?", "naïve question",
]


def test_texts_without_sentiment_words_score_as_vader_scores_them() -> None:
    """The analyzer answers 0 itself for a text in which no word is in VADER's lexicon;
    every text must still score exactly as VADER scores it."""
    from bot_analytics.examples.intent_corpus import make_corpus
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    corpus = make_corpus(train_per_intent=10, val_per_intent=0, test_per_intent=0,
                         oos_train=50, oos_val=0, oos_test=0)
    texts = [t for t, _ in corpus.train] + VADER_EDGE_CASES
    v = VaderAnalyzer()
    called: list[str] = []
    polarity = v._vader.polarity_scores

    def counted(text: str) -> dict[str, float]:
        called.append(text)
        return polarity(text)

    v._vader.polarity_scores = counted  # type: ignore[method-assign]
    for text in texts:
        score = v.score(text, "en")
        if score is None:
            assert not text.strip()
            continue
        assert score == vader.polarity_scores(text)["compound"], text
    # Both ways were taken: some texts were left to VADER, others answered without it.
    assert 0 < len(called) < len(texts)
    assert "where is my order?" not in called and "no way" in called


def test_other_languages_get_no_sentiment() -> None:
    v = VaderAnalyzer()
    assert v.score("Das ist schlecht", "de") is None          # language_code says German
    assert v.score("Это ужасно", None) is None                # Cyrillic script
    assert v.score("これはひどい", "en") is None              # script wins over the code
    assert v.score("great", "en-US") is not None
    assert v.score("   ", "en") is None
    assert mostly_latin("héllo wörld") and not mostly_latin("مرحبا hi")
    assert VaderAnalyzer(use_language_code=False).score("terrible", "de") is not None


def ev(text: str | None = None, *, event_type: str = "message", command: str | None = None,
       callback: str | None = None) -> InteractionEvent:
    return InteractionEvent("t", 1, 1, event_type, datetime(2026, 1, 1, tzinfo=UTC), 1, 1,
                            "private", "en", text, command, None, callback, True, None, 1.0,
                            None, None, 0, False, None)


def test_rule_order_commands_callbacks_and_fixed_intents() -> None:
    class Model:
        def predict(self, texts: list[str]) -> list[Prediction]:
            return [Prediction("smalltalk", 0.7) for _ in texts]

    d = DefaultIntentDetector(
        {"escalate": IntentRule(keywords=["human", "real person"]),
         "refund": IntentRule(patterns=[r"money\s+back"]),
         "greeting": IntentRule(keywords=["hi"])},
        {"buy:": "purchase", "buy:gift": "gift"}, model=Model())
    got = d.detect([
        ev("/start x", command="/start"),
        ev("Can I talk to a REAL PERSON?"),
        ev("I want my money   back"),
        ev("hi, I want a human"),          # first rule in config order wins
        ev("this is hilarious"),           # 'hi' is a whole word only
        ev(None, event_type="callback_query", callback="buy:gift:premium"),
        ev(None, event_type="callback_query", callback="buy:basic"),
        ev(None, event_type="callback_query", callback="menu"),
        ev(None, event_type="successful_payment"),
        ev(None, event_type="pre_checkout_query"),
        ev(None),                          # a photo without caption
    ])
    assert [p.intent if p else None for p in got] == [
        "/start", "escalate", "refund", "escalate", "smalltalk", "gift", "purchase",
        "callback", "payment", "checkout", "media"]
    assert got[4] == Prediction("smalltalk", 0.7)


RULES = {"greeting": IntentRule(keywords=["hi", "Real Person"]),
         "refund": IntentRule(keywords=["refund", "how much"]),
         "stop": IntentRule(keywords=["stop", "kelvin"]),
         "cafe": IntentRule(keywords=["café"]),
         "money": IntentRule(keywords=["pay"], patterns=[r"money\s+back"])}
FRAGMENTS = ["hi", "HI", "Hi!", "this", "hilarious", "real person", "REAL  PERSON",
             "ReFuNd", "refunded", "how much", "How Much?", "STOP", "ſtop", "\u212aelvin",
             "KELVIN", "café", "CAFÉ", "cafe", "PAY", "money back", "MONEY\tback", " ", ",",
             "\u200b", "é"]


@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=8).map("".join))
def test_rules_match_as_their_regular_expressions_do(text: str) -> None:
    """The rules skip the regex of a keyword rule whose keywords an ASCII text does not
    hold; the intent must be the one the rules' regular expressions give on their own."""
    expected = None
    for intent, rule in RULES.items():
        alternatives = [r"\b" + re.escape(k) + r"\b" for k in rule.keywords] + \
            [f"(?:{p})" for p in rule.patterns]
        if re.search("|".join(alternatives), text, re.IGNORECASE):
            expected = intent
            break
    assert RuleSet(RULES).match(text) == expected


def test_without_a_model_unmatched_text_is_unknown() -> None:
    d = DefaultIntentDetector({}, {})
    assert d.detect([ev("what's up")]) == [Prediction("unknown", 0.0)]


def test_certain_predictions_are_shared_per_label() -> None:
    """A batch's predictions of commands, rules and media are one object per label, not
    one per event; the values are those a new Prediction would have."""
    d = DefaultIntentDetector({"greeting": IntentRule(keywords=["hi"])}, {})
    events = [ev("hi there"), ev("/help", command="/help"), ev("hi again"), ev(None),
              ev("/help me", command="/help"), ev("nothing"), ev("no idea")]
    got = d.detect(events)
    assert got == [Prediction("greeting", 1.0), Prediction("/help", 1.0),
                   Prediction("greeting", 1.0), Prediction("media", 1.0),
                   Prediction("/help", 1.0), Prediction("unknown", 0.0),
                   Prediction("unknown", 0.0)]
    assert got[0] is got[2] and got[1] is got[4] and got[5] is got[6]
    assert d.detect([ev("hi")])[0] is got[0]  # and from one batch to the next
    for i in range(5000):  # commands are whatever people type: the kept ones are bounded
        d.detect([ev(f"/c{i}", command=f"/c{i}")])
    assert certain.cache_info().currsize <= 4096
    assert d.detect([ev("hi")]) == [Prediction("greeting", 1.0)]
