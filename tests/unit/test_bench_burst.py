"""The crisis burst the benchmark sends, and how it scores incident membership."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bench.burst import membership_scores
from bench.burst_workload import PLATFORMS, UNRELATED_ES, crisis_burst
from chalicelib.crisis.similarity import cosine, features


def test_the_burst_is_a_thousand_authors_on_every_platform_seventy_percent_in_four_clusters() -> None:
    burst = crisis_burst("12345", 1000)
    assert len(burst.deliveries) == len(burst.cluster_of) == 1000  # one complaint per author
    assert set(burst.platform_of.values()) == set(PLATFORMS)
    labels = Counter(burst.cluster_of.values())
    assert sum(count for label, count in labels.items() if label is not None) == 700 and len(labels) == 5
    assert {route for route, _ in burst.deliveries} == {"meta", "x", "telegram", "line"}


def test_paraphrases_vary_and_every_text_is_in_its_delivery() -> None:
    burst = crisis_burst("12345", 1000)
    clustered = [text for author, text in burst.text_of.items() if burst.cluster_of[author] is not None]
    assert len(set(clustered)) >= 0.9 * len(clustered)  # a crowd's wordings, not one sentence copied
    for (_, payload), text in zip(burst.deliveries, burst.text_of.values(), strict=True):
        assert json.dumps(text)[1:-1] in json.dumps(payload)


def test_unrelated_complaints_are_unrelated_no_sentence_sent_by_more_than_two_authors() -> None:
    burst = crisis_burst("12345", 1000)
    unrelated = [author for author, label in burst.cluster_of.items() if label is None]
    per_template = Counter(burst.template_of[author] for author in unrelated)
    assert len(unrelated) == 300 and max(per_template.values()) <= 2
    assert len(per_template) >= 140  # about as many topics as people, in both languages
    assert {burst.template_of[a] for a in unrelated} & set(UNRELATED_ES)
    # Nothing a crowd says in common: each unrelated complaint is alike (the detector's pair
    # measure) to a handful of the other 299 at most, where a crisis needs ten or more.
    stems = {author: features(burst.text_of[author]) for author in unrelated}
    alike = [sum(1 for b in unrelated if b != a and cosine(stems[a], stems[b]) >= 0.3) for a in unrelated]
    assert max(alike) < 10


def test_membership_scores_count_a_problem_as_the_cluster_most_of_its_incidents_are() -> None:
    truth: dict[str, str | None] = {
        **{f"a{n}": "outage" for n in range(10)},
        **{f"b{n}": "promo" for n in range(10)},
        **{f"u{n}": None for n in range(5)},
    }
    # Problem 1: eight outage complaints and one unrelated; problem 2: five promo ones; a third
    # problem made of unrelated complaints only.
    linked = {**{f"a{n}": "1" for n in range(8)}, "u0": "1", **{f"b{n}": "2" for n in range(5)}, "u1": "3", "u2": "3"}
    scores = membership_scores(linked, truth)
    assert scores["precision"] == pytest.approx(13 / 16)
    assert scores["recall"] == pytest.approx(13 / 20)
    assert scores["noise_problems"] == 1 and scores["problems"] == 3
    assert scores["per_cluster"]["outage"] == {"complaints": 10, "linked": 8, "problems": 1}


def test_a_cluster_split_over_two_problems_counts_both_and_nothing_linked_has_no_precision() -> None:
    truth: dict[str, str | None] = {f"a{n}": "outage" for n in range(4)}
    assert membership_scores({"a0": "1", "a1": "1", "a2": "2"}, truth)["recall"] == pytest.approx(3 / 4)
    nothing = membership_scores({}, truth)
    assert nothing["precision"] is None and nothing["recall"] == 0
