"""The triage signals of one inbound customer message: language, sentiment, reach,
visibility and keyword hits.

Computed on the sync path (``sync/tickets.py``), never on the webhook path: the language
and sentiment models load on first use. Stored on the conversation's state and shown on
the ticket (``Signals.summary()``: the internal note on the ticket's first message).

Reach is the author's followers as the platform sent them with the message (X: the user
object of the webhook or ``includes.users[].public_metrics`` of the API; Standard Webhooks
sources: ``author.followers``), else what ``reach`` (a lookup cached per author) finds, else
unknown (None). Which platforms give it: docs/triage.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.models import SocialMessage
from chalicelib.triage.keywords import KeywordLists

# Names for the note; any other language shows as its ISO code.
LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "pt": "Portuguese",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "ca": "Catalan",
    "nl": "Dutch",
}
PUBLIC, PRIVATE = "public", "private"


@dataclass(frozen=True)
class Signals:
    """What triage knows about one message."""

    language: str | None  # ISO 639-1, None when the detector is unsure or there are no words
    sentiment: str  # "negative" | "neutral" | "positive"
    sentiment_score: float  # P(positive) - P(negative), -1 ... +1
    reach: int | None  # the author's followers or subscribers; None when unknown
    visibility: str  # "public" | "private"
    keywords: tuple[str, ...] = ()  # the keyword lists the text matches

    def as_state(self) -> dict[str, Any]:
        """As stored (JSON-friendly, the score rounded to what anyone reads)."""
        return {
            "language": self.language,
            "sentiment": self.sentiment,
            "sentiment_score": round(self.sentiment_score, 3),
            "reach": self.reach,
            "visibility": self.visibility,
            "keywords": list(self.keywords),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Signals:
        """Read back what ``as_state`` stored."""
        reach = state.get("reach")
        return cls(
            language=state.get("language"),
            sentiment=str(state.get("sentiment") or "neutral"),
            sentiment_score=float(state.get("sentiment_score") or 0.0),
            reach=int(reach) if reach is not None else None,
            visibility=str(state.get("visibility") or PUBLIC),
            keywords=tuple(state.get("keywords") or ()),
        )

    def summary(self) -> str:
        """One line for agents: "Triage: Spanish · negative (−0.82) · 12.4k followers · public · keywords: legal"."""
        language = LANGUAGE_NAMES.get(self.language or "", self.language or "language unknown")
        score = f"{self.sentiment_score:+.2f}".replace("-", "\u2212")
        parts = [language, f"{self.sentiment} ({score})", reach_words(self.reach), self.visibility]
        if self.keywords:
            parts.append("keywords: " + ", ".join(self.keywords))
        return "Triage: " + " · ".join(parts)


def reach_words(reach: int | None) -> str:
    """850 followers, 12.4k followers, 1.2M followers, or "reach unknown"."""
    if reach is None:
        return "reach unknown"
    if reach < 1000:
        return f"{reach} follower" + ("" if reach == 1 else "s")
    if reach < 1_000_000:
        return f"{reach / 1000:.1f}".removesuffix(".0") + "k followers"
    return f"{reach / 1_000_000:.1f}".removesuffix(".0") + "M followers"


def visibility(message: SocialMessage) -> str:
    """Private for one-to-one chats (DMs); public for posts, comments, mentions and reviews."""
    return PRIVATE if message.is_private else PUBLIC


class SignalReader:
    """Reads a message's signals. The detectors and the reach lookup are passed in (tests
    give fakes); by default the offline models of ``chalicelib.triage``, loaded on first use."""

    def __init__(
        self,
        keywords: KeywordLists,
        *,
        detect_language: Callable[[str], str | None] | None = None,
        sentiment: Callable[[str, str | None], tuple[str, float]] | None = None,
        reach: Callable[[SocialMessage], int | None] | None = None,
    ) -> None:
        self.keywords = keywords
        self._detect_language = detect_language or _offline_language
        self._sentiment = sentiment or _offline_sentiment
        self._reach = reach

    def read(self, message: SocialMessage) -> Signals:
        """The message's signals (a message without text: no language, neutral)."""
        text = message.text or ""
        language = self._detect_language(text) if text.strip() else None
        label, score = self._sentiment(text, language) if text.strip() else ("neutral", 0.0)
        return Signals(
            language=language,
            sentiment=label,
            sentiment_score=score,
            reach=self._author_reach(message),
            visibility=visibility(message),
            keywords=self.keywords.hits(text),
        )

    def _author_reach(self, message: SocialMessage) -> int | None:
        if message.author.follower_count is not None:
            return message.author.follower_count
        return self._reach(message) if self._reach is not None else None


def _offline_language(text: str) -> str | None:
    from chalicelib.triage.language import detect_language

    return detect_language(text)


def _offline_sentiment(text: str, language: str | None) -> tuple[str, float]:
    from chalicelib.triage.sentiment import sentiment

    found = sentiment(text, language)
    return found.label, found.score
