"""A trainable intent classifier that says ``unknown`` when a message fits no intent.

Features are word unigrams and bigrams plus character 2- to 5-grams, hashed so that a
batch is featurised with a few numpy operations and weighted by inverse document
frequency; the model is a multinomial logistic regression. Examples labelled with the unknown label
are out-of-scope examples and form a class of their own. A message is ``unknown`` when
that class wins or when the best intent's probability is under the threshold.

The threshold is chosen automatically, never on the data a user evaluates on:

* on the validation data given to :meth:`IntentClassifier.fit` when it holds both
  in-scope and out-of-scope examples;
* otherwise by cross-validation on the training data: each fold leaves out a fifth of
  the examples *and* a fifth of the intents, so the left-out intents' messages play the
  part of out-of-scope messages the model has never seen;
* with fewer than three intents and no out-of-scope examples, at the 5th percentile of
  the cross-validated confidence of correct predictions.

The chosen threshold maximises the mean of in-scope accuracy and out-of-scope recall.

With ``embeddings=True`` and the optional ``embeddings`` extra installed, each message's
sentence vector (see :mod:`bot_analytics.nlp.embeddings`) joins the n-grams as one more
block of features: messages worded unlike any example then still land near their
intent. Without the extra the classifier logs a warning and keeps to n-grams.

Models are saved as a compressed numpy archive without pickles, so loading one never
runs code and does not depend on the scikit-learn version.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .embeddings import (
    MODEL_NAME,
    EmbeddingsUnavailable,
    SentenceEncoder,
    load_encoder,
)
from .intents import Prediction

log = logging.getLogger(__name__)

FORMAT = "bot-analytics-intent-model"
FORMAT_VERSION = 1
#: Models with a sentence-vector block: older readers refuse them by version, clearly.
FORMAT_VERSION_EMBEDDINGS = 2
#: The sentence vector's weight beside the two unit-length n-gram blocks.
EMBEDDING_WEIGHT = 1.5

_PRIME = np.uint64(1099511628211)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_WORD_TABLE_SIZE = 0x30000
_UTF32 = "utf-32-le"
#: Texts featurised at once; bounds the memory a huge predict() call needs.
_CHUNK = 4096
#: Powers of a base modulo 2**64 for the positional word hash (words longer than this
#: reuse the last power; they are rare and still hash well).
_POWERS = np.cumprod(np.full(64, np.uint64(0x100000001B3)), dtype=np.uint64)
#: Characters of a message that the features look at; the rest of a long text adds
#: nothing an intent needs and would only cost time.
MAX_CHARS = 1000


class ModelFileError(ValueError):
    """A model file that is missing, damaged or from an incompatible version."""


@dataclass(frozen=True)
class ThresholdChoice:
    """How the out-of-scope threshold was chosen and what it scored there."""

    threshold: float
    method: str                  # "validation", "cross-validation" or "in-scope quantile"
    in_scope_accuracy: float     # on the data the threshold was chosen on
    out_of_scope_recall: float | None
    examples: int


class _Features:
    """Hashed word 1-2-grams and character n-grams, weighted by inverse document
    frequency.

    A batch is lower-cased and reduced to words separated by single spaces, then every
    n-gram is hashed with numpy (a polynomial hash modulo 2**64) into ``2**bits``
    buckets; no Python code runs per word. Training keeps the buckets that occur in
    enough examples and gives each a column. Words and characters form two blocks, each
    scaled to unit length on its own so that both weigh the same in every message.
    """

    def __init__(self, char_min: int = 2, char_max: int = 5, bits: int = 21,
                 max_word_features: int = 40_000, max_char_features: int = 60_000):
        self.char_min, self.char_max, self.bits = char_min, char_max, bits
        self.max_word_features = max_word_features
        self.max_char_features = max_char_features
        self.word_buckets = np.zeros(0, dtype=np.int64)
        self.word_idf = np.zeros(0, dtype=np.float32)
        self.char_buckets = np.zeros(0, dtype=np.int64)
        self.char_idf = np.zeros(0, dtype=np.float32)
        self._word_lookup = np.zeros(0, dtype=np.int32)
        self._char_lookup = np.zeros(0, dtype=np.int32)
        self._idf_all = np.zeros(0, dtype=np.float32)

    @property
    def n_features(self) -> int:
        return len(self.word_buckets) + len(self.char_buckets)

    def _bucket(self, hashes: np.ndarray, salt: int) -> np.ndarray:
        mixed = (hashes ^ np.uint64(salt)) * _MIX
        return (mixed >> np.uint64(64 - self.bits)).astype(np.int64)

    def _grams(self, texts: Sequence[str]
               ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """(document, bucket) of every word gram and of every character gram."""
        joined = " \x00 ".join(t[:MAX_CHARS] for t in texts)
        if joined.count("\x00") != len(texts) - 1:    # a text holds NUL itself
            joined = " \x00 ".join(t[:MAX_CHARS].replace("\x00", " ") for t in texts)
        raw = np.frombuffer((" " + joined + " ").lower().encode(_UTF32, "surrogatepass"),
                            dtype=np.uint32)
        table = _word_table()
        word_char = table[np.minimum(raw, len(table) - 1)]
        space = ~word_char & (raw != 0)
        # Every run of non-word characters becomes one space.
        keep = ~(space & np.concatenate([[False], space[:-1]]))
        codes = np.where(space, np.uint32(32), raw)[keep].astype(np.uint64)
        sep = codes == 0
        doc = np.cumsum(sep)
        size = len(codes)
        # Words: a polynomial hash of each run of word characters.
        is_word = ~sep & (codes != 32)
        before = np.concatenate([[False], is_word[:-1]])
        starts = np.flatnonzero(is_word & ~before)
        run_start = np.maximum.accumulate(np.where(is_word & ~before, np.arange(size), 0))
        offset = np.minimum(np.arange(size) - run_start, len(_POWERS) - 1)
        terms = np.where(is_word, codes * _POWERS[offset], np.uint64(0))
        words = np.add.reduceat(terms, starts) if len(starts) else np.zeros(0, np.uint64)
        word_doc = doc[starts]
        pair = word_doc[1:] == word_doc[:-1]
        bigrams = words[:-1][pair] * _PRIME + words[1:][pair]
        word_docs = np.concatenate([word_doc, word_doc[:-1][pair]])
        word_buckets = np.concatenate([self._bucket(words, 1001), self._bucket(bigrams, 1002)])
        # Characters: rolling hashes of every window that stays inside one text.
        h = np.zeros(size, dtype=np.uint64)
        broken = np.zeros(size, dtype=bool)
        docs, buckets = [], []
        for n in range(1, self.char_max + 1):
            m = size - n + 1
            if m <= 0:
                break
            h = h[:m] * _PRIME + codes[n - 1: n - 1 + m]
            broken = broken[:m] | sep[n - 1: n - 1 + m]
            if n >= self.char_min:
                keep = np.flatnonzero(~broken)
                buckets.append(self._bucket(h[keep], n))
                docs.append(doc[keep])
        char_docs = np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64)
        char_buckets = np.concatenate(buckets) if buckets else np.zeros(0, dtype=np.int64)
        return (word_docs, word_buckets), (char_docs, char_buckets)

    @staticmethod
    def _select(docs: np.ndarray, buckets: np.ndarray, bits: int, n_docs: int,
                min_df: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """Buckets occurring in at least ``min_df`` documents (the ``limit`` most
        frequent), and their inverse document frequencies, most frequent first: the
        weight rows used by most messages then lie together in memory."""
        pairs = np.unique(docs * (1 << bits) + buckets)
        ids, df = np.unique(pairs % (1 << bits), return_counts=True)
        keep = df >= min_df
        ids, df = ids[keep], df[keep]
        top = np.argsort(-df, kind="stable")[:limit]
        ids, df = ids[top], df[top]
        idf = (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(np.float32)
        return ids.astype(np.int64), idf

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        n = len(texts)
        (wd, wb), (cd, cb) = self._grams(texts)
        self.word_buckets, self.word_idf = self._select(
            wd, wb, self.bits, n, 1, self.max_word_features)
        self.char_buckets, self.char_idf = self._select(
            cd, cb, self.bits, n, 2 if n >= 50 else 1, self.max_char_features)
        self._build_lookup()
        m = self._from_grams((wd, wb), (cd, cb), n)
        m.sum_duplicates()
        return m

    def _build_lookup(self) -> None:
        n_words = len(self.word_buckets)
        self._word_lookup = np.full(1 << self.bits, -1, dtype=np.int32)
        self._word_lookup[self.word_buckets] = np.arange(n_words, dtype=np.int32)
        self._char_lookup = np.full(1 << self.bits, -1, dtype=np.int32)
        self._char_lookup[self.char_buckets] = np.arange(
            n_words, n_words + len(self.char_buckets), dtype=np.int32)
        self._idf_all = np.concatenate([self.word_idf, self.char_idf]).astype(np.float32)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        words, chars = self._grams(texts)
        return self._from_grams(words, chars, len(texts))

    def _from_grams(self, words: tuple[np.ndarray, np.ndarray],
                    chars: tuple[np.ndarray, np.ndarray], n: int) -> sp.csr_matrix:
        (wd, wb), (cd, cb) = words, chars
        wcol, ccol = self._word_lookup[wb], self._char_lookup[cb]
        wk, ck = wcol >= 0, ccol >= 0
        rows = np.concatenate([wd[wk], cd[ck]])
        cols = np.concatenate([wcol[wk], ccol[ck]])
        return self._matrix(rows, cols, n)

    def _matrix(self, rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
        """CSR matrix with one entry per occurrence (an n-gram seen twice in a message is
        two entries, which sparse products add up): weight idf, each block divided by the
        root of the sum of its entries' squares."""
        order = np.argsort(rows.astype(np.int32), kind="stable")
        rows, cols = rows[order], cols[order]
        data = self._idf_all[cols]
        is_word = cols < len(self.word_buckets)
        block = rows * 2 + is_word
        sums = np.bincount(block, weights=data.astype(np.float64) ** 2, minlength=2 * n)
        norms = np.sqrt(sums)
        norms[norms == 0] = 1.0
        data = data / norms[block].astype(np.float32)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        return sp.csr_matrix((data, cols.astype(np.int32), indptr), shape=(n, self.n_features))

    # -- persistence -------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {"word_buckets": self.word_buckets, "word_idf": self.word_idf,
                "char_buckets": self.char_buckets, "char_idf": self.char_idf}

    def options(self) -> dict[str, int]:
        return {"char_min": self.char_min, "char_max": self.char_max, "bits": self.bits,
                "max_word_features": self.max_word_features,
                "max_char_features": self.max_char_features}

    @classmethod
    def from_state(cls, options: dict[str, int], arrays: dict[str, np.ndarray]) -> _Features:
        f = cls(**options)
        f.word_buckets = arrays["word_buckets"].astype(np.int64)
        f.word_idf = arrays["word_idf"].astype(np.float32)
        f.char_buckets = arrays["char_buckets"].astype(np.int64)
        f.char_idf = arrays["char_idf"].astype(np.float32)
        size = 1 << f.bits
        for buckets, idf in ((f.word_buckets, f.word_idf), (f.char_buckets, f.char_idf)):
            if len(buckets) != len(idf) or (len(buckets) and (
                    buckets.min() < 0 or buckets.max() >= size)):
                raise ModelFileError("the model file is damaged: feature tables do not match")
        f._build_lookup()
        return f


