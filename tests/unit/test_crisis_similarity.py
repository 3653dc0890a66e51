"""Complaint similarity: what is compared, and which texts count as alike."""

from __future__ import annotations

import itertools

from chalicelib.crisis.similarity import Centroid, compatible, cosine, features, language, stems

OUTAGE_EN = [
    "@Brand your app keeps crashing when I try to check in",
    "App crashed AGAIN, can't check in for my flight 🙄 https://t.co/x1",
    "is the app down? check in fails every time",
    "cannot check in, the app just crashes",
]
OUTAGE_ES = [
    "@Marca la app no funciona y no puedo hacer el check-in",
    "¿La aplicación está caída? No puedo hacer el check in",
    "no puedo hacer el check in, la app se cierra sola",
]
UNRELATED = [
    "my bag never arrived in Denver, third day without clothes",
    "the flight attendant was rude to my mother",
    "el asiento estaba roto y nadie hizo nada",
    "refund for my cancelled hotel still missing after 6 weeks",
]


def test_text_is_normalized_handles_links_numbers_accents_and_stop_words_dropped() -> None:
    # "vuelo" counts as its English synonym's stem ("flight"): see the synonym test below
    assert stems("@AcmeAir Canceláción del vuelo 1234 https://t.co/abc!!! 😡 #fail") == ["cancel", "flight"]
    # codes say nothing about the topic: "SAVE50" and "E42" must not tie two complaints by "save" or "e"
    assert stems("promo code SAVE50 rejected, error E42") == ["promot", "code", "reject", "error"]
    assert stems("the app doesn't work, failed again, fix it") == stems("the app") == ["app"]
    assert stems("Please help, my flight was CANCELLED") == stems("flight cancelled")
    assert features("") == frozenset()


def test_inflections_and_spellings_of_one_word_meet() -> None:
    assert len({*stems("cancelled canceled cancelling cancellation")}) == 1
    assert len({*stems("cobrado cobraron cobro")}) == 1


def test_synonyms_a_crowd_uses_for_one_thing_meet() -> None:
    # the words differ, the thing does not: one stem each
    assert len({*stems("internet wifi broadband fibra conexión")}) == 1
    assert len({*stems("discount promo promotion voucher coupon descuento cupón")}) == 1
    assert len({*stems("charged cobro cobrado")}) == 1
    assert len({*stems("duplicate twice double duplicado doble repetido")}) == 1
    # "mobile data and home wifi both dead" shares no word with "internet down", but two things
    dead, down = features("mobile data and home wifi both dead"), features("internet down again")
    assert cosine(dead, down) > 0.5
    # an ambiguous word stays itself: "carga" is "loads" as often as "charge" ("la app no carga")
    assert stems("la app no carga") == ["app", "carg"] and "carg" not in stems("cobro duplicado")
    # ...and unrelated complaints that share one of these things are still not alike
    assert cosine(features("the wifi extender you sent has a UK plug"), down) == 0.0


def test_english_paraphrases_are_alike_and_unrelated_complaints_are_not() -> None:
    group = Centroid.of(features(text) for text in OUTAGE_EN)
    assert all(group.similarity(features(text)) >= 0.5 for text in OUTAGE_EN)
    assert all(group.similarity(features(text)) < 0.2 for text in UNRELATED)


def test_spanish_paraphrases_are_alike_and_unrelated_complaints_are_not() -> None:
    group = Centroid.of(features(text) for text in OUTAGE_ES)
    assert all(group.similarity(features(text)) >= 0.5 for text in OUTAGE_ES)
    assert all(group.similarity(features(text)) < 0.2 for text in UNRELATED)


def test_pairwise_cosine_is_higher_within_a_topic_than_across() -> None:
    within = [cosine(features(a), features(b)) for a, b in itertools.combinations(OUTAGE_EN, 2)]
    across = [cosine(features(a), features(b)) for a in OUTAGE_EN for b in UNRELATED]
    assert min(within) > max(across)


def test_language_tells_english_from_spanish_and_admits_when_it_cannot() -> None:
    assert {language(text) for text in OUTAGE_EN} == {"en"}
    assert {language(text) for text in OUTAGE_ES} == {"es"}
    assert language("app down!!") == ""
    assert compatible("en", "en") and compatible("", "es") and not compatible("en", "es")


def test_centroid_keeps_the_most_used_stems_and_overlaps_like_groups() -> None:
    group = Centroid.of(features(text) for text in OUTAGE_EN)
    assert group.top(2) == ["check", "app"] or group.top(2) == ["app", "check"]
    other = Centroid.of(features(text) for text in OUTAGE_EN[:2])
    assert group.overlap(other) > 0.7
    assert group.overlap(Centroid.of(features(text) for text in UNRELATED)) < 0.1
    assert len(Centroid.of([frozenset({f"w{i}"}) for i in range(100)], terms=40).weights) == 40


def test_a_complaint_without_function_words_still_has_its_language() -> None:
    # Its words alone ("red" is Spanish for network) tied it to a Spanish outage crisis.
    assert language("internet keeps dropping every few minutes, router lights red") == "en"
    assert language("sin conexión desde esta mañana, el router marca error") == "es"


def test_one_word_in_common_is_not_a_topic() -> None:
    where, pay = features("Where is my order? It was due on Monday"), features("Can I pay for my order in instalments?")
    assert where & pay == {"order"} and cosine(where, pay) == 0
    outage = Centroid.of(
        features(text)
        for text in (
            "llevo 3 horas sin internet, ¿hay una avería?",
            "todo el barrio sin internet desde anoche",
            "avería en la fibra, sin internet todo el día",
        )
    )
    assert outage.similarity(features("doble cargo de la factura de internet, ¿quién me lo devuelve?")) == 0
    assert outage.similarity(features("sin internet en el barrio, otra avería")) >= 0.5
