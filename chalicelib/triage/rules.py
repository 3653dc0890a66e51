"""Triage rules, read from one versioned JSON file: priority from the signals, SLA targets
for the first reply, routing to a helpdesk group and brand (follow-the-sun), noise, and the
keyword lists.

The file is ``chalicelib/rules/triage.json`` unless ``TRIAGE_RULES_PATH`` names another;
its JSON Schema, ``chalicelib/rules/triage.schema.json``, is generated from the models below
(``python -m chalicelib.triage.rules --schema``). It is validated when the sync starts
(``load_rules``: a bad file fails the cold start with the file, line and reason) and by
``make check-rules``. What each part does, with a worked example: README "Triage rules".
"""

from __future__ import annotations

import bisect
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib.helpdesks.base import TicketRouting
from chalicelib.models import Kind, Platform, SocialMessage
from chalicelib.outbound.approval import ApprovalRules
from chalicelib.triage.keywords import KeywordLists, fold
from chalicelib.triage.signals import PRIVATE, SignalReader, Signals
from chalicelib.triage.text import normalize

# Inside chalicelib: ``chalice deploy`` packages it with the code.
RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
DEFAULT_RULES_PATH = RULES_DIR / "triage.json"
SCHEMA_PATH = RULES_DIR / "triage.schema.json"
PRIORITIES = ("low", "normal", "high", "urgent")  # in increasing order
Priority = Literal["urgent", "high", "normal", "low"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Duration = str  # "45m", "1h", "2d" (checked by DURATION_PATTERN)
DURATION_PATTERN = r"^[1-9][0-9]*[mhd]$"
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"
TAG_PATTERN = r"^[a-z0-9_\-]{1,80}$"  # what both Zendesk and Freshdesk take as one tag
# An ISO 639-1 code as the language detector gives it, or "unknown" for a message it could not place.
LanguageCode = Annotated[str, Field(pattern=r"^([a-z]{2}|unknown)$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """Every condition given must hold (an empty ``when`` always holds)."""

    visibility: Literal["public", "private"] | None = None
    channel: list[Platform] | None = Field(default=None, min_length=1, description="platforms, e.g. x, instagram")
    language: list[LanguageCode] | None = Field(default=None, min_length=1, description="ISO 639-1 codes; 'unknown' for none")
    sentiment: list[Literal["negative", "neutral", "positive"]] | None = Field(default=None, min_length=1)
    sentiment_below: float | None = Field(default=None, ge=-1, le=1, description="score P(pos)-P(neg) under this")
    reach_at_least: int | None = Field(default=None, ge=0, description="followers; unknown reach never matches")
    keywords_any: list[str] | None = Field(default=None, min_length=1, description="names of keyword lists")


class PriorityRule(_Strict):
    name: str = Field(min_length=1)
    when: Condition
    priority: Priority
    tags: list[str] = Field(default_factory=list, description="extra ticket tags when the rule matches")


class PriorityRules(_Strict):
    """A ticket gets the highest priority of the rules it matches, else ``default``."""

    default: Priority = "normal"
    rules: list[PriorityRule] = Field(default_factory=list)


class SlaTarget(_Strict):
    public: Duration = Field(pattern=DURATION_PATTERN)
    private: Duration = Field(pattern=DURATION_PATTERN)


class Sla(_Strict):
    """``first_reply`` per platform ("default" for the others); ``resolution`` for all."""

    first_reply: dict[str, SlaTarget]
    resolution: SlaTarget
    tag_prefix: str = Field(default="sla_first_reply_", pattern=r"^[a-z0-9_\-]{1,40}$")


class Hours(_Strict):
    """Open on ``days`` from ``open`` to ``close`` (local time in ``timezone``); a ``close``
    earlier than ``open`` is a night shift that ends the next morning."""

    timezone: str = Field(description="IANA name, e.g. Europe/Madrid")
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    open: str = Field(pattern=CLOCK_PATTERN)
    close: str = Field(pattern=CLOCK_PATTERN)


class Group(_Strict):
    """A helpdesk group that takes the messages matching ``accounts``, ``channels`` and
    ``languages`` (each: any when absent) while its ``hours`` are open (always, when absent)."""

    name: str = Field(min_length=1)
    group_id: int | None = Field(default=None, ge=1, description="Zendesk/Freshdesk group id")
    brand_id: int | None = Field(default=None, ge=1, description="Zendesk brand id; Freshdesk product id")
    accounts: list[str] | None = Field(default=None, min_length=1, description="receiving account ids")
    channels: list[Platform] | None = Field(default=None, min_length=1)
    languages: list[LanguageCode] | None = Field(default=None, min_length=1, description="ISO 639-1; 'unknown' for none")
    hours: Hours | None = None


class Routing(_Strict):
    """Groups in order: the first that matches and is open takes the ticket; when every
    matching group is closed, the first matching one does (it answers when it opens)."""

    groups: list[Group] = Field(default_factory=list)


class Noise(_Strict):
    """Messages stored but opening no ticket (only as a conversation's first message)."""

    emoji_only: bool = True
    tag_only: bool = True
    spam_patterns: list[str] = Field(default_factory=list, description="regular expressions on the accent-folded text")
    max_links: int | None = Field(default=None, ge=0, description="more links than this: spam")
    private_too: bool = Field(default=False, description="apply to private chats as well")


class RulesFile(_Strict):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, title="socialdesk triage rules")

    schema_ref: str | None = Field(default=None, alias="$schema")
    version: Literal[1]
    keywords: dict[str, list[str]] = Field(default_factory=dict, description="list name -> terms ('stem*' for prefixes)")
    priority: PriorityRules
    sla: Sla
    routing: Routing = Field(default_factory=Routing)
    noise: Noise = Field(default_factory=Noise)
    note: bool = Field(
        default=False,
        description="the triage summary as an internal note on each new ticket (one helpdesk request more per ticket)",
    )
    approval: ApprovalRules = Field(default_factory=ApprovalRules, description="public answers that wait for a lead")


# --- reading the file, with line numbers -------------------------------------------------------


class RulesError(ValueError):
    """A rules file that cannot be used: ``path:line: where: what``."""

    def __init__(self, path: Path | str, line: int | None, where: str, problem: str) -> None:
        self.path, self.line, self.where, self.problem = str(path), line, where, problem
        location = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{location}: {where + ': ' if where else ''}{problem}")


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


class _LineAwareJson:
    """A JSON reader that remembers the line of every value (by its path of keys and
    indexes), so that a validation error can name the line; duplicate keys are errors."""

    def __init__(self, text: str, path: Path | str) -> None:
        self.text, self.path = text, path
        self.lines: dict[tuple[str | int, ...], int] = {}
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]

    def line(self, position: int) -> int:
        return bisect.bisect_left(self._newlines, position) + 1

    def parse(self) -> Any:
        value, end = self._value(self._skip(0), ())
        if self._skip(end) != len(self.text):
            self._fail(self._skip(end), "unexpected text after the end of the document")
        return value

    def _fail(self, position: int, problem: str) -> None:
        raise RulesError(self.path, self.line(position), "", f"not valid JSON: {problem}")

    def _skip(self, position: int) -> int:
        match = _WHITESPACE.match(self.text, position)
        return match.end() if match else position

    def _value(self, position: int, path: tuple[str | int, ...]) -> tuple[Any, int]:
        self.lines.setdefault(path, self.line(position))
        if position >= len(self.text):
            self._fail(position, "the document ends where a value was expected")
        char = self.text[position]
        if char == "{":
            return self._object(position + 1, path)
        if char == "[":
            return self._array(position + 1, path)
        if char == '"':
            return self._string(position)
        for word, value in _LITERALS.items():
            if self.text.startswith(word, position):
                return value, position + len(word)
        number = _NUMBER.match(self.text, position)
        if number:
            literal = number.group()
            return (float(literal) if any(c in literal for c in ".eE") else int(literal)), number.end()
        self._fail(position, f"a value was expected, found {self.text[position : position + 10]!r}")
        raise AssertionError  # unreachable: _fail raises

    def _string(self, position: int) -> tuple[str, int]:
        try:
            return json.decoder.scanstring(self.text, position + 1)  # type: ignore[attr-defined]
        except json.JSONDecodeError as exc:
            self._fail(exc.pos, exc.msg)
            raise AssertionError from exc

    def _object(self, position: int, path: tuple[str | int, ...]) -> tuple[dict[str, Any], int]:
        found: dict[str, Any] = {}
        position = self._skip(position)
        if self.text.startswith("}", position):
            return found, position + 1
        while True:
            if not self.text.startswith('"', position):
                self._fail(position, "a key in double quotes was expected (a trailing comma?)")
            key, position = self._string(position)
            if key in found:
                self._fail(position, f"the key {key!r} appears twice")
            self.lines[(*path, key)] = self.line(position)
            position = self._skip(position)
            if not self.text.startswith(":", position):
                self._fail(position, "':' was expected after the key")
            found[key], position = self._value(self._skip(position + 1), (*path, key))
            position = self._skip(position)
            if self.text.startswith("}", position):
                return found, position + 1
            if not self.text.startswith(",", position):
                self._fail(position, "',' or '}' was expected")
            position = self._skip(position + 1)

    def _array(self, position: int, path: tuple[str | int, ...]) -> tuple[list[Any], int]:
        found: list[Any] = []
        position = self._skip(position)
        if self.text.startswith("]", position):
            return found, position + 1
        while True:
            value, position = self._value(position, (*path, len(found)))
            found.append(value)
            position = self._skip(position)
            if self.text.startswith("]", position):
                return found, position + 1
            if not self.text.startswith(",", position):
                self._fail(position, "',' or ']' was expected")
            position = self._skip(position + 1)


def _where(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_of(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int | None:
    """The line of ``path``, or of its nearest parent in the file (for a missing key)."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _semantic_problems(rules: RulesFile) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """What the schema cannot say: names that must exist, time zones, patterns that compile."""
    for name in rules.keywords:
        if not re.match(r"^[a-z0-9_]{1,40}$", name):
            yield ("keywords", name), f"{name!r} cannot name a list (a-z, 0-9 and _: it becomes the tag kw_{name})"
    for index, rule in enumerate(rules.priority.rules):
        for name in rule.when.keywords_any or ():
            if name not in rules.keywords:
                yield ("priority", "rules", index, "when", "keywords_any"), f"no keyword list is called {name!r}"
        for tag in rule.tags:
            if not re.match(TAG_PATTERN, tag):
                yield ("priority", "rules", index, "tags"), f"{tag!r} is not a tag (lower-case letters, digits, _ and -)"
    for key in rules.sla.first_reply:
        if key != "default" and key not in {p.value for p in Platform}:
            known = ", ".join(["default", *(p.value for p in Platform)])
            yield ("sla", "first_reply", key), f"{key!r} is not a platform (one of: {known})"
    if "default" not in rules.sla.first_reply:
        yield ("sla", "first_reply"), "a 'default' target is required (for the platforms not listed)"
    names: set[str] = set()
    for index, group in enumerate(rules.routing.groups):
        if group.name in names:
            yield ("routing", "groups", index, "name"), f"two groups are called {group.name!r}"
        names.add(group.name)
        if group.hours is not None:
            try:
                ZoneInfo(group.hours.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                yield ("routing", "groups", index, "hours", "timezone"), f"unknown time zone {group.hours.timezone!r}"
            if group.hours.open == group.hours.close:
                yield ("routing", "groups", index, "hours", "close"), "close is the same time as open"
    for index, pattern in enumerate(rules.noise.spam_patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            yield ("noise", "spam_patterns", index), f"not a regular expression: {exc}"


def parse_rules(text: str, path: Path | str = "<rules>") -> RulesFile:
    """Validate a rules file's text; ``RulesError`` names the first problem's line."""
    reader = _LineAwareJson(text, path)
    document = reader.parse()
    try:
        rules = RulesFile.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = tuple(error["loc"])
        found = f" (found {json.dumps(error['input'])[:60]})" if error["type"] != "missing" else ""
        more = f"; and {exc.error_count() - 1} more problem(s)" if exc.error_count() > 1 else ""
        raise RulesError(path, _line_of(reader.lines, where), _where(where), error["msg"] + found + more) from None
    for where, problem in _semantic_problems(rules):
        raise RulesError(path, _line_of(reader.lines, where), _where(where), problem)
    return rules


def load_rules(path: Path | str | None = None) -> RulesFile:
    """The rules at ``path``, else ``TRIAGE_RULES_PATH``, else the shipped file."""
    chosen = Path(path or os.environ.get("TRIAGE_RULES_PATH") or DEFAULT_RULES_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(chosen, None, "", f"cannot be read: {exc.strerror or exc}") from exc
    return parse_rules(text, chosen)


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of the rules file (``chalicelib/rules/triage.schema.json``)."""
    schema = RulesFile.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "triage.schema.json", **schema}


# --- applying them ---------------------------------------------------------------------------------


def duration(text: Duration) -> timedelta:
    """``"45m"``, ``"1h"``, ``"2d"`` as a timedelta."""
    unit = {"m": 60, "h": 3600, "d": 86400}[text[-1]]
    return timedelta(seconds=int(text[:-1]) * unit)


def duration_words(span: timedelta) -> str:
    """The shortest of ``"2d"``, ``"4h"``, ``"90m"`` that says ``span`` exactly (for tags)."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


def _clock_minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def is_open(hours: Hours | None, moment: datetime) -> bool:
    """Whether a group with these hours is working at ``moment`` (aware datetime)."""
    if hours is None:
        return True
    local = moment.astimezone(ZoneInfo(hours.timezone))
    minute = local.hour * 60 + local.minute
    opens, closes = _clock_minutes(hours.open), _clock_minutes(hours.close)
    today = DAYS[local.weekday()]
    if opens < closes:
        return today in hours.days and opens <= minute < closes
    # A night shift: the evening of a working day, or the early morning after one.
    yesterday = DAYS[(local.weekday() - 1) % 7]
    return (today in hours.days and minute >= opens) or (yesterday in hours.days and minute < closes)


def _language_key(language: str | None) -> str:
    return language or "unknown"


def matches(condition: Condition, message: SocialMessage, signals: Signals) -> bool:
    """Whether every condition given holds for the message and its signals."""
    checks = (
        condition.visibility is None or signals.visibility == condition.visibility,
        condition.channel is None or message.platform in condition.channel,
        condition.language is None or _language_key(signals.language) in condition.language,
        condition.sentiment is None or signals.sentiment in condition.sentiment,
        condition.sentiment_below is None or signals.sentiment_score < condition.sentiment_below,
        condition.reach_at_least is None or (signals.reach is not None and signals.reach >= condition.reach_at_least),
        condition.keywords_any is None or any(name in signals.keywords for name in condition.keywords_any),
    )
    return all(checks)


_LINK = re.compile(r"https?://|www\.", re.IGNORECASE)
_HANDLE_OR_TAG = re.compile(r"(?<![\w@])[@#][\w.]*\w")
_WORD_CHARACTER = re.compile(r"[^\W_]")


@dataclass(frozen=True)
class FirstReplyTargets:
    """The first-reply targets of every platform, for the report's SLA line."""

    public: dict[str, timedelta]
    private: dict[str, timedelta]

    def target(self, platform: str, *, private: bool) -> timedelta:
        table = self.private if private else self.public
        return table.get(platform, table["default"])


class Triage:
    """Applies the rules: noise, signals, and the ticket's priority, group, tags and due dates."""

    def __init__(
        self,
        rules: RulesFile,
        *,
        reader: SignalReader | None = None,
        reach: Callable[[SocialMessage], int | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self.keywords = KeywordLists(rules.keywords)
        self.reader = reader or SignalReader(self.keywords, reach=reach)
        self._clock = clock
        self._spam = [re.compile(pattern) for pattern in rules.noise.spam_patterns]

    @classmethod
    def from_env(cls, *, reach: Callable[[SocialMessage], int | None] | None = None) -> Triage:
        """With the rules of ``TRIAGE_RULES_PATH`` (default: the shipped file); raises ``RulesError``."""
        return cls(load_rules(), reach=reach)

    def signals(self, message: SocialMessage) -> Signals:
        return self.reader.read(message)

    def noise(self, message: SocialMessage) -> str | None:
        """Why the message is noise ("emoji only", "tags only", "spam-like"), or None.

        Reviews are never noise (a star rating says something), nor is a message with files."""
        noise = self.rules.noise
        if message.kind is Kind.REVIEW or message.attachments or (message.is_private and not noise.private_too):
            return None
        text = message.text or ""
        if not text.strip():
            return None
        words = normalize(_HANDLE_OR_TAG.sub(" ", text))
        if noise.tag_only and _HANDLE_OR_TAG.search(text) and not _WORD_CHARACTER.search(words):
            return "tags only"
        if noise.emoji_only and not _WORD_CHARACTER.search(text):
            return "emoji only"
        folded = fold(text)
        if any(pattern.search(folded) for pattern in self._spam):
            return "spam-like"
        if noise.max_links is not None and len(_LINK.findall(text)) > noise.max_links:
            return "spam-like"
        return None

    def priority(self, message: SocialMessage, signals: Signals) -> tuple[Priority, list[str]]:
        """The highest priority among the rules that match (else the default), and their extra tags."""
        chosen: Priority | None = None
        tags: list[str] = []
        for rule in self.rules.priority.rules:
            if matches(rule.when, message, signals):
                tags.extend(rule.tags)
                if chosen is None or PRIORITIES.index(rule.priority) > PRIORITIES.index(chosen):
                    chosen = rule.priority
        return chosen or self.rules.priority.default, tags

    def group(self, message: SocialMessage, signals: Signals, now: datetime) -> Group | None:
        """Follow-the-sun: the first matching group that is open, else the first matching one."""
        candidates = [g for g in self.rules.routing.groups if self._takes(g, message, signals)]
        return next((g for g in candidates if is_open(g.hours, now)), candidates[0] if candidates else None)

    @staticmethod
    def _takes(group: Group, message: SocialMessage, signals: Signals) -> bool:
        return (
            (group.accounts is None or message.account_id in group.accounts)
            and (group.channels is None or message.platform in group.channels)
            and (group.languages is None or _language_key(signals.language) in group.languages)
        )

    def first_reply_targets(self) -> FirstReplyTargets:
        first = self.rules.sla.first_reply
        return FirstReplyTargets(
            public={name: duration(target.public) for name, target in first.items()},
            private={name: duration(target.private) for name, target in first.items()},
        )

    def routing(self, message: SocialMessage, signals: Signals) -> TicketRouting:
        """What the new ticket gets: priority, group and brand, tags (the SLA tag among them),
        due dates, and the note for agents. Due dates count from when the customer wrote,
        but never before now (a helpdesk refuses a due date in the past)."""
        now = datetime.fromtimestamp(self._clock(), tz=timezone.utc)
        priority, rule_tags = self.priority(message, signals)
        group = self.group(message, signals, now)
        private = signals.visibility == PRIVATE
        first_reply = self.first_reply_targets().target(message.platform.value, private=private)
        resolution = duration(self.rules.sla.resolution.private if private else self.rules.sla.resolution.public)
        first_due = max(message.created_at + first_reply, now)
        due = max(message.created_at + resolution, first_due)
        tags = [f"{self.rules.sla.tag_prefix}{duration_words(first_reply)}", f"priority_{priority}"]
        if signals.language:
            tags.append(f"lang_{signals.language}")
        tags.append(f"sentiment_{signals.sentiment}")
        tags += [reach_tag] if (reach_tag := _reach_tag(signals.reach)) else []
        tags += [f"kw_{name}" for name in signals.keywords] + rule_tags
        note = signals.summary() + f"\nPriority {priority}" + (f" · group {group.name}" if group else "")
        note += f" · first reply within {duration_words(first_reply)}"
        return TicketRouting(
            priority=priority,
            group_id=str(group.group_id) if group and group.group_id else None,
            brand_id=str(group.brand_id) if group and group.brand_id else None,
            tags=tuple(dict.fromkeys(tag for tag in tags if re.match(TAG_PATTERN, tag))),
            first_reply_due=first_due,
            due=due,
            note=note if self.rules.note else None,
        )


# Reach as a tag agents can filter on: the largest threshold the author's audience reaches.
_REACH_TAGS = ((1_000_000, "reach_1m"), (100_000, "reach_100k"), (10_000, "reach_10k"), (1_000, "reach_1k"))


def _reach_tag(reach: int | None) -> str | None:
    return next((tag for threshold, tag in _REACH_TAGS if reach is not None and reach >= threshold), None)


def first_reply_targets(path: Path | str | None = None) -> FirstReplyTargets:
    """The SLA first-reply targets of the rules file (``TRIAGE_RULES_PATH`` or the shipped
    one), for the response-time report to draw its SLA line per channel and visibility."""
    return Triage(load_rules(path)).first_reply_targets()


def main(argv: list[str]) -> int:
    """``make check-rules``: validate the rules file(s); ``--schema``: print the JSON Schema."""
    if argv[:1] == ["--schema"]:
        print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
        return 0
    paths = argv or [os.environ.get("TRIAGE_RULES_PATH") or str(DEFAULT_RULES_PATH)]
    failed = False
    for path in paths:
        try:
            rules = load_rules(path)
        except RulesError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        print(
            f"{path}: ok ({len(rules.priority.rules)} priority rules, {len(rules.routing.groups)} groups, "
            f"{len(rules.keywords)} keyword lists)"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
