"""Sentiment on sentences written for these tests (no customer's words), and the shipped
model read by pure Python exactly as the training script meant it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from chalicelib.triage import Sentiment, sentiment
from chalicelib.triage.sentiment import LABELS, SentimentModel

CLEAR_CASES = [
    ("en", "negative", "Worst airline ever. Three hours delayed, lost my bag and the staff were rude"),
    ("en", "negative", "I am so angry, you cancelled my flight and nobody answers the phone"),
    ("en", "neutral", "What time does the check-in desk open for the morning flight to Boston?"),
    ("en", "neutral", "Can I bring a folding bike as checked luggage?"),
    ("en", "positive", "Thank you so much, the crew was lovely and the flight was great!"),
    ("en", "positive", "Love the new seats, best flight I have had in years. Thanks!"),
    ("es", "negative", "Pésimo servicio, el vuelo salió con tres horas de retraso y perdieron mi maleta"),
    ("es", "negative", "Una vergüenza, me cancelaron el vuelo y nadie me da una solución"),
    ("es", "neutral", "¿A qué hora abre el mostrador de facturación en la terminal 4?"),
    ("es", "neutral", "¿Se puede llevar una bicicleta plegable como equipaje facturado?"),
    ("es", "positive", "Muchas gracias, la tripulación fue encantadora y el vuelo genial"),
    ("es", "positive", "Me encanta volar con vosotros, todo perfecto. ¡Gracias!"),
]


@pytest.mark.parametrize(("language", "label", "text"), CLEAR_CASES)
def test_clear_cases(language: str, label: str, text: str) -> None:
    result = sentiment(text, language)
    assert result.label == label
    assert result.model == language


@pytest.mark.parametrize(("language", "label", "text"), [case for case in CLEAR_CASES if case[1] != "neutral"])
def test_score_is_the_negative_positive_confidence(language: str, label: str, text: str) -> None:
    score = sentiment(text, language).score
    assert -1.0 <= score <= 1.0
    assert (score > 0.3) if label == "positive" else (score < -0.3)


def test_language_is_detected_when_not_given() -> None:
    assert sentiment("Una vergüenza, me cancelaron el vuelo y nadie me da una solución").model == "es"
    assert sentiment("I am so angry, you cancelled my flight and nobody answers").model == "en"


def test_handles_and_links_do_not_change_the_answer() -> None:
    plain = sentiment("Thank you so much, the crew was lovely", "en")
    decorated = sentiment("@AcmeAir @crew_lead Thank you so much, the crew was lovely https://t.co/Xy12", "en")
    assert decorated == plain


@pytest.mark.parametrize("text", ["", "   ", "@AcmeAir https://t.co/x", "😀"])
def test_texts_with_little_or_nothing_do_not_crash(text: str) -> None:
    result = sentiment(text)
    assert isinstance(result, Sentiment)
    assert result.label in LABELS


def test_other_languages_get_the_fallback_model() -> None:
    result = sentiment("Der Flug war eine Katastrophe", "de")
    assert result.model == "en"
    assert result.label in LABELS


def test_a_model_file_for_another_feature_layout_is_refused(tmp_path: Path) -> None:
    from chalicelib.triage.sentiment import MODEL_PATH

    with gzip.open(MODEL_PATH, "rt", encoding="utf-8") as file:
        document = json.load(file)
    document["dimensions"] = 1 << 16
    stale = tmp_path / "stale.json.gz"
    with gzip.open(stale, "wt", encoding="utf-8") as file:
        json.dump(document, file)
    with pytest.raises(ValueError, match="retrain"):
        SentimentModel.load(stale)
