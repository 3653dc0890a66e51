"""Triage rules: the file's validation (errors name the line), priority from the signals,
SLA tags and due dates, follow-the-sun routing (with an injected clock) and noise."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest

from chalicelib.models import Attachment, Author, Direction, Kind, Platform, SocialMessage
from chalicelib.triage.keywords import KeywordLists
from chalicelib.triage.rules import (
    DEFAULT_RULES_PATH,
    RULES_DIR,
    SCHEMA_PATH,
    RulesError,
    Triage,
    first_reply_targets,
    is_open,
    json_schema,
    load_rules,
    main,
    parse_rules,
)
from chalicelib.triage.signals import SignalReader, Signals

FOLLOW_THE_SUN = RULES_DIR / "examples" / "follow-the-sun.json"
ROOT = Path(__file__).resolve().parents[2]


def message(
    text: str,
    *,
    kind: Kind = Kind.COMMENT,
    platform: Platform = Platform.X,
    account: str = "brand",
    attachments: tuple[Attachment, ...] = (),
    created_at: datetime = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc),
) -> SocialMessage:
    return SocialMessage(
        platform=platform,
        kind=kind,
        direction=Direction.INBOUND,
        message_id="m1",
        conversation_key=f"{platform.value}:thread:{account}:t1",
        account_id=account,
        author=Author(platform_id="u1", handle="customer"),
        text=text,
        created_at=created_at,
        attachments=attachments,
    )


def signals(
    *,
    language: str | None = "en",
    sentiment: str = "neutral",
    score: float = 0.0,
    reach: int | None = None,
    visibility: str = "public",
    keywords: tuple[str, ...] = (),
) -> Signals:
    return Signals(
        language=language, sentiment=sentiment, sentiment_score=score, reach=reach, visibility=visibility, keywords=keywords
    )


def at(text: str) -> float:
    """An ISO time (UTC) as the epoch seconds the triage clock gives."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def triage(path: Path = FOLLOW_THE_SUN, now: str = "2026-12-03T12:00:00") -> Triage:
    return Triage(load_rules(path), clock=lambda: at(now))


# --- the file ------------------------------------------------------------------------------------


def test_the_shipped_files_are_valid_and_match_the_published_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema == json_schema(), "chalicelib/rules/triage.schema.json is stale: python -m chalicelib.triage.rules --schema"
    for path in (DEFAULT_RULES_PATH, FOLLOW_THE_SUN):
        load_rules(path)
        jsonschema.Draft202012Validator(schema).validate(json.loads(path.read_text(encoding="utf-8")))


def _shipped_with(change: str, replacement: str) -> str:
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    assert text.count(change) == 1
    return text.replace(change, replacement)


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("change", "replacement", "bad_line_has", "where", "says"),
    [
        (
            '"fraud"]}, "priority": "urgent"}',
            '"fraud"]}, "priority": "urgnt"}',
            '"urgnt"',
            "priority.rules[0].priority",
            "'urgent', 'high', 'normal' or 'low'",
        ),
        ('"x":         {"public": "1h"', '"x":         {"public": "1 hour"', '"1 hour"', "sla.first_reply.x.public", "pattern"),
        ('"x":         {', '"twitter":   {', '"twitter"', "sla.first_reply.twitter", "'twitter' is not a platform"),
        (
            '"keywords_any": ["cancel"]',
            '"keywords_any": ["cancellation"]',
            '"cancellation"',
            "priority.rules[3].when.keywords_any",
            "no keyword list is called 'cancellation'",
        ),
        (
            '"reach_at_least": 10000',
            '"reach_at_least": 10000, "followers": 3',
            '"followers": 3',
            "priority.rules[1].when.followers",
            "Extra inputs are not permitted",
        ),
        ('"max_links": 3', '"max_links": -1', '"max_links": -1', "noise.max_links", "greater than or equal to 0"),
        ('"cancel": [', '"Cancel Plan": [', '"Cancel Plan"', "keywords.Cancel Plan", "cannot name a list"),
    ],
)
def test_a_bad_rule_is_reported_with_its_line_and_place(
    change: str, replacement: str, bad_line_has: str, where: str, says: str
) -> None:
    text = _shipped_with(change, replacement)
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.json")
    error = caught.value
    assert error.line == _line_of(text, bad_line_has), str(error)
    assert error.where == where
    assert says in str(error)
    assert str(error).startswith(f"rules.json:{error.line}: {where}: ")
    # The published schema refuses what the loader refuses (the semantic checks aside).
    if not any(semantic in says for semantic in ("keyword list", "not a platform", "cannot name a list")):
        schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(json.loads(text)))


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ('{\n  "version": 1,\n  "priority": {"default": "low",},\n}', 3, "a key in double quotes was expected"),
        ('{\n  "version": 1,\n  "version": 1\n}', 3, "the key 'version' appears twice"),
        ('{\n  "version": 1\n}\n}', 4, "unexpected text after the end"),
        ('{\n  "version": 1\n', 3, "',' or '}' was expected"),
        ('{\n  "version":\n', 3, "the document ends"),
    ],
)
def test_broken_json_is_reported_with_its_line(text: str, line: int, says: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.json")
    assert caught.value.line == line
    assert says in str(caught.value)


def test_a_missing_part_points_at_the_object_that_lacks_it() -> None:
    text = '{\n  "version": 1,\n  "priority": {"rules": []},\n  "sla": {\n    "first_reply": {"default": {"public": "1h"}},\n    "resolution": {"public": "1d", "private": "3d"}\n  }\n}'
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.json")
    assert (caught.value.line, caught.value.where) == (5, "sla.first_reply.default.private")
    assert "Field required" in str(caught.value)


def test_a_language_the_detector_never_gives_is_refused() -> None:
    text = FOLLOW_THE_SUN.read_text(encoding="utf-8").replace('"languages": ["es"]', '"languages": ["esp"]')
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "ftw.json")
    assert (caught.value.line, caught.value.where) == (_line_of(text, '"esp"'), "routing.groups[0].languages[0]")


