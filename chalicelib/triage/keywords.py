"""Keyword lists (legal, safety, fraud, cancel...) matched in customers' messages.

Lists come from the triage rules file (``chalicelib/rules/triage.json``, ``keywords``). Matching is
accent- and case-insensitive and on word boundaries: "Abogado", "abogado" and "ABOGADÓ"
match ``abogado``; "sue" matches "I will sue" but not "issue". A term ending in ``*``
matches any word starting with it (``denunci*``: denuncia, denunciaré); a term of several
words matches them with any whitespace between.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence


def fold(text: str) -> str:
    """Text without accents (é → e, ñ → n, ü → u) and case-folded, for matching."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _term_pattern(term: str) -> str:
    stem = term.endswith("*")
    words = fold(term.rstrip("*")).split()
    body = r"\s+".join(re.escape(word) for word in words)
    return body + (r"\w*" if stem else "")


class KeywordLists:
    """Named keyword lists, compiled once; ``hits(text)`` names the lists a text matches."""

    def __init__(self, lists: Mapping[str, Sequence[str]]) -> None:
        self._patterns: dict[str, re.Pattern[str]] = {}
        for name, terms in lists.items():
            alternatives = [_term_pattern(term) for term in terms if term.strip(" *")]
            if alternatives:
                # (?<!\w) / (?!\w): word boundaries that also hold next to accents already folded away.
                self._patterns[name] = re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")

    @property
    def names(self) -> tuple[str, ...]:
        """The lists, in the order the rules file gives them."""
        return tuple(self._patterns)

    def hits(self, text: str) -> tuple[str, ...]:
        """The names of the lists with a term in ``text``, in the file's order."""
        folded = fold(text)
        return tuple(name for name, pattern in self._patterns.items() if pattern.search(folded))
