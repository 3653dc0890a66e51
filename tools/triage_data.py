"""The labelled customer tweets of ``../shared/triage/`` and their fixed train/test split.

Read in place, never copied into the repository. The split is by a hash of the text as the
detectors see it (normalized, case-folded), so it never changes with file order, row count
or Python version, and the retweets and copy-paste complaints that differ only in their
@handles or links (about 1,400 rows) all land on the same side: a row is in the test split
when ``sha256(text) mod 100 < TEST_PERCENT``. Training reads only ``train`` rows (and
cross-validates on them by the same bucket); the evaluation reads only ``test`` rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chalicelib.triage.text import normalize

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "triage"
FILES = {"en": "airline_en.jsonl", "es": "airline_es.jsonl"}
TEST_PERCENT = 20


@dataclass(frozen=True)
class LabelledText:
    id: str
    text: str
    language: str  # the file it came from: "en" or "es"
    label: str  # "negative" | "neutral" | "positive"

    @property
    def bucket(self) -> int:
        key = normalize(self.text).casefold().encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100

    @property
    def split(self) -> str:
        return "test" if self.bucket < TEST_PERCENT else "train"


def load(split: str, data_dir: Path = DEFAULT_DATA_DIR, languages: tuple[str, ...] = ("en", "es")) -> list[LabelledText]:
    """Every row of ``split`` ("train" or "test") of the given languages, in file order."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, not {split!r}")
    return [row for language in languages for row in _read(data_dir / FILES[language], language) if row.split == split]


def _read(path: Path, language: str) -> Iterator[LabelledText]:
    if not path.exists():
        raise SystemExit(f"{path} not found: the labelled tweets live in ../shared/triage/ (see its README)")
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            yield LabelledText(id=row["id"], text=row["text"], language=language, label=row["label"])
