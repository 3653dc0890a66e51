"""``make eval``: the triage detectors on the test split of the labelled customer tweets.

Per language (the file a tweet comes from): how many texts, language accuracy (texts with
no word left once handles, links and emoji are stripped have no language to find and are
counted apart; "unsure" counts as wrong), sentiment accuracy, macro-F1 and per-class F1,
with the language the detector found passed to the sentiment model, as the sync does.
Then what the detectors cost: the time to load each model and per text. Exits 1 when a
target is missed. The split is tools/triage_data.py's: the training script never reads it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chalicelib.triage import detect_language, sentiment
from chalicelib.triage.language import has_words
from chalicelib.triage.sentiment import LABELS
from tools.triage_data import DEFAULT_DATA_DIR, load

LANGUAGE_ACCURACY_TARGET = 0.97
MACRO_F1_TARGETS = {"en": 0.70, "es": 0.60}


def f1_per_class(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    scores = {}
    for label in LABELS:
        true_positives = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        predicted_count = sum(p == label for p in predicted)
        actual_count = sum(t == label for t in truth)
        precision = true_positives / predicted_count if predicted_count else 0.0
        recall = true_positives / actual_count if actual_count else 0.0
        scores[label] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()

    started = time.perf_counter()
    detect_language("warm up the language model")
    language_load = time.perf_counter() - started
    started = time.perf_counter()
    sentiment("warm up the sentiment model", "en")
    sentiment_load = time.perf_counter() - started

    missed: list[str] = []
    language_times: list[float] = []
    sentiment_times: list[float] = []
    print(f"test split of {args.data_dir}")
    print(f"{'lang':<5}{'n':>6}{'no words':>10}{'lang acc':>10}{'sent acc':>10}{'macro-F1':>10}  F1 neg / neu / pos")
    for language, f1_target in MACRO_F1_TARGETS.items():
        rows = load("test", args.data_dir, (language,))
        found: list[str | None] = []
        labels: list[str] = []
        for row in rows:
            started = time.perf_counter()
            found.append(detect_language(row.text))
            language_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            labels.append(sentiment(row.text, found[-1]).label)
            sentiment_times.append(time.perf_counter() - started)
        wordy = [index for index, row in enumerate(rows) if has_words(row.text)]
        language_accuracy = sum(found[index] == language for index in wordy) / len(wordy)
        truth = [row.label for row in rows]
        accuracy = sum(t == p for t, p in zip(truth, labels, strict=True)) / len(rows)
        per_class = f1_per_class(truth, labels)
        macro_f1 = statistics.fmean(per_class.values())
        print(
            f"{language:<5}{len(rows):>6}{len(rows) - len(wordy):>10}{language_accuracy:>10.4f}{accuracy:>10.4f}"
            f"{macro_f1:>10.4f}  " + " / ".join(f"{per_class[label]:.3f}" for label in LABELS)
        )
        if language_accuracy < LANGUAGE_ACCURACY_TARGET:
            missed.append(f"{language} language accuracy {language_accuracy:.4f} < {LANGUAGE_ACCURACY_TARGET}")
        if macro_f1 < f1_target:
            missed.append(f"{language} sentiment macro-F1 {macro_f1:.4f} < {f1_target}")

    print(
        f"cost: load language model {language_load * 1000:.0f} ms, sentiment model {sentiment_load * 1000:.0f} ms;"
        f" per text (median) language {statistics.median(language_times) * 1000:.3f} ms,"
        f" sentiment {statistics.median(sentiment_times) * 1000:.3f} ms"
    )
    for miss in missed:
        print(f"TARGET MISSED: {miss}")
    if not missed:
        print(f"targets met: language accuracy >= {LANGUAGE_ACCURACY_TARGET}, macro-F1 en >= 0.70, es >= 0.60")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
