"""The normalizer both detectors read through: handles and links out, words kept."""

from __future__ import annotations

from chalicelib.triage.text import normalize


def test_handles_and_urls_are_stripped() -> None:
    text = "@AcmeAir @jane.doe_99 my bag is lost https://t.co/AbC123 see www.acme.example/help?x=1."
    assert normalize(text) == "my bag is lost see ."


def test_email_addresses_and_prices_are_not_handles() -> None:
    assert normalize("write to help@acme.example about the 30 € fee") == "write to help@acme.example about the 30 € fee"


def test_whitespace_collapses_and_entities_decode() -> None:
    assert normalize("  Tom &amp; Jerry\n\n\tflew   today ") == "Tom & Jerry flew today"


def test_nothing_left_is_an_empty_string() -> None:
    assert normalize("@AcmeAir https://t.co/x") == ""
    assert normalize("") == ""
