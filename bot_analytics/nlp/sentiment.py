"""Sentiment of text interactions.

The default analyzer is VADER (English only). Its compound score c gives the label:
``positive`` if c >= 0.05, ``negative`` if c <= -0.05, else ``neutral``. Text marked as
another language (by the sender's Telegram ``language_code`` or by its script) gets no
sentiment at all: a wrong ``neutral`` would skew every rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05


def label_for(compound: float) -> str:
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


class SentimentAnalyzer(Protocol):
    """Scores a batch of texts; ``None`` where the analyzer cannot score a text."""

    def scores(self, texts: Sequence[str], language_codes: Sequence[str | None]
               ) -> list[float | None]: ...


def mostly_latin(text: str) -> bool:
    """True when at least half of the letters are Latin (or there are no letters)."""
    if text.isascii():
        return True
    letters = latin = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            if ch < "\u0250":  # Basic Latin through Latin Extended-B
                latin += 1
    return letters == 0 or latin * 2 >= letters


class VaderAnalyzer:
    """VADER compound scores for text in the configured languages."""

    def __init__(self, languages: Sequence[str] = ("en",), use_language_code: bool = True):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer, SentiText

        self._vader = SentimentIntensityAnalyzer()
        self._lexicon = self._vader.lexicon
        self._vader_word = SentiText._strip_punc_if_word  # how VADER cuts out a word
        # VADER reads emoji as words. None in its list is ASCII, so an ASCII text has
        # none; should a list ever hold one, every text goes to VADER.
        self._ascii_emoji = any(e.isascii() for e in self._vader.emojis)
        self._languages = tuple(lang.lower() for lang in languages)
        self._use_language_code = use_language_code

    def understands(self, text: str, language_code: str | None) -> bool:
        if not text or not text.strip():
            return False
        if self._use_language_code and language_code:
            primary = language_code.lower().split("-")[0]
            if primary not in self._languages:
                return False
        return mostly_latin(text)

    def score(self, text: str, language_code: str | None = None) -> float | None:
        if not self.understands(text, language_code):
            return None
        if text.isascii() and not self._ascii_emoji and not self._has_lexicon_word(text):
            return 0.0  # what VADER gives such a text, without its per-word rules
        return float(self._vader.polarity_scores(text)["compound"])

    def _has_lexicon_word(self, text: str) -> bool:
        """Whether any word of an emoji-free text, cut out as VADER cuts it (split on
        white space, then VADER's own function strips punctuation from both ends unless
        that leaves two characters or fewer), is in VADER's lexicon. Only such words
        carry a valence: negations, boosters, 'but' and punctuation only scale it, so a
        text without one scores exactly 0."""
        lexicon, vader_word = self._lexicon, self._vader_word
        return any(vader_word(word).lower() in lexicon for word in text.split())

    def scores(self, texts: Sequence[str], language_codes: Sequence[str | None]
               ) -> list[float | None]:
        return [self.score(t, lang) for t, lang in zip(texts, language_codes, strict=True)]