def test_an_unknown_time_zone_is_refused_at_its_line() -> None:
    text = FOLLOW_THE_SUN.read_text(encoding="utf-8").replace("America/New_York", "America/Gotham")
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "ftw.json")
    assert caught.value.line == _line_of(text, "America/Gotham")
    assert caught.value.where == "routing.groups[1].hours.timezone"


def test_the_rules_path_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    custom = tmp_path / "mine.json"
    custom.write_text(_shipped_with('"x":         {"public": "1h"', '"x":         {"public": "15m"'), encoding="utf-8")
    monkeypatch.setenv("TRIAGE_RULES_PATH", str(custom))
    assert first_reply_targets().target("x", private=False) == timedelta(minutes=15)
    monkeypatch.setenv("TRIAGE_RULES_PATH", str(tmp_path / "missing.json"))
    with pytest.raises(RulesError, match="missing.json: cannot be read"):
        Triage.from_env()


def test_check_rules_exits_1_and_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(_shipped_with('"default": "normal"', '"default": "medium"'), encoding="utf-8")
    assert main([str(DEFAULT_RULES_PATH), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert f"{DEFAULT_RULES_PATH}: ok" in out
    assert f"error: {bad}:{_line_of(bad.read_text(), 'medium')}: priority.default: " in err


def test_make_check_rules_runs_the_check() -> None:
    done = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "check-rules", f"PY={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "triage.json: ok" in done.stdout


# --- priority ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "priority"),
    [
        (signals(sentiment="negative", score=-0.4, reach=200_000), "urgent"),  # angry, public, large audience
        (signals(sentiment="negative", score=-0.4, reach=300), "high"),  # angry in public
        (signals(sentiment="negative", score=-0.4, reach=None), "high"),  # unknown reach is not "large"
        (signals(sentiment="negative", score=-0.4, reach=200_000, visibility="private"), "normal"),
        (signals(sentiment="negative", score=-0.9, visibility="private"), "high"),  # very negative anywhere
        (signals(keywords=("legal",), visibility="private"), "urgent"),
        (signals(language="es", keywords=("cancel",), visibility="private"), "high"),
        (signals(sentiment="positive", score=0.7), "low"),
        (signals(), "normal"),
    ],
)
def test_priority_is_the_highest_of_the_rules_that_match(found: Signals, priority: str) -> None:
    assert triage(DEFAULT_RULES_PATH).priority(message("text"), found)[0] == priority


# --- SLA -------------------------------------------------------------------------------------------


def test_sla_tag_and_due_dates_per_channel_and_visibility() -> None:
    rules = triage(DEFAULT_RULES_PATH, now="2026-12-03T12:10:00")
    public_x = rules.routing(message("where is my bag"), signals())
    assert "sla_first_reply_1h" in public_x.tags
    assert public_x.first_reply_due == datetime(2026, 12, 3, 13, 0, tzinfo=timezone.utc)  # from when the customer wrote
    assert public_x.due == datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
    dm = rules.routing(message("where is my bag", kind=Kind.DIRECT_MESSAGE), signals(visibility="private"))
    assert "sla_first_reply_4h" in dm.tags
    line = rules.routing(message("hola", platform=Platform.LINE), signals(language="es"))  # not listed: the default
    assert "sla_first_reply_4h" in line.tags and "lang_es" in line.tags
    # A message written long ago (a backfill) is never due in the past: a helpdesk refuses that.
    old = rules.routing(message("where?", created_at=datetime(2026, 11, 1, tzinfo=timezone.utc)), signals())
    assert old.first_reply_due == old.due == datetime(2026, 12, 3, 12, 10, tzinfo=timezone.utc)


def test_first_reply_targets_for_the_report() -> None:
    targets = first_reply_targets(DEFAULT_RULES_PATH)
    assert targets.target("x", private=False) == timedelta(hours=1)
    assert targets.target("x", private=True) == timedelta(hours=4)
    assert targets.target("telegram", private=True) == timedelta(hours=24)  # the default


# --- routing: follow the sun -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "group"),
    [
        ("2026-12-03T09:00:00", "Social care EMEA"),  # Thursday: London open (09:00), New York not yet (04:00)
        ("2026-12-03T14:00:00", "Social care Americas"),  # New York 09:00: first in the list that is open
        ("2026-12-04T02:00:00", "Social care APAC"),  # Friday 10:00 in Singapore, everyone else asleep
        ("2026-12-05T14:00:00", "Weekend on call"),  # Saturday: only the group without hours
    ],
)
def test_english_messages_follow_the_sun(now: str, group: str) -> None:
    decided = triage(now=now).group(
        message("my bag is lost"), signals(language="en"), datetime.fromisoformat(now).replace(tzinfo=timezone.utc)
    )
    assert decided is not None and decided.name == group


