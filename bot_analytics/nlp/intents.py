"""Intent detection for captured interactions.

The writer calls an :class:`IntentDetector` on each batch. The default one applies, in
order: commands (``/start`` is its own intent), keyword and pattern rules from
config.yaml, callback-data prefixes, and then a trained text model when one is
configured; text nothing matches is ``unknown``. Interactions without text get a fixed
intent naming what they are (``callback``, ``payment``, ``checkout``, ``media``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple, Protocol

from ..config import IntentRule
from ..events import InteractionEvent

#: Intents of interactions that carry no text for a model to read.
EVENT_TYPE_INTENTS = {
    "successful_payment": "payment",
    "pre_checkout_query": "checkout",
    "poll_answer": "poll_answer",
    "callback_query": "callback",
}
MEDIA_INTENT = "media"


class Prediction(NamedTuple):
    """An intent and the model's probability for it (1.0 for commands and rules)."""

    intent: str
    confidence: float


@lru_cache(maxsize=4096)  # commands are whatever people type
def certain(label: str) -> Prediction:
    """The prediction of ``label`` with certainty (commands, rules, callbacks, media):
    one shared, immutable object per label rather than a new one an event. A batch's new
    tuples live until it is stored, long enough for the garbage collector to move them
    to its oldest generation, and what it moves there brings on full collections, which
    stop the whole process."""
    return Prediction(label, 1.0)


class TextIntentModel(Protocol):
    """A trained model that labels texts (``unknown`` for out-of-scope ones)."""

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


class IntentDetector(Protocol):
    """Labels a batch of interactions; ``None`` leaves an interaction without intent."""

    def detect(self, events: Sequence[InteractionEvent]) -> list[Prediction | None]: ...


class RuleSet:
    """Keyword and regular-expression rules; the first rule (in config order) that
    matches a text wins. Keywords match whole words, case-insensitively."""

    def __init__(self, rules: Mapping[str, IntentRule]):
        #: (intent, regex, needles): ``needles`` are the rule's keywords in lower case
        #: when it has only keywords, all of them ASCII; otherwise None.
        self._compiled: list[tuple[str, re.Pattern[str], tuple[str, ...] | None]] = []
        for intent, rule in rules.items():
            keywords = [k.strip() for k in rule.keywords if k.strip()]
            parts = [r"\b" + re.escape(k) + r"\b" for k in keywords]
            for pattern in rule.patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"intents.rules.{intent}.patterns: invalid regular expression "
                        f"{pattern!r}: {exc}") from None
                parts.append(f"(?:{pattern})")
            if parts:
                needles = (tuple(k.lower() for k in keywords)
                           if not rule.patterns and all(k.isascii() for k in keywords)
                           else None)
                self._compiled.append((intent, re.compile("|".join(parts), re.IGNORECASE),
                                       needles))

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def match(self, text: str) -> str | None:
        # A regular expression tries each position of the text in turn, once per rule.
        # In an ASCII text, an ASCII keyword matches, in any case, only where the text
        # in lower case holds it: a rule none of whose keywords is there is skipped.
        lowered = text.lower() if text.isascii() else None
        for intent, regex, needles in self._compiled:
            if lowered is not None and needles is not None:
                for needle in needles:
                    if needle in lowered:
                        break
                else:
                    continue
            if regex.search(text):
                return intent
        return None


class DefaultIntentDetector:
    """Commands, rules, callback prefixes, then an optional text model."""

    def __init__(self, rules: Mapping[str, IntentRule] | None = None,
                 callback_prefixes: Mapping[str, str] | None = None,
                 model: TextIntentModel | None = None, unknown_label: str = "unknown"):
        self.rules = RuleSet(rules or {})
        # Longest prefix first, so "buy:premium" beats "buy".
        self._prefixes = sorted((callback_prefixes or {}).items(), key=lambda kv: -len(kv[0]))
        self.model = model
        self.unknown_label = unknown_label
        self._unknown = Prediction(unknown_label, 0.0)  # shared, as certain() ones are

    def _callback_intent(self, data: str | None) -> str:
        if data:
            for prefix, intent in self._prefixes:
                if data.startswith(prefix):
                    return intent
        return EVENT_TYPE_INTENTS["callback_query"]

    def detect(self, events: Sequence[InteractionEvent]) -> list[Prediction | None]:
        out: list[Prediction | None] = [None] * len(events)
        for_model: list[int] = []
        for i, ev in enumerate(events):
            if ev.command:
                out[i] = certain(ev.command)
            elif ev.event_type == "callback_query":
                out[i] = certain(self._callback_intent(ev.callback_data))
            elif ev.event_type in EVENT_TYPE_INTENTS:
                out[i] = certain(EVENT_TYPE_INTENTS[ev.event_type])
            elif not ev.text or not ev.text.strip():
                out[i] = certain(MEDIA_INTENT)
            else:
                ruled = self.rules.match(ev.text) if self.rules else None
                if ruled is not None:
                    out[i] = certain(ruled)
                elif self.model is not None:
                    for_model.append(i)
                else:
                    out[i] = self._unknown
        if for_model and self.model is not None:
            preds = self.model.predict([events[i].text or "" for i in for_model])
            for i, pred in zip(for_model, preds, strict=True):
                out[i] = pred
        return out
