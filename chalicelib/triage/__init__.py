"""Triage signals on customers' messages: language and sentiment, offline.

    from chalicelib.triage import detect_language, sentiment
    detect_language("¿Dónde está mi maleta?")          # "es"
    sentiment("Thanks, the crew was lovely").label     # "positive"

Importing this package loads nothing heavy: the language model and the sentiment
weights are read on the first call and cached for the life of the process (the sync
path, never the webhook path). Measured accuracy, costs and the data behind the shipped
sentiment model: docs/triage.md.
"""

from __future__ import annotations

from chalicelib.triage.language import detect_language
from chalicelib.triage.sentiment import Sentiment, sentiment
from chalicelib.triage.text import normalize

__all__ = ["Sentiment", "detect_language", "normalize", "sentiment"]
