"""Sentiment on sentences written for these tests (no customer's words), and the shipped
model read by pure Python exactly as the training script meant it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from chalicelib.triage import Sentiment, sentiment
from chalicelib.triage.sentiment import LABELS, SentimentModel

# Five sentences per language and label, written for these tests.
CLEAR_CASES: dict[tuple[str, str], list[str]] = {
    ("en", "negative"): [
        "Worst airline ever. Three hours delayed, lost my bag and the staff were rude",
        "I am so angry, you cancelled my flight and nobody answers the phone",
        "Still waiting on hold after two hours, this is ridiculous",
        "My luggage is damaged and your agent hung up on me. Terrible service",
        "Never flying with you again, the seat was broken and the crew didn't care",
    ],
    ("en", "neutral"): [
        "What time does the check-in desk open for the morning flight to Boston?",
        "Can I bring a folding bike as checked luggage?",
        "Do you fly from Denver to Austin on Sundays?",
        "How do I add my frequent flyer number to an existing booking?",
        "Is there a direct flight to Chicago next week?",
    ],
    ("en", "positive"): [
        "Thank you so much, the crew was lovely and the flight was great!",
        "Love the new seats, best flight I have had in years. Thanks!",
        "Great job getting us home early, thanks to the whole team",
        "Amazing service at the gate today, thank you Maria!",
        "Thanks for the quick reply, you guys are awesome",
    ],
    ("es", "negative"): [
        "Pésimo servicio, el vuelo salió con tres horas de retraso y perdieron mi maleta",
        "Una vergüenza, me cancelaron el vuelo y nadie me da una solución",
        "Llevo dos horas esperando al teléfono, es indignante",
        "Me rompieron la maleta y nadie se hace responsable. Fatal",
        "Nunca más vuelo con vosotros, el peor servicio que he visto",
    ],
    ("es", "neutral"): [
        "¿A qué hora abre el mostrador de facturación en la terminal 4?",
        "¿Se puede llevar una bicicleta plegable como equipaje facturado?",
        "¿Hay vuelos directos de Madrid a Lima los domingos?",
        "¿Cómo añado mi número de socio a una reserva ya hecha?",
        "¿Cuántos kilos puede pesar la maleta de mano?",
    ],
    ("es", "positive"): [
        "Muchas gracias, la tripulación fue encantadora y el vuelo genial",
        "Me encanta volar con vosotros, todo perfecto. ¡Gracias!",
        "Gracias por la rápida respuesta, sois los mejores",
        "Un vuelo estupendo y muy puntual, enhorabuena al equipo",
        "Excelente atención en el aeropuerto, gracias por todo",
    ],
}


@pytest.mark.parametrize(("language", "label"), list(CLEAR_CASES))
def test_clear_cases(language: str, label: str) -> None:
    """Most of five clear cases right per language and label (a model at chance gets one or two).
    Not all: on real tweets the model is 75 % (en) and 58 % (es) macro-F1, and in the Spanish
    data a question is as often negative as neutral: asked when something went wrong (docs/triage.md)."""
    answers = [sentiment(text, language) for text in CLEAR_CASES[language, label]]
    assert all(answer.model == language for answer in answers)
    assert sum(answer.label == label for answer in answers) >= 3, [answer.label for answer in answers]


@pytest.mark.parametrize(("language", "label"), [key for key in CLEAR_CASES if key[1] != "neutral"])
def test_score_is_the_negative_positive_confidence(language: str, label: str) -> None:
    scores = [sentiment(text, language).score for text in CLEAR_CASES[language, label]]
    assert all(-1.0 <= score <= 1.0 for score in scores)
    assert all((score > 0) if label == "positive" else (score < 0) for score in scores), scores


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
