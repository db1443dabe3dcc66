"""Text analysis: intents, sentiment and redaction."""

from .classifier import IntentClassifier, ModelFileError
from .intents import DefaultIntentDetector, IntentDetector, Prediction, TextIntentModel
from .redact import redact
from .sentiment import SentimentAnalyzer, VaderAnalyzer, label_for

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
