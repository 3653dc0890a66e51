"""The sentiment model's tweet-aware features, on sentences written for these tests."""

from __future__ import annotations

from chalicelib.triage.features import feature_counts, feature_names


def word_features(text: str) -> list[str]:
    return feature_names(text)[0]


def test_the_words_after_a_negation_are_marked_up_to_the_next_punctuation_mark() -> None:
    assert {"n:funciona", "n:desde"} <= set(word_features("La app no funciona desde ayer"))
    assert "n:ayer" not in word_features("La app no funciona desde ayer")  # two words, not the rest of the text
    assert not [name for name in word_features("No, funciona perfectamente") if name.startswith("n:")]
    assert "n:help" in word_features("you didn't help at all")
    # Without the negation the same words are plain words only.
    assert not [name for name in word_features("La app funciona bien") if name.startswith("n:")]


def test_emoji_and_emoticons_of_one_mood_share_a_feature() -> None:
    assert word_features("vuelo 😍").count("e:pos") == 1
    assert word_features("vuelo 🥳").count("e:pos") == 1
    assert word_features("vuelo 😡 😭").count("e:neg") == 2
    assert "e:neg" in word_features("otra vez tarde :(")
    assert "e:pos" in word_features("gracias :)")
    assert not [name for name in word_features("a las 10:30 en la puerta 5") if name.startswith("e:")]


def test_exclamations_questions_and_shouting_are_counted() -> None:
    shouted = word_features("NUNCA MAS!!! vaya servicio")
    assert {"p:!3", "p:caps2", "p:?0"} <= set(shouted)
    assert "p:?2" in word_features("¿Y mi maleta?")
    assert "p:...True" in word_features("esperando desde las 8...")


def test_handles_and_links_add_no_feature() -> None:
    assert feature_counts("@AcmeAir @crew_lead no funciona 😡 https://t.co/Xy12") == feature_counts("no funciona 😡")
