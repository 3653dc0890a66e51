"""Text normalization shared by the language and sentiment detectors.

Handles and links say nothing about a customer's language or mood, and a reply on X
starts with several of them: left in, they drown a short message.
"""

from __future__ import annotations

import html
import re

# A handle: @ not preceded by a word character (so e-mail addresses stay whole), then the
# characters X, Instagram and Telegram allow in user names (letters, digits, _ and .).
_HANDLE = re.compile(r"(?<![\w.@])@[\w.]*\w")
# A link with a scheme, or a bare www. one; trailing punctuation that closes a sentence stays.
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>\"]*[^\s<>\".,;:!?)\]'…]", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """The words a customer wrote: HTML entities decoded, @handles and URLs removed, whitespace collapsed."""
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    return _SPACE.sub(" ", text).strip()
