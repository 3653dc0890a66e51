"""Triage signals of one message, in English and Spanish: language, sentiment, reach,
visibility and keyword hits (the real offline detectors, the real keyword lists of the
shipped rules file)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.channels.x.webhook import normalize_delivery
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.triage.keywords import KeywordLists, fold
from chalicelib.triage.rules import load_rules
from chalicelib.triage.signals import SignalReader, Signals, reach_words
from tests.support.events import load_event

SHIPPED_KEYWORDS = KeywordLists(load_rules().keywords)


def message(
    text: str, *, kind: Kind = Kind.COMMENT, followers: int | None = None, platform: Platform = Platform.INSTAGRAM
) -> SocialMessage:
    return SocialMessage(
        platform=platform,
        kind=kind,
        direction=Direction.INBOUND,
        message_id="m1",
        conversation_key=f"{platform.value}:thread:acct:p1",
        account_id="acct",
        author=Author(platform_id="u1", handle="customer", follower_count=followers),
        text=text,
        created_at=datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc),
    )


@pytest.fixture(scope="module")
def reader() -> SignalReader:
    return SignalReader(SHIPPED_KEYWORDS)


# --- language ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("@AcmeAir my suitcase never arrived and nobody answers the phone", "en"),
        ("@AcmeAir mi maleta nunca llegó y nadie contesta el teléfono", "es"),
        ("😡😡😡", None),  # nothing to go on
    ],
)
def test_language_of_english_and_spanish_messages(reader: SignalReader, text: str, language: str | None) -> None:
    assert reader.read(message(text)).language == language


# --- sentiment --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("This is a disgrace, you lost my bag and nobody helps. Worst airline ever", "negative"),
        ("Thank you so much, the crew was lovely and the flight was great!", "positive"),
        ("Es una vergüenza, perdieron mi maleta y nadie me ayuda. Pésimo servicio", "negative"),
        ("Muchas gracias, la tripulación fue encantadora, ¡excelente vuelo!", "positive"),
    ],
)
def test_sentiment_in_english_and_spanish(reader: SignalReader, text: str, label: str) -> None:
    found = reader.read(message(text))
    assert found.sentiment == label
    assert (found.sentiment_score < 0) if label == "negative" else (found.sentiment_score > 0)


def test_a_message_without_text_is_neutral_and_has_no_language(reader: SignalReader) -> None:
    found = reader.read(message(""))
    assert (found.language, found.sentiment, found.sentiment_score) == (None, "neutral", 0.0)


# --- reach ------------------------------------------------------------------------------------


def test_reach_is_the_followers_x_sends_with_the_mention(reader: SignalReader) -> None:
    mention = normalize_delivery(load_event("x_mention")).messages[0]
    assert reader.read(mention).reach == 15200


@pytest.mark.parametrize("text", ["My order never came", "Mi pedido nunca llegó"])
def test_reach_falls_back_to_the_lookup_and_is_unknown_without_one(text: str) -> None:
    looked_up: list[str] = []

    def lookup(found: SocialMessage) -> int | None:
        looked_up.append(found.author.platform_id)
        return 830

    with_lookup = SignalReader(SHIPPED_KEYWORDS, reach=lookup)
    assert with_lookup.read(message(text)).reach == 830
    assert with_lookup.read(message(text, followers=12)).reach == 12  # the payload's own figure wins, no lookup
    assert looked_up == ["u1"]
    assert SignalReader(SHIPPED_KEYWORDS).read(message(text)).reach is None


@pytest.mark.parametrize(
    ("reach", "words"),
    [
        (None, "reach unknown"),
        (1, "1 follower"),
        (850, "850 followers"),
        (12_400, "12.4k followers"),
        (2_000_000, "2M followers"),
    ],
)
def test_reach_in_words(reach: int | None, words: str) -> None:
    assert reach_words(reach) == words


# --- visibility -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "visibility"),
    [
        ("Where is my refund?", Kind.DIRECT_MESSAGE, "private"),
        ("¿Dónde está mi reembolso?", Kind.DIRECT_MESSAGE, "private"),
        ("Where is my refund?", Kind.COMMENT, "public"),
        ("¿Dónde está mi reembolso?", Kind.REVIEW, "public"),
    ],
)
def test_visibility_follows_the_kind_of_message(reader: SignalReader, text: str, kind: Kind, visibility: str) -> None:
    assert reader.read(message(text, kind=kind)).visibility == visibility


# --- keywords ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hits"),
    [
        ("I'm calling my LAWYER about this", ("legal",)),
        ("Voy a hablar con mi ABOGÁDO", ("legal",)),  # accents and case do not matter
        ("Os denunciaré ante consumo", ("legal",)),  # denunci*: any word starting so
        ("This is a SCAM", ("fraud",)),
        ("I will take legal\n  action", ("legal",)),  # several words, any spacing
        ("Me han cobrado dos veces, es una estafa", ("fraud",)),
        ("The charger caught fire and burned my hand", ("safety",)),
        ("El cargador se incendió... ¡hubo humo!", ("safety",)),
        ("I want a refund and to cancel my plan, or I sue", ("legal", "cancel")),  # in the file's order
        ("Quiero darme de baja y el reembolso", ("cancel",)),
        ("There's an issue with my tissue order", ()),  # "sue" only as a word of its own
        ("Necesito ayuda con mi pedido", ()),
    ],
)
def test_keyword_lists_match_words_in_english_and_spanish(reader: SignalReader, text: str, hits: tuple[str, ...]) -> None:
    assert reader.read(message(text)).keywords == hits


def test_fold_removes_accents_and_case() -> None:
    assert fold("ÁRBOL Cañón Pingüino") == "arbol canon pinguino"


def test_a_keyword_list_of_the_rules_file_is_used_as_written() -> None:
    lists = KeywordLists({"vip": ["gold member", "socio oro"], "empty": ["  ", "*"]})
    assert lists.names == ("vip",)  # a list with no real term matches nothing, and is left out
    assert lists.hits("Soy SOCIO ORO desde 2010") == ("vip",)


# --- what agents see, what is stored ----------------------------------------------------------


def test_summary_line_for_agents() -> None:
    signals = Signals(
        language="es", sentiment="negative", sentiment_score=-0.8234, reach=12_400, visibility="public", keywords=("legal",)
    )
    assert signals.summary() == "Triage: Spanish · negative (\u22120.82) · 12.4k followers · public · keywords: legal"
    english = Signals(language="en", sentiment="positive", sentiment_score=0.5, reach=None, visibility="private")
    assert english.summary() == "Triage: English · positive (+0.50) · reach unknown · private"


def test_signals_survive_the_store_round_trip() -> None:
    signals = Signals(
        language=None, sentiment="neutral", sentiment_score=0.01234, reach=7, visibility="private", keywords=("cancel",)
    )
    restored = Signals.from_state(signals.as_state())
    assert restored == Signals(
        language=None, sentiment="neutral", sentiment_score=0.012, reach=7, visibility="private", keywords=("cancel",)
    )
