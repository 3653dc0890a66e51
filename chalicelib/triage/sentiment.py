"""Sentiment of a customer's message: a linear model trained on labelled customer tweets
(tools/train_sentiment.py), shipped in ``sentiment_model.json.gz`` and applied in pure
Python.

One multinomial logistic regression per language (English, Spanish) over hashed word and
character n-grams and a few tweet-aware features (negation, emoji, punctuation:
``features.py``) weighted by tf-idf; a text in another language gets
the model of ``fallback`` in the file (emoji, punctuation and shared word stems still say
something). The file is read on the first call and cached for the process.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import sys
import threading
from array import array
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from chalicelib.triage.features import CHAR_BLOCK, DIMENSIONS, feature_counts

MODEL_PATH = Path(__file__).with_name("sentiment_model.json.gz")
LABELS = ("negative", "neutral", "positive")
FORMAT = 2  # 2: negation, emoji and punctuation features (a format-1 file lacks them)


@dataclass(frozen=True)
class Quantized:
    """Numbers stored as integers: each one is ``values[i] * scale``."""

    values: array
    scale: float


@dataclass(frozen=True)
class Sentiment:
    label: str  # "negative" | "neutral" | "positive"
    score: float  # P(positive) - P(negative): -1 surely negative ... +1 surely positive
    model: str  # the language model that answered ("en", "es")


class LanguageModel:
    """One language's weights: a bucket -> row index, and per row its idf and one weight per
    label, kept as the 16-bit integers of the file and scaled when used (converting a million
    weights to floats would cost the first call more than all its arithmetic)."""

    def __init__(self, bias: list[float], buckets: array, idf: Quantized, weights: Quantized, unseen_idf: float) -> None:
        self.bias = bias
        self.rows = dict(zip(buckets, range(len(buckets)), strict=True))
        self.idf = idf
        self.weights = weights  # row-major: len(LABELS) per row
        self.unseen_idf = unseen_idf

    def vector(self, text: str) -> dict[int, float]:
        """Sparse tf-idf vector of the text keyed by model row: sublinear tf, each block (words,
        character n-grams) L2-normalized on its own; n-grams never seen in training count
        towards the norm only."""
        values: dict[int, float] = {}
        squares = [0.0, 0.0]
        blocks: dict[int, int] = {}
        idf, idf_scale = self.idf.values, self.idf.scale
        for bucket, count in feature_counts(text).items():
            row = self.rows.get(bucket)
            value = (1.0 + math.log(count)) * (self.unseen_idf if row is None else idf[row] * idf_scale)
            block = 1 if bucket >= CHAR_BLOCK else 0
            squares[block] += value * value
            if row is not None:
                values[row] = value
                blocks[row] = block
        norms = [math.sqrt(total) or 1.0 for total in squares]
        return {row: value / norms[blocks[row]] for row, value in values.items()}

    def probabilities(self, text: str) -> list[float]:
        classes = len(LABELS)
        sums = [0.0] * classes
        weights = self.weights.values
        for row, value in self.vector(text).items():
            base = row * classes
            for label in range(classes):
                sums[label] += value * weights[base + label]
        logits = [bias + total * self.weights.scale for bias, total in zip(self.bias, sums, strict=True)]
        top = max(logits)
        exps = [math.exp(logit - top) for logit in logits]
        total = sum(exps)
        return [value / total for value in exps]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LanguageModel:
        buckets = array("I", accumulate(_unpack("I", data["bucket_deltas"])))
        idf = Quantized(_unpack("H", data["idf"]), data["idf_scale"])
        weights = Quantized(_unpack("h", data["weights"]), data["weight_scale"])
        return cls(data["bias"], buckets, idf, weights, data["unseen_idf"])


class SentimentModel:
    def __init__(self, models: dict[str, LanguageModel], fallback: str) -> None:
        self.models = models
        self.fallback = fallback

    def predict(self, text: str, language: str | None) -> Sentiment:
        name = language if language in self.models else self.fallback
        probabilities = self.models[name].probabilities(text)
        best = max(range(len(LABELS)), key=probabilities.__getitem__)
        score = probabilities[LABELS.index("positive")] - probabilities[LABELS.index("negative")]
        return Sentiment(label=LABELS[best], score=round(score, 4), model=name)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> SentimentModel:
        with gzip.open(path, "rt", encoding="utf-8") as file:
            data = json.load(file)
        if data.get("format") != FORMAT or tuple(data["labels"]) != LABELS or data["dimensions"] != DIMENSIONS:
            raise ValueError(f"{path.name} was written for another feature layout: retrain it (tools/train_sentiment.py)")
        models = {name: LanguageModel.from_json(model) for name, model in data["models"].items()}
        return cls(models, data["fallback"])


def pack(typecode: str, values: Any) -> str:
    """Little-endian array as base64: compact in JSON, read back with one C call."""
    packed = array(typecode, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _unpack(typecode: str, text: str) -> array:
    values = array(typecode)
    values.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":
        values.byteswap()
    return values


_lock = threading.Lock()
_model: SentimentModel | None = None


def _shipped_model() -> SentimentModel:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = SentimentModel.load()
    return _model


def sentiment(text: str, language: str | None = None) -> Sentiment:
    """Negative, neutral or positive, with the negative-positive confidence as ``score``.

    ``language`` (ISO 639-1) picks the model; when None it is detected. Texts in other
    languages, and texts with nothing to go on, get the fallback model.
    """
    if language is None:
        from chalicelib.triage.language import detect_language

        language = detect_language(text)
    return _shipped_model().predict(text, language)