@lru_cache(maxsize=1)
def _word_table() -> np.ndarray:
    """Which code points are word characters (as ``\\w`` in a regular expression: letters,
    digits and the underscore), up to U+2FFFF; everything above counts as punctuation."""
    chars = "".join(map(chr, range(_WORD_TABLE_SIZE))).replace("\x00", " ")
    marked = re.sub(r"\w", "\x00", chars).encode(_UTF32, "surrogatepass")
    codes = np.frombuffer(marked, dtype=np.uint32)
    table = codes == 0
    table[-1] = False
    return table


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


def _clean(texts: Iterable[object], what: str) -> list[str]:
    out: list[str] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{i}] is {type(text).__name__}, not a string")
        out.append(text)
    return out


class IntentClassifier:
    """Labels texts with intents, or with ``unknown_label`` when none fits.

    ``threshold=None`` chooses the out-of-scope threshold automatically (see the module
    documentation); a number fixes it. ``C`` is the inverse regularisation strength of the
    logistic regression. ``embeddings=True`` adds sentence vectors when the optional
    extra is installed (``embedding_model_`` then names the encoder; None otherwise).
    """

    def __init__(self, unknown_label: str = "unknown", threshold: float | None = None,
                 C: float = 20.0, folds: int = 3, random_state: int = 0,
                 embeddings: bool = False):
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        if folds < 2:
            raise ValueError(f"folds must be at least 2, got {folds}")
        self.unknown_label = unknown_label
        self.threshold = threshold
        self.C = C
        self.folds = folds
        self.random_state = random_state
        self.embeddings = embeddings
        self.classes_: list[str] = []
        self.threshold_: float = 0.0
        self.threshold_choice_: ThresholdChoice | None = None
        self._features: _Features | None = None
        self._coef = np.zeros((0, 0), dtype=np.float32)
        self._intercept = np.zeros(0, dtype=np.float32)
        self._encoder: SentenceEncoder | None = None
        # Sentence vectors of the texts seen in fit(), kept while it runs (folds reuse them).
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def embedding_model_(self) -> str | None:
        return self._encoder.name if self._encoder is not None else None

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors: inside fit() from those it encoded up front (every training
        and validation text, so the folds' texts too), otherwise from the encoder."""
        assert self._encoder is not None
        if self._vectors and texts:
            return np.stack([self._vectors[t] for t in texts])
        return self._encoder.encode(texts)

    # -- training ----------------------------------------------------------------------
    @property
    def intents(self) -> list[str]:
        """The in-scope intents the model knows."""
        return [c for c in self.classes_ if c != self.unknown_label]

    def _check(self, texts: Sequence[str], labels: Sequence[str], what: str
               ) -> tuple[list[str], list[str]]:
        texts = _clean(texts, f"{what} texts")
        labels = list(labels)
        if len(texts) != len(labels):
            raise ValueError(f"{what}: {len(texts)} texts but {len(labels)} labels")
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip():
                raise ValueError(f"{what} labels[{i}] is {label!r}; labels must be "
                                 "non-empty strings")
        return texts, labels

    def _fit_model(self, texts: Sequence[str], labels: Sequence[str]
                   ) -> tuple[_Features, list[str], np.ndarray, np.ndarray]:
        from sklearn.linear_model import LogisticRegression

        features = _Features()
        x = features.fit_transform(texts)
        if self._encoder is not None:
            x = sp.hstack([x, sp.csr_matrix(EMBEDDING_WEIGHT * self._embed(texts))],
                          format="csr")
        classes = sorted(set(labels))
        if len(classes) == 1:
            # One class: every message gets it with full confidence; the threshold and
            # out-of-scope examples still decide.
            return (features, classes, np.zeros((1, x.shape[1]), dtype=np.float32),
                    np.zeros(1, dtype=np.float32))
        model = LogisticRegression(C=self.C, max_iter=300, tol=1e-3)
        model.fit(x, labels)
        coef = model.coef_.astype(np.float32)
        intercept = model.intercept_.astype(np.float32)
        if len(classes) == 2:   # binary models keep one row; make it a two-way softmax
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
        # Stored as the transpose of a row-major (features x classes) array: that is the
        # layout the sparse product in prediction reads without copying.
        coef = np.ascontiguousarray(coef.T).T
        return features, [str(c) for c in model.classes_], coef, intercept

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            val_texts: Sequence[str] | None = None,
            val_labels: Sequence[str] | None = None) -> IntentClassifier:
        texts, labels = self._check(texts, labels, "training data")
        in_scope = {label for label in labels if label != self.unknown_label}
        if not in_scope:
            raise ValueError("training data has no in-scope examples: every label is "
                             f"the unknown label {self.unknown_label!r}")
        if (val_texts is None) != (val_labels is None):
            raise ValueError("give both val_texts and val_labels, or neither")
        if val_texts is not None and val_labels is not None:
            val_texts, val_labels = self._check(val_texts, val_labels, "validation data")
        self._encoder = _encoder_or_none() if self.embeddings else None
        try:
            return self._fit(texts, labels, val_texts, val_labels)
        finally:
            self._vectors = {}

    def _fit(self, texts: list[str], labels: list[str], val_texts: Sequence[str] | None,
             val_labels: Sequence[str] | None) -> IntentClassifier:
        if self._encoder is not None:
            # Every text of training and validation in one pass of the encoder.
            everything = list(dict.fromkeys([*texts, *(val_texts or [])]))
            self._vectors = dict(zip(everything, self._encoder.encode(everything),
                                     strict=True))
        self._features, self.classes_, self._coef, self._intercept = \
            self._fit_model(texts, labels)
        if self.threshold is not None:
            self.threshold_ = self.threshold
            self.threshold_choice_ = ThresholdChoice(self.threshold, "fixed", math.nan,
                                                     None, 0)
            return self
        choice = None
        if val_texts is not None and val_labels is not None:
            if any(v == self.unknown_label for v in val_labels) and any(
                    v != self.unknown_label for v in val_labels):
                best, conf = self._scores(val_texts)
                choice = _choose(conf, [self.classes_[b] for b in best], val_labels,
                                 self.unknown_label, "validation")
        if choice is None:
            choice = self._cross_validate(texts, labels)
        self.threshold_ = choice.threshold
        self.threshold_choice_ = choice
        return self

    def _cross_validate(self, texts: list[str], labels: list[str]) -> ThresholdChoice:
        rng = np.random.default_rng(self.random_state)
        intents = sorted({label for label in labels if label != self.unknown_label})
        group_out = len(intents) >= 3
        k = min(self.folds, len(intents)) if group_out else self.folds
        group = {name: int(g) % k for name, g in zip(
            intents, rng.permutation(len(intents)), strict=True)}
        fold = np.full(len(labels), -1, dtype=np.int64)
        by_label: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            by_label.setdefault(label, []).append(i)
        for members in by_label.values():
            if len(members) >= 2:
                order = rng.permutation(len(members))
                for pos, j in enumerate(order):
                    fold[members[j]] = pos % k
        conf_all: list[float] = []
        pred_all: list[str] = []
        true_all: list[str] = []
        for f in range(k):
            held_intent = np.array([group_out and labels[i] != self.unknown_label
                                    and group[labels[i]] == f for i in range(len(labels))])
            train = (fold != f) & ~held_intent
            test = (fold == f) & ~held_intent
            train_idx = np.flatnonzero(train)
            if len({labels[i] for i in train_idx} - {self.unknown_label}) < 1:
                continue
            scorer = self._fit_model([texts[i] for i in train_idx],
                                     [labels[i] for i in train_idx])
            classes = scorer[1]
            for idx, as_unknown in ((np.flatnonzero(test), False),
                                    (np.flatnonzero(held_intent), True)):
                if len(idx) == 0:
                    continue
                best, conf = self._scores([texts[i] for i in idx], scorer)
                pred_all += [classes[b] for b in best]
                conf_all += conf.tolist()
                true_all += [self.unknown_label if as_unknown else labels[i] for i in idx]
        if not true_all:
            return ThresholdChoice(0.0, "cross-validation", math.nan, None, 0)
        conf_arr = np.array(conf_all)
        if any(t == self.unknown_label for t in true_all):
            return _choose(conf_arr, pred_all, true_all, self.unknown_label,
                           "cross-validation")
        correct = np.array([p == t for p, t in zip(pred_all, true_all, strict=True)])
        threshold = float(np.quantile(conf_arr[correct], 0.05)) if correct.any() else 0.0
        accuracy = float(np.mean(correct & (conf_arr >= threshold)))
        return ThresholdChoice(threshold, "in-scope quantile", accuracy, None, len(true_all))

    # -- prediction --------------------------------------------------------------------
    def _scores(self, texts: Sequence[str],
                model: tuple[_Features, list[str], np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Index of the best class and its probability for each text."""
        if model is None:
            if self._features is None:
                raise RuntimeError("the classifier is not trained: call fit() or load()")
            model = (self._features, self.classes_, self._coef, self._intercept)
        features, _, coef, intercept = model
        x = features.transform(texts)
        weights = coef.T if coef.T.flags.c_contiguous else np.ascontiguousarray(coef.T)
        n = features.n_features
        scores = np.asarray(x @ weights[:n]) + intercept
        if weights.shape[0] > n:   # the sentence-vector block
            scores += (EMBEDDING_WEIGHT * self._embed(texts)) @ weights[n:]
        probs = _softmax(scores)
        best = probs.argmax(axis=1)
        return best, probs[np.arange(len(best)), best]

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        texts = _clean(texts, "texts")
        if not texts:
            return []
        out: list[Prediction] = []
        labels = np.array([*self.classes_, self.unknown_label], dtype=object)
        for start in range(0, len(texts), _CHUNK):
            best, conf = self._scores(texts[start:start + _CHUNK])
            rejected = conf < self.threshold_
            # Out-of-scope by threshold: the confidence is that of "none of these".
            conf = np.where(rejected, 1.0 - conf, conf).round(6)
            names = labels[np.where(rejected, len(self.classes_), best)]
            out += map(Prediction, names.tolist(), conf.tolist())
        return out

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        if self._features is None:
            raise RuntimeError("the classifier is not trained: call fit() first")
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION if self._encoder is None else FORMAT_VERSION_EMBEDDINGS,
            "embeddings": self.embedding_model_,
            "unknown_label": self.unknown_label, "classes": self.classes_,
            "threshold": self.threshold_, "C": self.C,
            "threshold_choice": asdict(self.threshold_choice_)
            if self.threshold_choice_ else None,
            "features": self._features.options(),
        }
        arrays = dict(self._features.state())
        arrays["coef"] = self._coef.astype(np.float16)
        arrays["intercept"] = self._intercept
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)    # type: ignore[arg-type]
        Path(path).write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> IntentClassifier:
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file; train one with "
                                 "`bot-analytics intents train DATA --out MODEL`")
        with path.open("rb") as f:
            magic = f.read(4)
        if magic != b"PK\x03\x04":
            raise ModelFileError(f"{path}: not a bot-analytics intent model (this file is "
                                 "not a model archive); train one with "
                                 "`bot-analytics intents train DATA --out MODEL`")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise ModelFileError(f"{path}: not a bot-analytics intent model ({exc}); "
                                 "retrain it with `bot-analytics intents train`") from None
        try:
            meta = json.loads(arrays["meta"].tobytes().decode())
        except (KeyError, ValueError):
            raise ModelFileError(f"{path}: not a bot-analytics intent model (no readable "
                                 "header); retrain it with `bot-analytics intents train`"
                                 ) from None
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a bot-analytics intent model")
        if meta.get("version") not in (FORMAT_VERSION, FORMAT_VERSION_EMBEDDINGS):
            raise ModelFileError(
                f"{path}: model format version {meta.get('version')} is not supported by "
                f"this bot-analytics (it reads versions {FORMAT_VERSION} and "
                f"{FORMAT_VERSION_EMBEDDINGS}); retrain it with `bot-analytics intents train`")
        encoder = None
        if meta.get("embeddings"):
            if meta["embeddings"] != MODEL_NAME:
                raise ModelFileError(f"{path}: made with the sentence encoder "
                                     f"{meta['embeddings']!r}, this bot-analytics has "
                                     f"{MODEL_NAME!r}; retrain it")
            try:
                encoder = load_encoder()
            except EmbeddingsUnavailable as exc:
                raise ModelFileError(f"{path}: this model uses sentence embeddings; {exc}"
                                     ) from None
        try:
            clf = cls(unknown_label=meta["unknown_label"], C=meta["C"],
                      embeddings=encoder is not None)
            clf._encoder = encoder
            clf.classes_ = list(meta["classes"])
            clf.threshold_ = float(meta["threshold"])
            if meta.get("threshold_choice"):
                clf.threshold_choice_ = ThresholdChoice(**meta["threshold_choice"])
            clf._features = _Features.from_state(meta["features"], arrays)
            clf._coef = np.ascontiguousarray(arrays["coef"].astype(np.float32).T).T
            clf._intercept = arrays["intercept"].astype(np.float32)
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"{path}: the model file is damaged (missing {exc})"
                                 ) from None
        width = clf._features.n_features + (encoder.dimensions if encoder else 0)
        if clf._coef.shape != (len(clf.classes_), width):
            raise ModelFileError(f"{path}: the model file is damaged: weights do not match "
                                 "its features")
        return clf


def _encoder_or_none() -> SentenceEncoder | None:
    try:
        return load_encoder()
    except EmbeddingsUnavailable as exc:
        log.warning("intent classifier: %s; training on n-grams only", exc)
        return None


def _choose(conf: np.ndarray, predicted: Sequence[str], truth: Sequence[str],
            unknown: str, method: str) -> ThresholdChoice:
    """The threshold maximising mean(in-scope accuracy, out-of-scope recall)."""
    conf = np.asarray(conf, dtype=np.float64)
    pred = np.asarray(predicted, dtype=object)
    true = np.asarray(truth, dtype=object)
    is_oos = true == unknown
    in_scope = ~is_oos
    right = in_scope & (pred == true)
    said_unknown = pred == unknown
    candidates = np.unique(np.concatenate([[0.0], conf[~said_unknown]]))
    # Accepting needs conf >= t. Sort once and count with searchsorted.
    right_conf = np.sort(conf[right])
    oos_kept = np.sort(conf[is_oos & ~said_unknown])
    n_in, n_oos = int(in_scope.sum()), int(is_oos.sum())
    accuracy = (len(right_conf) - np.searchsorted(right_conf, candidates, "left")) / n_in
    oos_wrong = len(oos_kept) - np.searchsorted(oos_kept, candidates, "left")
    recall = 1.0 - oos_wrong / n_oos
    score = accuracy + recall
    i = int(np.argmax(score))
    return ThresholdChoice(float(candidates[i]), method, float(accuracy[i]),
                           float(recall[i]), len(true))
