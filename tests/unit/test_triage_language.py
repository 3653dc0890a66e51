"""Language detection on sentences written for these tests (no customer's words)."""

from __future__ import annotations

import pytest

from chalicelib.triage import detect_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("My suitcase never arrived and nobody at the desk could tell me where it is", "en"),
        ("thanks so much, the crew on my flight this morning were wonderful", "en"),
        ("Mi maleta no llegó y nadie en el mostrador sabe dónde está", "es"),
        ("muchas gracias, la tripulación fue muy amable durante todo el vuelo", "es"),
        ("¿A qué hora sale el vuelo de mañana a Bogotá?", "es"),
        ("Mon vol a été annulé sans aucune explication", "fr"),
        ("Der Flug hatte drei Stunden Verspätung und niemand hat uns informiert", "de"),
        ("O meu voo foi cancelado e ninguém me ajudou no aeroporto", "pt"),
        ("Il volo è stato cancellato e nessuno ci ha avvisato", "it"),
    ],
)
def test_detects_the_language_of_a_social_length_text(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_handles_and_links_do_not_sway_the_answer() -> None:
    text = (
        "@TheEnglishAirlineCompany @another_english_handle ¿Dónde está mi equipaje? https://example.com/where-is-my-bag-english"
    )
    assert detect_language(text) == "es"


def test_shouted_spanish_is_still_spanish() -> None:
    assert detect_language("POR FAVOR NECESITO AYUDA CON MI RESERVA YA") == "es"


@pytest.mark.parametrize("text", ["", "   ", "@AcmeAir", "https://t.co/abc", "😡😡😡", "!!! 123", "a"])
def test_nothing_to_go_on_is_none_not_a_crash(text: str) -> None:
    assert detect_language(text) is None


def test_a_lone_place_name_is_unsure() -> None:
    # The model has nothing on it and answers its prior (English at about 0.12): unsure, not "en".
    assert detect_language("Madrid!") is None
