"""The features the sentiment model sees: one implementation for training and for inference.

Two blocks: word features, and character n-grams inside words (so "retrasado" and
"retrasadísimo", "delay" and "delayed" share evidence; customers misspell and drop
accents). The word block holds word unigrams and bigrams, and a few tweet-aware features:
the two words after a negation ("no", "nunca", "sin", "not", …) once more with a mark (so
"no funciona" and "funciona" differ beyond their bigram), one token per clearly positive or
negative emoji or emoticon (so a rare smiley counts like a common one), and how many "!",
"?" and shouted words the text has, and whether it trails off ("...").

Each feature is hashed with CRC-32 (stable across processes and Python versions, where
``hash()`` is salted; implemented in C by the standard library) into its block's half of
``DIMENSIONS`` buckets, so the model can weigh the blocks apart: a text has many more
character n-grams than words, and one norm over both would drown the words.
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
_SHOUTED = re.compile(r"[A-ZÁÉÍÓÚÑ]{3,}")  # three or more capitals in a row ("NUNCA", "WORST")

# Tokens (accent-folded, lower-case) whose next NEGATION_SCOPE tokens are marked as negated,
# up to the next punctuation mark.
NEGATORS = frozenset(
    "no nunca ni sin tampoco nadie nada jamas ningun ninguna ninguno "
    "not never nobody nothing without cannot can't don't didn't doesn't isn't wasn't won't couldn't haven't".split()
)
NEGATION_SCOPE = 2
_SCOPE_ENDS = frozenset(".,;:!?¿¡")
# Emoji and emoticons with a clear mood; others count as ordinary tokens only.
POSITIVE_EMOJI = frozenset("😀😁😂😃😄😅😆😉😊😋😍😎😘😗😙😚🙂🤗🤩👍👏🙌💪❤💙💚💛💜🧡♥💕💖💗💓💞😻✨🎉🎊🥳☺👌🙏🤣💯🔝⭐🌟😇")
NEGATIVE_EMOJI = frozenset("😠😡🤬😤😒😞😟😣😖😫😩😢😭😔😕🙁☹😰😱😨😧😦👎💩🤮🤢😑😐🙄😬🤦😪😓🤔😥")
_POSITIVE_EMOTICON = re.compile(r"(?:[:;=]-?[)dp]|\(\s?[:;=]|<3)")
_NEGATIVE_EMOTICON = re.compile(r"(?:[:;=]-?[(/\\|]|\)\s?[:=])")


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in folded if not unicodedata.combining(char))


def tokens(text: str) -> list[str]:
    """Lower-cased, accent-folded tokens of the normalized text."""
    return _TOKEN.findall(_REPEAT.sub(r"\1\1", _fold(normalize(text))))


def _negated(words: list[str]) -> list[str]:
    marked: list[str] = []
    left = 0
    for word in words:
        if word in _SCOPE_ENDS:
            left = 0
            continue
        if left:
            marked.append(f"n:{word}")
            left -= 1
        if word in NEGATORS:
            left = NEGATION_SCOPE
    return marked


def _tweet_features(text: str, words: list[str]) -> list[str]:
    """Mood tokens of emoji and emoticons, and punctuation and shouting counts (capped)."""
    features = [
        f"e:{'pos' if word in POSITIVE_EMOJI else 'neg'}" for word in words if word in POSITIVE_EMOJI or word in NEGATIVE_EMOJI
    ]
    lowered = text.lower()
    if _POSITIVE_EMOTICON.search(lowered):
        features.append("e:pos")
    if _NEGATIVE_EMOTICON.search(lowered):
        features.append("e:neg")
    features.append(f"p:!{min(text.count('!'), 3)}")
    features.append(f"p:?{min(text.count('?') + text.count('¿'), 3)}")
    features.append(f"p:...{'...' in text or '…' in text}")
    features.append(f"p:caps{min(len(_SHOUTED.findall(text)), 2)}")
    return features


def feature_names(text: str) -> tuple[list[str], list[str]]:
    """(word features, character n-gram features) of the text."""
    normalized = normalize(text)
    words = _TOKEN.findall(_REPEAT.sub(r"\1\1", _fold(normalized)))
    word_features = [f"w:{word}" for word in words] or ["empty"]
    word_features += _negated(words)
    word_features += [f"b:{a} {b}" for a, b in pairwise(words)]
    word_features += _tweet_features(normalized, words)
    char_features: list[str] = []
    for word in words:
        if len(word) > 2 and word.isalpha():
            padded = f" {word} "
            for size in CHAR_NGRAMS:
                char_features.extend(padded[start : start + size] for start in range(len(padded) - size + 1))
    return word_features, char_features


def feature_counts(text: str) -> dict[int, int]:
    """Bucket -> how many of the text's features fell in it (word block below CHAR_BLOCK)."""
    counts: dict[int, int] = {}
    word_features, char_features = feature_names(text)
    for offset, names in ((0, word_features), (CHAR_BLOCK, char_features)):
        for name in names:
            bucket = offset + zlib.crc32(name.encode()) % CHAR_BLOCK
            counts[bucket] = counts.get(bucket, 0) + 1
    return counts
