"""Text analysis: intents, sentiment and redaction."""

from .intents import DefaultIntentDetector, IntentDetector, Prediction, TextIntentModel
from .redact import redact
from .sentiment import SentimentAnalyzer, VaderAnalyzer, label_for

__all__ = [
    "DefaultIntentDetector",
    "IntentDetector",
    "Prediction",
    "SentimentAnalyzer",
    "TextIntentModel",
    "VaderAnalyzer",
    "label_for",
    "redact",
]