def test_spanish_goes_to_the_spanish_group_even_when_it_is_closed() -> None:
    rules = triage(now="2026-12-03T23:30:00")  # 00:30 in Madrid: closed, and no other group speaks Spanish
    routed = rules.routing(message("Perdieron mi maleta"), signals(language="es"))
    assert routed.group_id == "360000000101" and routed.brand_id == "360000000002"
    assert "group Soporte en español" in (routed.note or "")


def test_a_night_shift_spans_midnight() -> None:
    text = FOLLOW_THE_SUN.read_text(encoding="utf-8").replace(
        '"open": "08:00", "close": "22:00"', '"open": "22:00", "close": "06:00"'
    )
    rules = Triage(parse_rules(text), clock=lambda: 0.0)
    spanish = rules.rules.routing.groups[0]
    madrid = timezone(timedelta(hours=1))  # December: CET
    assert is_open(spanish.hours, datetime(2026, 12, 3, 23, 0, tzinfo=madrid))  # Thursday night
    assert is_open(spanish.hours, datetime(2026, 12, 4, 5, 59, tzinfo=madrid))  # Friday early morning, Thursday's shift
    assert not is_open(spanish.hours, datetime(2026, 12, 4, 6, 0, tzinfo=madrid))
    assert not is_open(spanish.hours, datetime(2026, 12, 7, 3, 0, tzinfo=madrid))  # Monday 03:00: Sunday had no shift


def test_routing_by_receiving_account() -> None:
    text = FOLLOW_THE_SUN.read_text(encoding="utf-8").replace(
        '{"name": "Soporte en español",',
        '{"name": "Outlet brand", "group_id": 7, "accounts": ["outlet"]},\n      {"name": "Soporte en español",',
    )
    rules = Triage(parse_rules(text), clock=lambda: at("2026-12-03T12:00:00"))
    assert rules.routing(message("hola", account="outlet"), signals(language="es")).group_id == "7"
    assert rules.routing(message("hola", account="brand"), signals(language="es")).group_id == "360000000101"


def test_no_group_matches_leaves_the_helpdesk_default() -> None:
    routed = triage(DEFAULT_RULES_PATH).routing(message("hello"), signals())
    assert routed.group_id is None and routed.brand_id is None and routed.priority == "normal"


