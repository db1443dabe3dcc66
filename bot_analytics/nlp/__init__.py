"""Text analysis: intents, sentiment and redaction.

:class:`IntentClassifier` and :class:`ModelFileError` are imported on first use: the
classifier needs numpy and scipy, which a bot without a trained model never loads. Every
module a process holds makes each of its full garbage collections longer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .intents import DefaultIntentDetector, IntentDetector, Prediction, TextIntentModel
from .redact import redact
from .sentiment import SentimentAnalyzer, VaderAnalyzer, label_for

if TYPE_CHECKING:
    from .classifier import IntentClassifier, ModelFileError

__all__ = [
    "DefaultIntentDetector",
    "IntentClassifier",
    "IntentDetector",
    "ModelFileError",
    "Prediction",
    "SentimentAnalyzer",
    "TextIntentModel",
    "VaderAnalyzer",
    "label_for",
    "redact",
]


def __getattr__(name: str) -> Any:
    if name in ("IntentClassifier", "ModelFileError"):
        from . import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
