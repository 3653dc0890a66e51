"""The features the sentiment model sees: one implementation for training and for inference.

Two blocks: word unigrams and bigrams, and character n-grams inside words (so
"retrasado" and "retrasadísimo", "delay" and "delayed" share evidence; customers misspell
and drop accents). Each feature is hashed with CRC-32 (stable across processes and Python
versions, where ``hash()`` is salted; implemented in C by the standard library) into its
block's half of ``DIMENSIONS`` buckets, so the model can weigh the blocks apart: a text
has many more character n-grams than words, and one norm over both would drown the words.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from itertools import pairwise

from chalicelib.triage.text import normalize

DIMENSIONS = 1 << 20
CHAR_BLOCK = DIMENSIONS // 2  # buckets below it are word features, from it on character n-grams
CHAR_NGRAMS = (2, 3, 4, 5)
# Words, numbers, and any other single visible character (emoji and "!" carry mood).
_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?|\d+|[^\w\s]", re.UNICODE)
_REPEAT = re.compile(r"(.)\1{2,}")  # "sooooo" and "!!!!" say the same as "soo" and "!!"


def tokens(text: str) -> list[str]:
    """Lower-cased, accent-folded tokens of the normalized text."""
    folded = unicodedata.normalize("NFKD", normalize(text).casefold())
    folded = "".join(char for char in folded if not unicodedata.combining(char))
    return _TOKEN.findall(_REPEAT.sub(r"\1\1", folded))


def feature_names(text: str) -> tuple[list[str], list[str]]:
    """(word features, character n-gram features) of the text."""
    words = tokens(text)
    word_features = [f"w:{word}" for word in words] + [f"b:{a} {b}" for a, b in pairwise(words)]
    char_features: list[str] = []
    for word in words:
        if len(word) > 2 and word.isalpha():
            padded = f" {word} "
            for size in CHAR_NGRAMS:
                char_features.extend(padded[start : start + size] for start in range(len(padded) - size + 1))
    return word_features or ["empty"], char_features


def feature_counts(text: str) -> dict[int, int]:
    """Bucket -> how many of the text's features fell in it (word block below CHAR_BLOCK)."""
    counts: dict[int, int] = {}
    word_features, char_features = feature_names(text)
    for offset, names in ((0, word_features), (CHAR_BLOCK, char_features)):
        for name in names:
            bucket = offset + zlib.crc32(name.encode()) % CHAR_BLOCK
            counts[bucket] = counts.get(bucket, 0) + 1
    return counts
