"""The training script's export read back by the runtime gives what scikit-learn computed.

Trained here on a few sentences written for the test, so it needs no shared data.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from chalicelib.triage.features import DIMENSIONS
from chalicelib.triage.sentiment import FORMAT, LABELS, LanguageModel, SentimentModel
from tools.train_sentiment import export, fit
from tools.triage_data import LabelledText

SENTENCES = {
    "negative": ["awful delay again", "lost my bag, terrible", "rude staff and a late flight", "never again, awful"],
    "neutral": ["what time is boarding", "is there wifi on board", "where is gate 12", "how heavy can my bag be"],
    "positive": ["great crew, thanks", "lovely flight, thank you", "best seats ever", "thanks for the upgrade, great"],
}


ROWS = [
    LabelledText(id=f"t{label}{index}", text=text, language="en", label=label)
    for label, texts in SENTENCES.items()
    for index, text in enumerate(texts)
]
PROBES = ["awful bag delay", "thanks, great crew", "where is boarding", "something never seen before"]


@pytest.fixture(scope="module", params=[None, 3.0], ids=["one model", "block ensemble"])
def trained(request: pytest.FixtureRequest) -> tuple[object, object, list[str]]:
    vectorizer, classifier = fit(ROWS, "en", c=10.0, english_weight=0.0, ensemble=request.param)
    return vectorizer, classifier, PROBES


def test_runtime_probabilities_match_scikit_learn(trained: tuple) -> None:
    vectorizer, classifier, probes = trained
    runtime = LanguageModel.from_json(json.loads(json.dumps(export(vectorizer, classifier))))
    expected = classifier.predict_proba(vectorizer.matrix(probes))
    got = np.array([runtime.probabilities(text) for text in probes])
    # 16-bit weights and idf: agreement to a few thousandths, and the same answers.
    assert np.abs(got - expected).max() < 5e-3
    assert [LABELS[i] for i in got.argmax(axis=1)] == ["negative", "positive", "neutral", LABELS[expected[3].argmax()]]


def test_a_written_model_file_loads(tmp_path, trained: tuple) -> None:
    vectorizer, classifier, _ = trained
    document = {
        "format": FORMAT,
        "labels": list(LABELS),
        "dimensions": DIMENSIONS,
        "fallback": "en",
        "models": {"en": export(vectorizer, classifier)},
    }
    path = tmp_path / "model.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        json.dump(document, file)
    model = SentimentModel.load(path)
    assert model.predict("thanks, great crew", "fr").label == "positive"
    assert model.predict("thanks, great crew", "fr").model == "en"


def test_near_duplicates_take_their_majority_label_and_count_less() -> None:
    from tools.train_sentiment import merged_labels

    share = "Mi destino a un solo click, deseadme suerte"
    rows = [
        LabelledText(id="a", text=f"{share} #HolaLima https://t.co/a", language="es", label="neutral"),
        LabelledText(id="b", text=f"@Friend {share} #HolaQuito", language="es", label="neutral"),
        LabelledText(id="c", text=f"{share} 79 #HolaParis", language="es", label="positive"),
        LabelledText(id="d", text=f"{share}!", language="es", label="neutral"),
        LabelledText(id="e", text="El vuelo sale a las 10", language="es", label="neutral"),
        LabelledText(id="f", text="El vuelo sale a las 12", language="es", label="negative"),  # a tie: kept
        LabelledText(id="g", text="Pésimo servicio, nunca más", language="es", label="negative"),
    ]
    labels, weights = merged_labels(rows)
    assert labels == ["neutral", "neutral", "neutral", "neutral", "neutral", "negative", "negative"]
    # Four copies weigh 1/2 each, a pair 1/sqrt(2) each, a single text 1; scaled to average 1.
    assert sum(weights) == pytest.approx(len(rows))
    assert weights[0] == pytest.approx(weights[3]) and weights[4] == pytest.approx(weights[5])
    assert weights[0] / weights[6] == pytest.approx(0.5)
    assert weights[4] / weights[6] == pytest.approx(2**-0.5)


def test_other_fold_assignments_partition_the_same_training_buckets_differently() -> None:
    from collections import Counter

    from tools.train_sentiment import FOLDS, fold_of
    from tools.triage_data import TEST_PERCENT

    training_buckets = range(TEST_PERCENT, 100)
    # Assignment 0 is the one the shipped settings were chosen by.
    assert [fold_of(bucket) for bucket in training_buckets] == [bucket % FOLDS for bucket in training_buckets]
    for assignment in (1, 2, 3):
        folds = [fold_of(bucket, assignment) for bucket in training_buckets]
        # Every fold gets the same number of buckets, so each holds about a fifth of the rows,
        # and a bucket (with every near-copy of a text in it) stays in one fold.
        assert Counter(folds) == dict.fromkeys(range(FOLDS), len(training_buckets) // FOLDS)
        assert folds != [bucket % FOLDS for bucket in training_buckets]
    assert [fold_of(b, 1) for b in training_buckets] != [fold_of(b, 2) for b in training_buckets]


def test_the_block_ensemble_answers_as_its_three_models_together() -> None:
    """One linear model in the file, yet the label of three: all features, words (at its own C), character n-grams."""
    from sklearn.linear_model import LogisticRegression

    from chalicelib.triage.features import CHAR_BLOCK

    vectorizer, ensemble = fit(ROWS, "en", c=10.0, english_weight=0.0, ensemble=3.0)
    training = vectorizer.matrix([row.text for row in ROWS]).tocsc()
    labels = np.array([LABELS.index(row.label) for row in ROWS])
    probes = [*PROBES, "great delay", "thanks for nothing", "lost my seat, thanks", "where is my great bag"]
    matrix = vectorizer.matrix(probes).tocsc()
    words = np.array(vectorizer.buckets) < CHAR_BLOCK
    summed = np.zeros((len(probes), len(LABELS)))
    for columns, c in ((np.ones_like(words), 10.0), (words, 3.0), (~words, 10.0)):
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(training[:, columns], labels)
        summed += model.predict_log_proba(matrix[:, columns])
    assert ensemble.predict(matrix.tocsr()).tolist() == summed.argmax(axis=1).tolist()
    # It is not the full model alone: the word and character models move its probabilities.
    full = LogisticRegression(C=10.0, class_weight="balanced", max_iter=5000).fit(training, labels)
    assert np.abs(ensemble.predict_proba(matrix.tocsr()) - full.predict_proba(matrix)).max() > 0.01