# --- noise -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("@amigo1 @amiga2 👀", Kind.COMMENT, "tags only"),
        ("@friend #giveaway", Kind.COMMENT, "tags only"),
        ("😂😂🔥", Kind.COMMENT, "emoji only"),
        ("!!!", Kind.MENTION, "emoji only"),
        ("Sigueme y gana seguidores gratis", Kind.COMMENT, "spam-like"),
        ("win money easy http://a.example http://b.example", Kind.COMMENT, "spam-like"),
        ("see http://a.io http://b.io http://c.io http://d.io", Kind.COMMENT, "spam-like"),  # more links than max_links
        ("@amigo mira esto, mi pedido no llegó", Kind.COMMENT, None),
        ("@friend look, my order never came", Kind.COMMENT, None),
        ("😡", Kind.REVIEW, None),  # a review always says something (its stars)
        ("👍", Kind.DIRECT_MESSAGE, None),  # private chats only with private_too
        ("", Kind.COMMENT, None),
    ],
)
def test_noise_rules(text: str, kind: Kind, reason: str | None) -> None:
    assert triage(DEFAULT_RULES_PATH).noise(message(text, kind=kind)) == reason


def test_a_photo_with_only_an_emoji_is_not_noise() -> None:
    photo = (Attachment(type="image", url="https://cdn.example/p.jpg"),)
    assert triage(DEFAULT_RULES_PATH).noise(message("😡", attachments=photo)) is None


def test_noise_rules_can_be_turned_off_in_the_file() -> None:
    text = _shipped_with('"tag_only": true', '"tag_only": false')
    assert Triage(parse_rules(text)).noise(message("@amigo1 @amiga2")) is None


# --- the whole decision ---------------------------------------------------------------------------


def test_the_note_is_off_unless_the_file_turns_it_on() -> None:
    """The note costs a helpdesk request per ticket; the tags say the same for free."""
    routed = Triage(load_rules(DEFAULT_RULES_PATH)).routing(message("where is my bag"), signals())
    assert routed.note is None and routed.priority == "normal"
    text = _shipped_with('"version": 1,', '"version": 1,\n  "note": true,')
    assert (Triage(parse_rules(text)).routing(message("where is my bag"), signals()).note or "").startswith("Triage: ")


@pytest.mark.parametrize(
    ("reach", "tag"), [(None, None), (999, None), (1_000, "reach_1k"), (12_400, "reach_10k"), (182_000, "reach_100k"), (2_000_000, "reach_1m")]
)
def test_sentiment_and_reach_are_tags_agents_can_filter_on(reach: int | None, tag: str | None) -> None:
    routed = Triage(load_rules(DEFAULT_RULES_PATH)).routing(message("where is my bag"), signals(reach=reach))
    assert "sentiment_neutral" in routed.tags
    assert [t for t in routed.tags if t.startswith("reach_")] == ([tag] if tag else [])


def test_routing_carries_priority_tags_and_a_note_for_agents() -> None:
    found = signals(language="es", sentiment="negative", score=-0.82, reach=12_400, keywords=("legal",))
    reader = SignalReader(KeywordLists({}), detect_language=lambda _t: "es", sentiment=lambda _t, _l: ("negative", -0.82))
    rules = Triage(load_rules(FOLLOW_THE_SUN), reader=reader, clock=lambda: at("2026-12-03T10:00:00"))
    routed = rules.routing(message("Os voy a denunciar"), found)
    assert routed.priority == "urgent"
    assert routed.tags == ("sla_first_reply_1h", "priority_urgent", "lang_es", "sentiment_negative", "reach_10k", "kw_legal")
    assert routed.note == (
        "Triage: Spanish · negative (\u22120.82) · 12.4k followers · public · keywords: legal\n"
        "Priority urgent · group Soporte en español · first reply within 1h"
    )


def test_the_readme_worked_example() -> None:
    tweet = message("@acme_support Absolutely disgraceful. Six hours on hold, no rebooking, nobody answers. Worst airline ever.")
    tweet = tweet.model_copy(update={"author": Author(platform_id="u1", handle="travel_critic", follower_count=182_000)})
    rules = triage(now="2026-12-03T10:00:00")  # a Thursday
    routed = rules.routing(tweet, rules.signals(tweet))
    assert (routed.priority, routed.group_id) == ("urgent", "360000000202")
    assert routed.tags[:3] == ("sla_first_reply_1h", "priority_urgent", "lang_en")
    # (The score itself is the sentiment model's: retraining may move it, not the decision.)
    assert re.fullmatch(
        "Triage: English · negative \\(\u22120\\.\\d\\d\\) · 182k followers · public\n"
        "Priority urgent · group Social care EMEA · first reply within 1h",
        routed.note or "",
    )
