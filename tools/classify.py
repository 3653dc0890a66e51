"""``make classify``: the triage detectors on your own customers' texts.

Reads JSON lines ``{"id": ..., "text": ...}`` on standard input and writes one line
``{"id": ..., "language": "es" | null, "sentiment": "negative" | "neutral" | "positive"}``
per input line on standard output, in input order; nothing else goes to standard
output. A line that is not such an object is reported on standard error (by line
number, never its text) and skipped, and the exit status is then 1.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from chalicelib.triage import detect_language, sentiment


def classify(lines: TextIO, out: TextIO, err: TextIO) -> int:
    bad = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            text = item["text"]
            if not isinstance(text, str):
                raise TypeError("text is not a string")
        except (ValueError, KeyError, TypeError) as error:
            bad += 1
            print(f"line {number} skipped: not an object with a string text ({type(error).__name__})", file=err)
            continue
        language = detect_language(text)
        result = {"id": item.get("id"), "language": language, "sentiment": sentiment(text, language).label}
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        out.flush()  # a team piping texts in one at a time sees each answer at once
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(classify(sys.stdin, sys.stdout, sys.stderr))
