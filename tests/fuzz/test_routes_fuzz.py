"""Hostile input against every route: the app answers 2xx or 4xx (JSON ``error``), never 5xx.

Issue "hostile input". Every route of ``app.app.routes`` is fuzzed; a route without a
fuzz strategy here fails ``test_every_route_has_a_fuzz_strategy`` (and its cases).

* unauthenticated requests -- missing, empty, forged, duplicated, cross-platform or
  stale signatures; unknown or invalid generic sources; forged Google tokens -- with
  hostile bodies: refused with a 4xx, and nothing is written to the table;
* authenticated garbage -- bodies we sign with the local secrets: random bytes,
  invalid UTF-8, truncated or random JSON, 10,000-level nesting, oversized bodies,
  documented samples with fields of the wrong type: 2xx or 4xx, never 5xx;
* GET handshakes with hostile query strings (Meta ``hub.*``, X ``crc_token``);
* replays: a delivery sent twice stores nothing the second time; a Standard Webhooks
  delivery replayed outside the 5-minute window is refused.

Contract checks are in ``conftest.contract_problems``. An answer that breaks it in a
way ``KNOWN_BUGS`` describes is counted as "known" (and pinned by a strict xfail test
at the end of this file) instead of failing the fuzz test; when a bug is fixed its
xfail test XPASSes, and the entry in ``KNOWN_BUGS`` goes with the xfail marker.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import re
import string
import time
import urllib.parse
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FUZZ_MAX_BODY_BYTES, FUZZ_SETTINGS, Answer, FuzzApp, FuzzRequest, contract_problems
from tests.fuzz.report import REPORT

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"
Draw = Callable[[st.SearchStrategy[Any]], Any]


# --- the routes --------------------------------------------------------------------------


def app_routes() -> list[str]:
    """Every ``"METHOD /path"`` the app serves, from ``app.app.routes``."""
    import app as lambda_app

    return sorted(f"{method} {path}" for path, methods in lambda_app.app.routes.items() for method in methods)


# --- known bugs --------------------------------------------------------------------------
# name -> does this answer show the bug? Keep each one narrow: it hides only what it names.


def _body_json(answer: Answer) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _error_code(answer: Answer) -> str | None:
    body = _body_json(answer)
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _caused_by(answer: Answer, exceptions: str | tuple[str, ...], *frames: str) -> bool:
    """A 500 whose (last) unhandled exception is one of ``exceptions``, raised through all of ``frames``."""
    if answer.status != 500 or not answer.tracebacks:
        return False
    tb = answer.tracebacks[-1].strip()
    names = (exceptions,) if isinstance(exceptions, str) else exceptions
    return tb.splitlines()[-1].split(":", 1)[0] in names and all(frame in tb for frame in frames)


# Bugs the fuzzing found are fixed; each has a regression test below. A newly found
# one goes here (with a strict xfail test) until it is fixed.
KNOWN_BUGS: dict[str, Callable[[FuzzRequest, Answer], bool]] = {}


UNEXCUSABLE = ("unauthenticated", "the table went from", "wrote to the table")


def known_bug(request: FuzzRequest, answer: Answer) -> str | None:
    """The name of the known bug that explains this answer, if any."""
    return next((name for name, matches in KNOWN_BUGS.items() if matches(request, answer)), None)


def run(fuzz: FuzzApp, request: FuzzRequest, *, extra: Callable[[Answer], list[str]] | None = None) -> Answer:
    """Send ``request``, check the contract, record the outcome; fail on an unknown violation."""
    if request.route == "POST /webhooks/google/reviews" and request.authenticated:
        seed_google_reviews(fuzz, request)
    answer = fuzz.send(request)
    if request.route == PrivacyPostFuzz.route and answer.status == 200 and len(fuzz.codes) < 100:
        code = (_body_json(answer) or {}).get("confirmation_code")
        if isinstance(code, str):
            fuzz.codes.append(code)
    problems = contract_problems(request, answer)
    if extra is not None and answer.status < 500:
        problems += extra(answer)
    # A known bug may explain a wrong status or body, never an unauthenticated request that got in or wrote.
    breach = any(marker in p for p in problems for marker in UNEXCUSABLE)
    bug = known_bug(request, answer) if problems and not breach else None
    outcome = "passed" if not problems else ("known" if bug else "failed")
    message = "; ".join(problems) + "\n" + request.describe() + "\n" + answer.describe()
    REPORT.record(request.route, status=answer.status, authenticated=request.authenticated, writes=answer.writes,
                  outcome=outcome, known_bug=bug, cause=failure_cause(request, problems, answer) if outcome == "failed" else None,
                  example=message if outcome == "failed" else None)
    if problems and not bug and not KEEP_GOING:
        raise AssertionError(message)
    return answer


# FUZZ_KEEP_GOING=1: record failures (see the summary's "failures by cause") instead of
# stopping at the first one -- to survey every bug in one long run. Tests then pass.
KEEP_GOING = os.environ.get("FUZZ_KEEP_GOING") == "1"
_APP_FRAME = re.compile(r'File "(?:[^"]*/)?((?:chalicelib/[^"]+|app)\.py)", line \d+, in (\w+)')


def failure_cause(request: FuzzRequest, problems: list[str], answer: Answer) -> str:
    """A short, stable key for what went wrong: the exception and the innermost app frame."""
    if answer.tracebacks:
        tb = answer.tracebacks[-1].strip()
        frames = _APP_FRAME.findall(tb)
        where = f"{frames[-1][0]}:{frames[-1][1]}" if frames else "?"
        exception = tb.splitlines()[-1].split(":", 1)[0]
        return f"{request.route}: {answer.status} {exception} at {where}"
    return f"{request.route}: {answer.status} {problems[0] if problems else ''}"[:160]


# --- JSON building blocks ----------------------------------------------------------------

TRICKY_STRINGS = [
    "", " ", "0", "-1", "1e999", "NaN", "null", "true", "[]", "{}", "9" * 40, "١٢٣", "２０２４",
    "2024-13-45T99:99:99Z", "2024-05-01T09:30:00", "0000-00-00T00:00:00Z", "9999-12-31T23:59:59Z",
    "\x00", "a\x00b", "\u202e\u0645\u0631\u062d\u0628\u0627", "\u2028\u2029", "😀" * 3, "é", "\ufeff",
    "../../etc/passwd", "accounts/1/locations/2/reviews/3", "<script>alert(1)</script>", "'; DROP TABLE x; --",
    "%s%s%n", "${jndi:ldap://x}", "CONV#x", "MSG#y", "QUARANTINE#z", "\ud800", "a\udfffb",
]
EXTREME_NUMBERS = [0, -1, 1, 2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**20, 10**30, 10**300, 1e308, -1e308,
                   1.5, 5e-324, float("inf"), float("-inf"), float("nan"), 253402300800, -62135596801]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # nan and infinities too: json.dumps writes NaN/Infinity, json.loads reads them
    st.sampled_from(EXTREME_NUMBERS),
    st.text(max_size=30),
    st.sampled_from(TRICKY_STRINGS),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Values of each JSON type, to swap a field's type for another.
JSON_KINDS: dict[type, st.SearchStrategy[Any]] = {
    int: st.from_type(int), float: st.from_type(float), bool: st.from_type(bool), str: st.from_type(str),
    type(None): st.none(), list: st.from_type(list[int]), dict: st.from_type(dict[str, str]),
}

DEEP_MARK = "\x00deep\x00"
_DEEP_JSON = json.dumps(DEEP_MARK)  # '"\\u0000deep\\u0000"'


def deep_text(depth: int, shape: str, closed: bool = True) -> str:
    """``depth`` levels of nesting, built as text (json.dumps itself would overflow the stack)."""
    opener, closer = {"list": ("[", "]"), "dict": ('{"a":', "}"), "mixed": ('[{"a":', "}]")}[shape]
    inner = "1" if shape != "list" else ""
    return opener * depth + inner + (closer * depth if closed else "")


def encode(value: Any, *, style: str = "compact", deep: str | None = None) -> bytes:
    """A JSON body; ``DEEP_MARK`` strings become ``deep`` (raw nested JSON text)."""
    if style == "compact":
        text = json.dumps(value, separators=(",", ":"))
    elif style == "pretty":
        text = json.dumps(value, indent=2)
    else:  # "utf8": non-ASCII as UTF-8 bytes, not \\u escapes
        text = json.dumps(value, ensure_ascii=False)
    if deep is not None:
        text = text.replace(_DEEP_JSON, deep)
    return text.encode("utf-8", "surrogatepass")


def node_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every node of a JSON document, the root first."""
    paths = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            paths += node_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths += node_paths(child, (*prefix, index))
    return paths


def get_at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def set_at(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    get_at(doc, path[:-1])[path[-1]] = value
    return doc


HOT_KEYS = re.compile(r"time|date|_at$|^id$|_id$|^mid$|type|^from$|sender|source|rating|^text$|message|entry|events|changes|value|^data$|name")
MUTATIONS = ["retype", "random", "delete", "insert", "huge_string", "extreme_number", "stringify", "empty",
             "repeat", "tricky_string", "deep"]


@st.composite
def mutated(draw: Draw, seed: Any, *, protect: tuple[str, ...] = ()) -> tuple[Any, str | None, str]:
    """A documented sample with 1-4 fields changed: wrong types, odd values, deletions, depth.

    Returns ``(document, deep_text or None, description)``; keys in ``protect`` are left alone.
    """
    doc = copy.deepcopy(seed)
    deep: str | None = None
    done: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in node_paths(doc) if not (p and p[-1] in protect)]
        hot = [p for p in paths if p and isinstance(p[-1], str) and HOT_KEYS.search(p[-1])]
        # Half the time, a field the normalizers parse (times, ids, types...): that is where bugs hide.
        path = draw(st.sampled_from(hot if hot and draw(st.booleans()) else paths))
        current = get_at(doc, path)
        op = draw(st.sampled_from(MUTATIONS))
        if op == "retype":
            kind = draw(st.sampled_from([t for t in JSON_KINDS if t is not type(current)]))
            doc = set_at(doc, path, draw(JSON_KINDS[kind]))
        elif op == "random":
            doc = set_at(doc, path, draw(json_values))
        elif op == "delete" and path:
            parent = get_at(doc, path[:-1])
            del parent[path[-1]]
        elif op == "insert" and isinstance(current, (dict, list)):
            if isinstance(current, dict):
                current[draw(st.text(max_size=12) | st.sampled_from(sorted(map(str, current)) or ["x"]))] = draw(json_values)
            else:
                current.insert(draw(st.integers(0, len(current))), draw(json_values))
        elif op == "huge_string":
            doc = set_at(doc, path, draw(st.sampled_from("ab\u00e9\u4e00😀")) * draw(st.sampled_from([300, 1100, 2100, 5000, 20000, 70000])))
        elif op == "extreme_number":
            doc = set_at(doc, path, draw(st.sampled_from(EXTREME_NUMBERS)))
        elif op == "stringify":
            doc = set_at(doc, path, json.dumps(current))
        elif op == "empty":
            doc = set_at(doc, path, draw(st.sampled_from(["", 0, None, [], {}, False])))
        elif op == "repeat" and isinstance(current, list) and current:
            doc = set_at(doc, path, current * draw(st.integers(2, 60)))
        elif op == "tricky_string":
            doc = set_at(doc, path, draw(st.sampled_from(TRICKY_STRINGS)))
        elif op == "deep" and deep is None:
            depth = draw(st.sampled_from([50, 500, 900, 990, 1000, 2000, 10000]))
            deep = deep_text(depth, draw(st.sampled_from(["list", "dict", "mixed"])))
            doc = set_at(doc, path, DEEP_MARK)
        else:
            continue
        done.append(f"{op}@{'/'.join(map(str, path)) or '<root>'}")
    return doc, deep, "mutated " + ", ".join(done)


INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80",
                b"\xe2\x82", b"\xf0\x9f\x98"]
LITERAL_BODIES = [
    b"", b" ", b"null", b"true", b"0", b"-0", b"[]", b"{}", b'""', b'"x"', b"NaN", b"Infinity", b"-Infinity",
    b"1e999", b"9" * 5000, b"\xef\xbb\xbf{}", b"{}garbage", b"{} {}", b'{"a":1,"a":2}', b"\x00" * 16,
    b'{"entry":', b'{"\\ud800":"\\udfff"}', b"[" * 100 + b"]" * 99, b'{"type": "message.created"}',
    "{\"a\": \"\u2028\"}".encode(), b"\r\n\r\n", b"<?xml version='1.0'?><a/>", b"a=1&b=2",
]
BODY_KINDS = ["sample", "mutated", "random_json", "truncated", "invalid_utf8", "deep", "bytes", "literal",
              "reencoded", "oversized"]


@st.composite
def hostile_body(draw: Draw, seeds: list[Any], limit: int, *, kinds: list[str] | None = None,
                 protect: tuple[str, ...] = ()) -> tuple[bytes, str]:
    """``(body, label)``: one hostile request body built from the route's documented samples."""
    kind = draw(st.sampled_from(kinds or BODY_KINDS))
    seed = draw(st.sampled_from(seeds))
    if kind == "sample":
        return encode(seed, style=draw(st.sampled_from(["compact", "pretty", "utf8"]))), "sample"
    if kind == "mutated":
        doc, deep, label = draw(mutated(seed, protect=protect))
        return encode(doc, deep=deep), label
    if kind == "random_json":
        return encode(draw(json_values)), "random JSON"
    if kind == "truncated":
        full = encode(seed)
        cut = draw(st.integers(0, len(full) - 1))
        return full[:cut], f"truncated at {cut}/{len(full)}"
    if kind == "invalid_utf8":
        full = encode(seed, style="utf8")
        quotes = [i + 1 for i, byte in enumerate(full) if byte == ord('"')] or [0]
        at = draw(st.sampled_from(quotes))
        bad = draw(st.sampled_from(INVALID_UTF8))
        return full[:at] + bad + full[at:], f"invalid UTF-8 {bad!r} at {at}"
    if kind == "deep":
        depth = draw(st.sampled_from([100, 900, 990, 1000, 1100, 5000, 10000]) | st.integers(1, 12000))
        shape = draw(st.sampled_from(["list", "dict", "mixed"]))
        closed = draw(st.booleans())
        return deep_text(depth, shape, closed).encode(), f"{depth}-level nested {shape}{'' if closed else ' (unclosed)'}"
    if kind == "bytes":
        return draw(st.binary(max_size=400)), "random bytes"
    if kind == "literal":
        return draw(st.sampled_from(LITERAL_BODIES)), "literal"
    if kind == "reencoded":
        text = json.dumps(seed)
        how = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-8-sig", "latin-1", "trailing", "leading"]))
        if how == "trailing":
            return text.encode() + draw(st.sampled_from([b" x", b"\x00", b"}", b"\n{}"])), "trailing garbage"
        if how == "leading":
            return draw(st.sampled_from([b"\x00", b")]}'\n", b"\xef\xbb\xbf"])) + text.encode(), "leading garbage"
        return json.dumps(seed, ensure_ascii=False).encode(how, "replace"), f"encoded as {how}"
    # oversized: valid JSON padded past the limit, or plain filler
    extra = draw(st.integers(1, 4096))
    if draw(st.booleans()):
        body = encode(seed)
        return body + b" " * max(1, limit + extra - len(body)), f"oversized ({limit + extra} bytes, valid JSON)"
    return b"A" * (limit + extra), f"oversized ({limit + extra} bytes)"


# --- headers -----------------------------------------------------------------------------

ACCEPTED_CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "Application/JSON", "text/plain",
                          "text/plain; charset=iso-8859-1", "application/x-www-form-urlencoded",
                          "application/octet-stream", "application/json;charset=UTF-16"]
WRONG_CONTENT_TYPES = ["application/xml", "multipart/form-data; boundary=x", "text/html", "image/png",
                       "application/vnd.api+json", "application/jsonx", "json", "", "*", "application/*"]
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_categories=("Cs", "Cc")), max_size=40
)
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,24}", fullmatch=True)


def cased(draw: Draw, name: str) -> str:
    """A header name as some gateway or client may spell it."""
    return draw(st.sampled_from([name, name.lower(), name.upper(), name.title()]))


def base_headers(draw: Draw, *, protect: tuple[str, ...], wrong_content_type: bool = True, get: bool = False) -> dict[str, str]:
    """A Content-Type (usually one the routes declare) and a few random extra headers.

    A GET usually has no Content-Type (Chalice would answer anything but JSON with its own 415).
    """
    headers: dict[str, str] = {}
    for name, value in draw(st.dictionaries(header_names, header_text, max_size=3)).items():
        if name.lower() not in protect and name.lower() != "content-type":
            headers[name] = value
    choice = draw(st.integers(0, 19))
    if get:
        if choice >= 16:
            headers[cased(draw, "Content-Type")] = draw(st.sampled_from(ACCEPTED_CONTENT_TYPES + WRONG_CONTENT_TYPES))
        return headers
    if choice < 15:
        headers[cased(draw, "Content-Type")] = draw(st.sampled_from(ACCEPTED_CONTENT_TYPES))
    elif choice < 18 or not wrong_content_type:
        pass  # no Content-Type at all (Chalice then assumes application/json)
    else:
        headers[cased(draw, "Content-Type")] = draw(st.sampled_from(WRONG_CONTENT_TYPES) | header_text)
    return headers


# --- per-route fuzzers: POST webhooks ----------------------------------------------------


@cache
def event_seeds(prefix: str) -> list[Any]:
    """The documented samples in tests/events whose file name starts with ``prefix``."""
    seeds = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(EVENTS_DIR.glob(f"{prefix}*.json"))]
    assert seeds, f"no samples tests/events/{prefix}*.json"
    return seeds


@cache
def demo_seeds(route: str) -> list[Any]:
    """The demo's samples (local/samples.py) for one route name (``meta``, ``generic/trustpilot``...)."""
    from local.samples import all_samples

    return [payload for name, payload in all_samples("4242") if name == route]


class PostFuzz:
    """How to reach, sign and forge one POST webhook route."""

    route = ""
    auth_headers: tuple[str, ...] = ()  # lower-case names the route authenticates with
    limit = FUZZ_MAX_BODY_BYTES
    protect: tuple[str, ...] = ()  # sample keys that mutations leave alone

    def seeds(self, path: str) -> list[Any]:
        raise NotImplementedError

    def path(self, draw: Draw, *, authenticated: bool) -> tuple[str, str]:
        """``(path, label)``."""
        return self.route.split(" ", 1)[1], ""

    def sign(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        """Headers that authenticate ``body`` (drawn among the valid spellings)."""
        raise NotImplementedError

    def forge(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        """Headers that must *not* authenticate ``body``."""
        raise NotImplementedError

    def expected_status(self, path: str, body: bytes) -> int | None:
        """The one right answer, when the input decides it (an oversized body: 413)."""
        return 413 if len(body) > self.limit else None

    def body(self, draw: Draw, path: str, *, kinds: list[str] | None = None) -> tuple[bytes, str]:
        return draw(hostile_body(self.seeds(path), self.limit, kinds=kinds, protect=self.protect))

    # A replay of an accepted request adds no item (deliveries are deduplicated).
    replay_adds_nothing = True

    def build(self, draw: Draw, fuzz: FuzzApp, *, authenticated: bool, kinds: list[str] | None) -> FuzzRequest:
        """One POST: a hostile body, signed (``authenticated``) or forged."""
        path, _source = self.path(draw, authenticated=authenticated)
        body, body_label = self.body(draw, path, kinds=kinds)
        headers = base_headers(draw, protect=self.auth_headers, wrong_content_type=not authenticated)
        if authenticated:
            auth, auth_label = self.sign(draw, fuzz, path, body)
        else:
            auth, auth_label = self.forge(draw, fuzz, path, body)
        request = FuzzRequest("POST", path, {**headers, **auth}, body, route=self.route, label=f"{auth_label}; {body_label}",
                              authenticated=authenticated, expect_status=self.expected_status(path, body))
        return request


def duplicated(draw: Draw, name: str, good: str, bad: str) -> tuple[dict[str, str], str]:
    """The header sent twice: joined with a comma (HTTP semantics) or as two spellings, the bad one last."""
    how = draw(st.sampled_from(["good,bad", "bad,good", "good, good", "two spellings"]))
    if how == "two spellings":
        return {name: good, name.lower() if name != name.lower() else name.upper(): bad}, "duplicated header (bad one last)"
    value = {"good,bad": f"{good},{bad}", "bad,good": f"{bad},{good}", "good, good": f"{good}, {good}"}[how]
    return {name: value}, f"duplicated header ({how})"


class HmacPostFuzz(PostFuzz):
    """Meta, X and LINE: an HMAC-SHA256 of the raw body in one header."""

    def __init__(self, route: str, module: str, secret: str, sample_prefix: str, demo: str) -> None:
        self.route, self.module_name, self.secret_name = route, module, secret
        self.sample_prefix, self.demo = sample_prefix, demo

    def verifier(self, secret: str) -> Any:
        import importlib

        return importlib.import_module(f"chalicelib.channels.{self.module_name}.webhook").signature_verifier(secret)

    @property
    def header(self) -> str:
        return self.verifier("x").header

    @property
    def auth_headers(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.header.lower(),)

    def seeds(self, path: str) -> list[Any]:
        return event_seeds(self.sample_prefix) + demo_seeds(self.demo)

    def sign(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        signature = self.verifier(fuzz.secrets[self.secret_name]).sign(body)
        padding = draw(st.sampled_from(["", "", "", " ", "\t"]))  # the verifier strips whitespace
        return {cased(draw, self.header): padding + signature + padding}, "signed"

    def forge(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        secret = fuzz.secrets[self.secret_name]
        good = self.verifier(secret).sign(body)
        prefix = self.verifier("x").prefix
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        other_secrets = [v for k, v in sorted(fuzz.secrets.items()) if k != self.secret_name and k.endswith(("_SECRET", "_TOKEN"))]
        how = draw(st.sampled_from(["missing", "empty", "random", "other body", "other secret", "wrong encoding",
                                    "truncated", "duplicated", "sha1", "case"]))
        name = cased(draw, self.header)
        if how == "missing":
            return {}, "no signature"
        if how == "empty":
            return {name: draw(st.sampled_from(["", " ", prefix]))}, "empty signature"
        if how == "random":
            return {name: draw(header_text)}, "random signature"
        if how == "other body":
            return {name: self.verifier(secret).sign(body + draw(st.sampled_from([b" ", b"\n", b"x"])))}, "signature of another body"
        if how == "other secret":
            return {name: self.verifier(draw(st.sampled_from(other_secrets))).sign(body)}, "signed with another platform's secret"
        if how == "wrong encoding":
            encoded = base64.b64encode(digest).decode() if self.verifier("x").encoding == "hex" else digest.hex()
            return {name: prefix + encoded}, "right digest, wrong encoding"
        if how == "truncated":
            return {name: good[: draw(st.integers(0, len(good) - 1))]}, "truncated signature"
        if how == "duplicated":
            return duplicated(draw, name, good, self.verifier(secret + "x").sign(body))
        if how == "sha1":
            return {name: "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}, "sha1 signature"
        swapped = good.swapcase()
        return {name: swapped if swapped != good else good + "0"}, "signature with its case swapped"


class TelegramPostFuzz(PostFuzz):
    route = "POST /webhooks/telegram"
    header = "X-Telegram-Bot-Api-Secret-Token"
    auth_headers = (header.lower(),)

    def seeds(self, path: str) -> list[Any]:
        return event_seeds("telegram_") + demo_seeds("telegram")

    def sign(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        return {cased(draw, self.header): fuzz.secrets["TELEGRAM_SECRET_TOKEN"]}, "secret token"

    def forge(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        secret = fuzz.secrets["TELEGRAM_SECRET_TOKEN"]
        name = cased(draw, self.header)
        how = draw(st.sampled_from(["missing", "wrong", "near miss", "other secret", "duplicated", "padded"]))
        if how == "missing":
            return {}, "no secret token"
        if how == "wrong":
            return {name: draw(header_text)}, "random secret token"
        if how == "near miss":
            return {name: draw(st.sampled_from([secret[:-1], secret + "x", secret.upper(), "x" + secret[1:]]))}, "near-miss token"
        if how == "other secret":
            return {name: fuzz.secrets["LINE_CHANNEL_SECRET"]}, "another platform's secret"
        if how == "padded":
            return {name: draw(st.sampled_from([" ", "\t"])) + secret}, "token with leading whitespace"
        return duplicated(draw, name, secret, secret + "x")


GENERIC_SOURCES = {"trustpilot": "GENERIC_WEBHOOK_SECRET_TRUSTPILOT", "app-store": "GENERIC_WEBHOOK_SECRET_APP_STORE"}
INVALID_SOURCES = ["UPPER", "-dash-first", "_under", "a" * 41, "a b", "ü", "a.b", "..", "%2e%2e", "a;b", "trustpilot "]


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64 HMAC>`` over ``{id}.{timestamp}.{raw body}`` (the raw bytes, UTF-8 or not)."""
    from chalicelib.channels.generic.webhook import decode_secret

    mac = hmac.new(decode_secret(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class GenericPostFuzz(PostFuzz):
    route = "POST /webhooks/generic/{source}"
    auth_headers = ("webhook-id", "webhook-timestamp", "webhook-signature")

    def seeds(self, path: str) -> list[Any]:
        return event_seeds("generic_") + demo_seeds("generic/trustpilot")

    def path(self, draw: Draw, *, authenticated: bool) -> tuple[str, str]:
        if authenticated:
            source = draw(st.sampled_from(sorted(GENERIC_SOURCES)))
            return f"/webhooks/generic/{source}", source
        choice = draw(st.integers(0, 9))
        if choice < 7:
            source = draw(st.sampled_from(sorted(GENERIC_SOURCES)))
        elif choice < 8:
            source = draw(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,39}", fullmatch=True).filter(lambda s: s not in GENERIC_SOURCES))
        else:
            source = draw(st.sampled_from(INVALID_SOURCES) | st.text(
                alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="/?#%"), min_size=1, max_size=12))
        return f"/webhooks/generic/{source}", source

    @staticmethod
    def source(path: str) -> str:
        # The source the app is handed: chalice local parses the URL with urlparse, which
        # cuts ";params" off the last path segment ("a;b" -> "a"); API Gateway keeps them.
        return path.rsplit("/", 1)[1].split(";", 1)[0]

    def secrets(self, fuzz: FuzzApp, path: str) -> list[str]:
        name = GENERIC_SOURCES.get(self.source(path))
        return fuzz.secrets[name].split() if name else []

    def expected_status(self, path: str, body: bytes) -> int | None:
        from chalicelib.channels.generic.webhook import SOURCE_PATTERN

        source = self.source(path)
        if not source:
            return None  # "/webhooks/generic/;x" matches no route: the gateway's own 403
        if not SOURCE_PATTERN.fullmatch(source):
            return 400  # the slug is checked before anything else
        if source not in GENERIC_SOURCES:
            return None  # unconfigured: see KNOWN_BUGS["generic_unknown_source_503"]
        return super().expected_status(path, body)

    def sign(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        secret = draw(st.sampled_from(self.secrets(fuzz, path)))
        msg_id = draw(st.sampled_from(["msg_2Lh9", "evt-1", "1"]) | st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=40))
        timestamp = str(int(time.time()) + draw(st.integers(-240, 240)))
        signature = standard_signature(secret, msg_id, timestamp, body)
        extra = draw(st.sampled_from(["", "v1a,AAAA ", "v1,bm90LXRoaXM= ", "v2,x "]))
        return {
            cased(draw, "webhook-id"): msg_id,
            cased(draw, "webhook-timestamp"): timestamp,
            cased(draw, "webhook-signature"): extra + signature,
        }, f"Standard Webhooks signature ({'rotation: ' if len(self.secrets(fuzz, path)) > 1 else ''}{len(extra) and 'list' or 'one'})"

    def forge(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        secrets = self.secrets(fuzz, path) or [fuzz.secrets["GENERIC_WEBHOOK_SECRET_TRUSTPILOT"]]
        secret = draw(st.sampled_from(secrets))
        msg_id, now = "msg_fuzz", int(time.time())
        how = draw(st.sampled_from(["missing", "stale", "future", "bad timestamp", "other source", "random key",
                                    "other id", "other body", "malformed"]))
        timestamp = str(now)
        if how == "stale":
            timestamp = str(now - draw(st.integers(320, 10**9)))
        elif how == "future":
            timestamp = str(now + draw(st.integers(320, 10**11)))
        elif how == "bad timestamp":
            timestamp = draw(st.sampled_from([f"{now}.0", f"{now}e0", f" {now}x", "-5", f"0x{now:x}", "١٧٠٠٠٠٠٠٠٠", "",
                                              "9" * 13, f"{now},{now}", "NaN"]))
        headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp,
                   "webhook-signature": standard_signature(secret, msg_id, timestamp, body)}
        if how == "missing":
            for name in draw(st.lists(st.sampled_from(self.auth_headers), min_size=1, max_size=3, unique=True)):
                headers[name] = draw(st.sampled_from([None, ""]))  # type: ignore[assignment]
        elif how == "other source":
            others = [s for name, value in GENERIC_SOURCES.items() if name != self.source(path) for s in fuzz.secrets[value].split()]
            headers["webhook-signature"] = standard_signature(draw(st.sampled_from(others)), msg_id, timestamp, body)
        elif how == "random key":
            key = "whsec_" + base64.b64encode(draw(st.binary(min_size=24, max_size=40))).decode()
            headers["webhook-signature"] = standard_signature(key, msg_id, timestamp, body)
        elif how == "other id":
            headers["webhook-id"] = msg_id + draw(st.sampled_from(["x", " ", "\u00e9"]))
        elif how == "other body":
            headers["webhook-signature"] = standard_signature(secret, msg_id, timestamp, body + b" ")
        elif how == "malformed":
            good = headers["webhook-signature"]
            headers["webhook-signature"] = draw(st.sampled_from([
                "", "v1", "v1,", "v1,!!!", good.replace("v1,", "v2,"), good.replace("v1,", "v1a,"), good[3:],
                good.replace("v1,", "v1 ,"), good.replace(",", ",,"), good[:-4], f"{good},{good}", " ".join(["v1,AAAA"] * 500),
            ]) | header_text)
        sent = {cased(draw, k): v for k, v in headers.items() if v is not None}
        return sent, f"forged Standard Webhooks headers ({how})"


class GooglePostFuzz(PostFuzz):
    route = "POST /webhooks/google/reviews"
    auth_headers = ("authorization",)
    protect = ("name",)

    @property
    def limit(self) -> int:  # type: ignore[override]
        from chalicelib.channels.google.webhook import DEFAULT_MAX_BODY_BYTES

        return DEFAULT_MAX_BODY_BYTES  # the route's own limit, not MAX_BODY_BYTES

    def seeds(self, path: str) -> list[Any]:
        from local.google_sandbox import push_body

        names = ["accounts/1/locations/2/reviews/3", "accounts/a b/locations/ü/reviews/%41", "accounts/1/locations/2/reviews/..x"]
        return event_seeds("google_pubsub_") + [json.loads(push_body(n)) for n in names]

    def body(self, draw: Draw, path: str, *, kinds: list[str] | None = None) -> tuple[bytes, str]:
        if draw(st.integers(0, 2)) == 0:
            return draw(google_push_bodies())
        return super().body(draw, path, kinds=kinds)

    def sign(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER"]))
        return {cased(draw, "Authorization"): f"{scheme} {google_token(fuzz)}"}, "Google push token"

    def forge(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        from local.google_sandbox import mint_with

        box = fuzz.google
        how = draw(st.sampled_from(["missing", "scheme", "not a jwt", "unknown key", "same kid other key", "expired",
                                    "audience", "email", "unverified", "issuer", "alg none", "alg hs256", "no kid",
                                    "not yet valid"]))
        if how == "missing":
            return {}, "no Authorization header"
        if how == "scheme":
            return {"Authorization": draw(st.sampled_from([f"Basic {google_token(fuzz)}", google_token(fuzz), "Bearer", "Bearer  "]))}, "wrong scheme"
        if how == "not a jwt":
            return {"Authorization": "Bearer " + draw(st.sampled_from(["a.b.c", "...", "eyJ.eyJ.sig", "x" * 2000]) | header_text)}, "not a JWT"
        if how == "unknown key":
            token = mint_with(other_keys(fuzz)[0], box.audience, box.push_email)
        elif how == "same kid other key":
            token = mint_with(other_keys(fuzz)[1], box.audience, box.push_email)
        elif how == "expired":
            token = mint_with(box.signing_key, box.audience, box.push_email, issued_at=time.time() - 7300)
        elif how == "audience":
            token = mint_with(box.signing_key, draw(st.sampled_from(["https://elsewhere.example", box.audience + "/", ""])), box.push_email)
        elif how == "email":
            token = mint_with(box.signing_key, box.audience, draw(st.sampled_from(["attacker@gmail.com", box.push_email + ".evil.com"])))
        elif how == "unverified":
            token = mint_with(box.signing_key, box.audience, box.push_email, email_verified=draw(st.sampled_from([False, "true", 1, None])))
        elif how == "issuer":
            token = mint_with(box.signing_key, box.audience, box.push_email, issuer="https://evil.example")
        elif how == "not yet valid":
            token = mint_with(box.signing_key, box.audience, box.push_email, issued_at=time.time() + 7200)
        elif how == "alg none":
            claims = json.loads(_b64url_decode(google_token(fuzz).split(".")[1]))
            token = _b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": box.signing_key.kid}).encode()) + "." + _b64url(json.dumps(claims).encode()) + "."
        elif how == "alg hs256":
            token = hs256_with_public_key(fuzz)
        else:  # no usable kid: absent, empty, or not a string (the signature is the genuine one's)
            _header, claims, signature = google_token(fuzz).split(".")
            header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
            kid = draw(st.sampled_from(["absent", "", 7, None, ["sandbox-key-1"]]))
            if kid != "absent":
                header["kid"] = kid
            token = f"{_b64url(json.dumps(header).encode())}.{claims}.{signature}"
        return {cased(draw, "Authorization"): f"Bearer {token}"}, f"forged Google token ({how})"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_TOKENS: dict[str, tuple[float, str]] = {}


def google_token(fuzz: FuzzApp) -> str:
    """A genuine push token from the sandbox's key, minted again every 10 minutes."""
    key = fuzz.google.signing_key.kid
    minted = _TOKENS.get(key)
    if minted is None or time.time() - minted[0] > 600:
        minted = _TOKENS[key] = (time.time(), fuzz.google.mint_token())
    return minted[1]


@cache
def _other_keys(published_kid: str) -> tuple[Any, Any]:
    from local.google_sandbox import SigningKey

    return SigningKey(kid="fuzz-unpublished"), SigningKey(kid=published_kid)


def other_keys(fuzz: FuzzApp) -> tuple[Any, Any]:
    """A key Google never published, and another key reusing the published key's kid."""
    return _other_keys(fuzz.google.signing_key.kid)


def hs256_with_public_key(fuzz: FuzzApp) -> str:
    """The classic algorithm-confusion forgery: HS256 keyed with the RSA public key."""
    from cryptography.hazmat.primitives import serialization

    public = fuzz.google.signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": fuzz.google.signing_key.kid}).encode())
    claims = _b64url(json.dumps(json.loads(_b64url_decode(google_token(fuzz).split(".")[1]))).encode())
    mac = hmac.new(public, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64url(mac)}"


REVIEW_NAME_PARTS = st.sampled_from(["1", "117942735408512345678", "a b", "ü", "%41", "x..y", "..", "", "a/b"]) | st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="/?#"), min_size=1, max_size=10)


@st.composite
def google_push_bodies(draw: Draw) -> tuple[bytes, str]:
    """Pub/Sub push envelopes whose base64 ``data`` carries a (mutated) review notification."""
    account, location, review = draw(REVIEW_NAME_PARTS), draw(REVIEW_NAME_PARTS), draw(REVIEW_NAME_PARTS)
    name = f"accounts/{account}/locations/{location}/reviews/{review}"
    notification: Any = {"type": draw(st.sampled_from(["NEW_REVIEW", "UPDATED_REVIEW", "NEW_QUESTION", "", "new_review"])),
                         "location": name.rsplit("/reviews/", 1)[0], "review": name}
    label = "push"
    if draw(st.booleans()):
        notification, _deep, label = draw(mutated(notification))
        label = "push with " + label
    inner = json.dumps(notification).encode()
    how = draw(st.sampled_from(["base64", "base64", "urlsafe", "unpadded", "not base64", "not json", "deep", "spaces"]))
    if how == "urlsafe":
        data = base64.urlsafe_b64encode(inner).decode()
    elif how == "unpadded":
        data = base64.b64encode(inner).decode().rstrip("=")
    elif how == "not base64":
        data = draw(st.sampled_from(["%%%", "eyJ0eXBlIjoi", "====", "a"])) 
    elif how == "not json":
        data = base64.b64encode(draw(st.binary(max_size=40))).decode()
    elif how == "deep":
        data = base64.b64encode(deep_text(draw(st.sampled_from([990, 1000, 5000])), "dict").encode()).decode()
    elif how == "spaces":
        data = " " + base64.b64encode(inner).decode() + "\n"
    else:
        data = base64.b64encode(inner).decode()
    envelope: Any = {"message": {"attributes": {}, "data": data, "messageId": draw(st.sampled_from(["1", "118", ""]) | st.text(max_size=20)),
                                 "publishTime": draw(st.sampled_from(["2025-03-14T09:26:41.772Z", "2020-01-01T00:00:00Z", "not a time", "", "2099-01-01T00:00:00Z"]))},
                     "subscription": "projects/p/subscriptions/s"}
    if draw(st.integers(0, 3)) == 0:
        envelope, deep, more = draw(mutated(envelope, protect=("data",)))
        return encode(envelope, deep=deep), f"{label}; envelope {more}; data {how}"
    return encode(envelope), f"{label}; data {how}"


@st.composite
def review_resources(draw: Draw, name: str) -> dict[str, Any]:
    """What the Business Profile API answers for ``name``: a documented review, maybe mutated."""
    seed = draw(st.sampled_from(event_seeds("google_review_")))
    review = copy.deepcopy(seed)
    if draw(st.booleans()):
        review, _deep, _label = draw(mutated(seed, protect=("name",)))
        if not isinstance(review, dict):
            review = {"review": review}
    review["name"] = name
    return json.loads(json.dumps(review))


def seed_google_reviews(fuzz: FuzzApp, request: FuzzRequest) -> None:
    """Serve the review an authenticated push names, so no fetch ends in a (legitimate) 404 -> 503."""
    for name, review in request.expect.get("google_reviews", {}).items():
        fuzz.google.add_review_resource({**review, "name": name})


def google_review_name(body: bytes) -> str | None:
    """The review the app will fetch for this body, if any (the app's own parser decides)."""
    from chalicelib.errors import WebhookError
    from chalicelib.inbound.intake import parse_json_body
    from chalicelib.channels.google.webhook import parse_push

    try:
        notification = parse_push(parse_json_body(body))
    except (WebhookError, RecursionError, ValueError, TypeError, AttributeError, KeyError):
        return None
    return notification.review_name if notification else None


class PrivacyPostFuzz(PostFuzz):
    """Meta's data deletion callback: the credential is the ``signed_request`` inside the body.

    ``signed_request=<base64url HMAC-SHA256(app secret, encoded payload)>.<base64url JSON>``,
    as a form post (or ``{"signed_request": ...}`` JSON). A genuine request records a
    deletion request and deletes the user's items, then answers ``{url, confirmation_code}``.
    """

    route = "POST /privacy/meta/deletion"
    auth_headers = ()
    # Each genuine callback records a new request (a new confirmation code), by design.
    replay_adds_nothing = False

    def seeds(self, path: str) -> list[Any]:
        now = int(time.time())
        base = {"algorithm": "HMAC-SHA256", "expires": now + 3600, "issued_at": now}
        # user ids of the samples' authors, so some requests really delete something
        return [{**base, "user_id": user} for user in ("218471", "7001234567890123", "8001765432109876", "70014242")]

    @staticmethod
    def signed_request(payload_json: bytes, secret: str) -> str:
        encoded = _b64url(payload_json)
        return _b64url(hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()) + "." + encoded

    def build(self, draw: Draw, fuzz: FuzzApp, *, authenticated: bool, kinds: list[str] | None) -> FuzzRequest:
        secret = fuzz.secrets["META_APP_SECRET"]
        payload, payload_label = draw(hostile_body(self.seeds(self.route), 6000, kinds=kinds or ["sample", "mutated"]))
        label = f"signed payload: {payload_label}"
        value = self.signed_request(payload, secret)
        if not authenticated:
            how = draw(st.sampled_from(["other secret", "tampered", "algorithm", "garbage", "missing", "signature only",
                                        "hostile body", "padded payload", "three parts", "non-ascii"]))
            signature, encoded = value.split(".")
            if how == "other secret":
                value = self.signed_request(payload, draw(st.sampled_from([fuzz.secrets["META_VERIFY_TOKEN"], secret + "x", ""])))
            elif how == "tampered":
                value = f"{signature}.{_b64url(payload + b' ')}"
            elif how == "algorithm":
                doc = {**self.seeds(self.route)[0], "algorithm": draw(st.sampled_from(["HS256", "none", "", None, "hmac-sha1"]))}
                value = self.signed_request(json.dumps(doc).encode(), secret)
            elif how == "garbage":
                value = draw(header_text | st.sampled_from([".", "a.", ".b", "a.b", "!!.??"]))
            elif how == "missing":
                value = ""
            elif how == "signature only":
                value = signature
            elif how == "padded payload":
                value = f"{signature}.{encoded}="  # the HMAC covers the payload exactly as sent
            elif how == "three parts":
                value = f"{signature}.{encoded}.x"
            elif how == "non-ascii":
                value = f"{signature}.{encoded}\u00e9"
            label = f"forged signed_request ({how}); {payload_label}"
            if how == "hostile body":  # around a tampered signed_request: the body decides nothing here
                tampered = f"{signature}.{_b64url(payload + b' ')}"
                body, body_label = draw(hostile_body([{"signed_request": tampered}, {"signed_request": [tampered]}],
                                                     4 * FUZZ_MAX_BODY_BYTES))
                headers = base_headers(draw, protect=())
                return FuzzRequest("POST", "/privacy/meta/deletion", headers, body, route=self.route,
                                   label=f"hostile body ({body_label})")
        wrapper = draw(st.sampled_from(["form", "form", "form, no content type", "json", "form with extras"]))
        if wrapper == "json":
            body = json.dumps({"signed_request": value}).encode()
            content_type: str | None = draw(st.sampled_from(["application/json", "application/json; charset=utf-8"]))
        else:
            pairs = [("signed_request", value)]
            if wrapper == "form with extras":
                pairs += draw(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=20)), max_size=5))
            body = urllib.parse.urlencode(pairs).encode()
            content_type = None if wrapper.endswith("no content type") else "application/x-www-form-urlencoded"
        headers = {k: v for k, v in base_headers(draw, protect=()).items() if k.lower() != "content-type"}
        if content_type:
            headers[cased(draw, "Content-Type")] = content_type
        return FuzzRequest("POST", "/privacy/meta/deletion", headers, body, route=self.route, authenticated=authenticated,
                           label=f"{label}; {wrapper}")


class ZendeskEventPostFuzz(PostFuzz):
    """Zendesk trigger webhooks: base64 HMAC-SHA256 over timestamp + body, 5-minute window."""

    route = "POST /helpdesk/zendesk"
    auth_headers = ("x-zendesk-webhook-signature", "x-zendesk-webhook-signature-timestamp")
    limit = 1024 * 1024  # agent_events.MAX_BODY_BYTES: its own limit, comments carry up to 64 KB of text

    def seeds(self, path: str) -> list[Any]:
        comment = {"socialdesk_event": "agent_comment", "ticket_id": "12", "external_id": "messenger:dm:1:2",
                   "status": "open", "tags": "socialdesk messenger", "updated_at": "2026-11-25T10:00:00Z",
                   "comment_id": "9001", "author_id": "77", "author_email": "agent@example.com",
                   "author_name": "Agent", "comment": "Sorry about that, refund sent."}
        status = {"socialdesk_event": "ticket_status", "ticket_id": "12", "external_id": "messenger:dm:1:2",
                  "status": "solved", "tags": "socialdesk", "updated_at": "2026-11-25T10:00:00Z",
                  "author_id": "77", "author_email": "agent@example.com"}
        return [comment, status]

    def sign(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        from chalicelib.outbound.agent_events import signed_headers

        headers = signed_headers(fuzz.secrets["ZENDESK_WEBHOOK_SECRET"], body)
        headers.pop("Content-Type", None)
        return {cased(draw, k): v for k, v in headers.items()}, "zendesk signature"

    def forge(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        from chalicelib.outbound.agent_events import sign, signed_headers

        secret = fuzz.secrets["ZENDESK_WEBHOOK_SECRET"]
        headers = signed_headers(secret, body)
        headers.pop("Content-Type", None)
        how = draw(st.sampled_from(["missing", "wrong", "old timestamp", "other secret", "timestamp swapped"]))
        if how == "missing":
            headers.pop("X-Zendesk-Webhook-Signature", None)
        elif how == "wrong":
            headers["X-Zendesk-Webhook-Signature"] = draw(header_text)
        elif how == "old timestamp":  # a replay of a genuine delivery, ten minutes later
            stamp = "2020-01-01T00:00:00Z"
            headers.update({"X-Zendesk-Webhook-Signature-Timestamp": stamp,
                            "X-Zendesk-Webhook-Signature": sign(secret, stamp, body)})
        elif how == "other secret":
            headers["X-Zendesk-Webhook-Signature"] = sign(fuzz.secrets["META_APP_SECRET"],
                                                          headers["X-Zendesk-Webhook-Signature-Timestamp"], body)
        else:
            headers["X-Zendesk-Webhook-Signature-Timestamp"] = "2099-01-01T00:00:00Z"
        return headers, f"forged zendesk event ({how})"


class FreshdeskEventPostFuzz(PostFuzz):
    """Freshdesk automation webhooks: a shared token header (Freshdesk signs nothing)."""

    route = "POST /helpdesk/freshdesk"
    header = "X-Socialdesk-Token"
    auth_headers = (header.lower(),)

    def seeds(self, path: str) -> list[Any]:
        return [{"ticket_id": "12", "status": "Open", "tags": "socialdesk,sdc-0123456789abcdef01234567"},
                {"ticket_id": 12, "event": "reply_sent"}]

    def sign(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        return {cased(draw, self.header): fuzz.secrets["FRESHDESK_WEBHOOK_SECRET"]}, "socialdesk token"

    def forge(self, draw: Draw, fuzz: FuzzApp, path: str, body: bytes) -> tuple[dict[str, str], str]:
        secret = fuzz.secrets["FRESHDESK_WEBHOOK_SECRET"]
        how = draw(st.sampled_from(["missing", "wrong", "near miss", "other secret"]))
        if how == "missing":
            return {}, "no token"
        if how == "wrong":
            return {self.header: draw(header_text)}, "random token"
        if how == "near miss":
            return {self.header: draw(st.sampled_from([secret[:-1], secret + "x", secret.upper()]))}, "near-miss token"
        return {self.header: fuzz.secrets["ZENDESK_WEBHOOK_SECRET"]}, "another route's secret"


POST_FUZZ: dict[str, PostFuzz] = {
    fuzzer.route: fuzzer
    for fuzzer in [
        HmacPostFuzz("POST /webhooks/meta", "meta", "META_APP_SECRET", "meta_", "meta"),
        HmacPostFuzz("POST /webhooks/x", "x", "X_CONSUMER_SECRET", "x_", "x"),
        HmacPostFuzz("POST /webhooks/line", "line", "LINE_CHANNEL_SECRET", "line_", "line"),
        TelegramPostFuzz(),
        GenericPostFuzz(),
        GooglePostFuzz(),
        PrivacyPostFuzz(),
        ZendeskEventPostFuzz(),
        FreshdeskEventPostFuzz(),
    ]
}


@st.composite
def webhook_requests(draw: Draw, fuzz: FuzzApp, route: str, *, authenticated: bool,
                     kinds: list[str] | None = None) -> FuzzRequest:
    """One POST to ``route``: a hostile body, signed (``authenticated``) or forged."""
    request = POST_FUZZ[route].build(draw, fuzz, authenticated=authenticated, kinds=kinds)
    if route == GooglePostFuzz.route and authenticated:
        name = google_review_name(request.body)
        if name is not None:
            request.expect["google_reviews"] = {name: draw(review_resources(name))}
    return request


# --- per-route fuzzers: GET --------------------------------------------------------------


def query_of(draw: Draw, keys: list[str], good: dict[str, list[str]]) -> str:
    """A query string over ``keys``: right values, random ones, repeats, raw oddities."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=60))
    pairs = []
    for _ in range(draw(st.integers(0, 5))):
        key = draw(st.sampled_from(keys) | st.text(max_size=8))
        value = draw(st.sampled_from(good.get(key, [""]) + ["", " ", "%ff", "\u00e9", "x" * 3000]) | st.text(max_size=40))
        pairs.append((key, value))
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


def last_query_value(query: str, key: str) -> str | None:
    """What the gateway hands the app for ``key`` (the last value, as Chalice's MultiDict does)."""
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get(key)
    return values[-1] if values else None


@st.composite
def health_requests(draw: Draw, fuzz: FuzzApp) -> FuzzRequest:
    query = query_of(draw, ["verbose", "x"], {})
    headers = base_headers(draw, protect=(), get=True)
    request = FuzzRequest("GET", "/health" + (f"?{query}" if query else ""), headers, route="GET /health",
                          authenticated=True, label="health", expect_status=200)
    request.expect["json"] = {"ok": True, "service": "socialdesk"}
    return request


@st.composite
def meta_handshakes(draw: Draw, fuzz: FuzzApp) -> FuzzRequest:
    token = fuzz.secrets["META_VERIFY_TOKEN"]
    good = {"hub.mode": ["subscribe", "unsubscribe", "SUBSCRIBE"], "hub.verify_token": [token, token + "x", token.upper()],
            "hub.challenge": ["1158201444", "<b>x</b>", "\u00e9\u4e00"]}
    if draw(st.booleans()):  # what Meta sends (challenge and extras fuzzed), sometimes one value off
        pairs = [("hub.mode", "subscribe"), ("hub.verify_token", token), ("hub.challenge", draw(st.text(max_size=60)))]
        pairs += draw(st.lists(st.tuples(st.sampled_from(list(good)) | st.text(max_size=6), st.text(max_size=20)), max_size=2))
        pairs = draw(st.permutations(pairs))
        query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
    else:
        query = query_of(draw, list(good), good)
    mode, sent, challenge = (last_query_value(query, k) for k in good)
    ok = mode == "subscribe" and (sent or "") == token and bool(challenge)
    request = FuzzRequest("GET", "/webhooks/meta" + (f"?{query}" if query else ""), base_headers(draw, protect=(), get=True),
                          route="GET /webhooks/meta", authenticated=ok, label="Meta handshake",
                          expect_status=200 if ok else None)
    if ok:
        request.expect.update(content_type="text/plain", text=challenge)
    return request


@st.composite
def x_crc_checks(draw: Draw, fuzz: FuzzApp) -> FuzzRequest:
    if draw(st.booleans()):
        query = urllib.parse.urlencode({"crc_token": draw(st.text(max_size=80)), "nonce": "1"}, quote_via=urllib.parse.quote)
    else:
        query = query_of(draw, ["crc_token", "nonce"], {"crc_token": ["dGVzdA", "x" * 200]})
    token = last_query_value(query, "crc_token")
    request = FuzzRequest("GET", "/webhooks/x" + (f"?{query}" if query else ""), base_headers(draw, protect=(), get=True),
                          route="GET /webhooks/x", authenticated=True, label="X CRC check",
                          expect_status=200 if token else 400)
    if token:
        digest = hmac.new(fuzz.secrets["X_CONSUMER_SECRET"].encode(), token.encode(), hashlib.sha256).digest()
        request.expect["json"] = {"response_token": "sha256=" + base64.b64encode(digest).decode()}
    return request


@st.composite
def privacy_status_requests(draw: Draw, fuzz: FuzzApp) -> FuzzRequest:
    """The deletion status page: real codes (from accepted callbacks), well-shaped unknown ones, junk."""
    from chalicelib.privacy.deletion import valid_code

    choice = draw(st.integers(0, 3))
    if choice == 0 and fuzz.codes:
        code = draw(st.sampled_from(fuzz.codes))
    elif choice <= 1:
        code = draw(st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=64))
    else:
        code = draw(st.sampled_from(["x", "..", "PRIVACY#x", "' OR 1=1 --", "a" * 65, "%00", "REQUEST"]) | st.text(
            alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="/?#%"), min_size=1, max_size=80))
    accept = draw(st.sampled_from([None, "application/json", "text/html", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8", "*/*"]))
    headers = base_headers(draw, protect=("accept",), get=True)
    if accept:
        headers["Accept"] = accept
    known = code in fuzz.codes
    request = FuzzRequest("GET", f"/privacy/status/{code}", headers, route="GET /privacy/status/{code}",
                          authenticated=True, label=f"status of a {'known' if known else 'valid-looking' if valid_code(code) else 'junk'} code",
                          expect_status=None if known else 404)
    if accept and "text/html" in accept:
        request.expect["content_type"] = "text/html"
    return request


GET_FUZZ: dict[str, Callable[[FuzzApp], st.SearchStrategy[FuzzRequest]]] = {
    "GET /health": health_requests,
    "GET /webhooks/meta": meta_handshakes,
    "GET /webhooks/x": x_crc_checks,
    "GET /privacy/status/{code}": privacy_status_requests,
}


def get_expectations(request: FuzzRequest) -> Callable[[Answer], list[str]]:
    def check(answer: Answer) -> list[str]:
        problems = []
        if "text" in request.expect and answer.status == 200:
            if answer.body != request.expect["text"].encode():
                problems.append(f"the handshake echoed {answer.body[:100]!r}, not hub.challenge")
            if not answer.content_type.startswith("text/plain"):
                problems.append(f"the handshake answered {answer.content_type!r}, not text/plain")
        if "json" in request.expect and answer.status == 200 and _body_json(answer) != request.expect["json"]:
            problems.append(f"expected the body {request.expect['json']!r}")
        if answer.writes:
            problems.append("a GET wrote to the table")
        return problems

    return check


# --- tests -------------------------------------------------------------------------------

ROUTES = app_routes()
POST_ROUTES = [r for r in ROUTES if not r.startswith("GET ")]
GET_ROUTES = [r for r in ROUTES if r.startswith("GET ")]


def test_every_route_has_a_fuzz_strategy() -> None:
    """A new route must come with a fuzz strategy here (and stale ones must go)."""
    fuzzed = set(POST_FUZZ) | set(GET_FUZZ)
    assert not set(ROUTES) - fuzzed, f"routes without a fuzz strategy: {sorted(set(ROUTES) - fuzzed)}"
    assert not fuzzed - set(ROUTES), f"fuzz strategies for routes the app no longer has: {sorted(fuzzed - set(ROUTES))}"


def _post_fuzzer(route: str) -> PostFuzz:
    if route not in POST_FUZZ:
        pytest.fail(f"{route} has no fuzz strategy: add one to POST_FUZZ in tests/fuzz/test_routes_fuzz.py")
    return POST_FUZZ[route]


@pytest.mark.parametrize("route", POST_ROUTES)
@FUZZ_SETTINGS
@given(data=st.data())
def test_unauthenticated_requests_are_refused_and_store_nothing(fuzz_app: FuzzApp, route: str, data: st.DataObject) -> None:
    """Missing, forged, duplicated, stale signatures, with any body: a 4xx, and no write."""
    _post_fuzzer(route)
    run(fuzz_app, data.draw(webhook_requests(fuzz_app, route, authenticated=False)))


@pytest.mark.parametrize("route", POST_ROUTES)
@FUZZ_SETTINGS
@given(data=st.data())
def test_authenticated_garbage_is_a_4xx_not_a_5xx(fuzz_app: FuzzApp, route: str, data: st.DataObject) -> None:
    """Bodies we sign with the right secret, but which are garbage: never a 5xx."""
    _post_fuzzer(route)
    kinds = ["random_json", "truncated", "invalid_utf8", "deep", "bytes", "literal", "reencoded", "oversized"]
    run(fuzz_app, data.draw(webhook_requests(fuzz_app, route, authenticated=True, kinds=kinds)))


@pytest.mark.parametrize("route", POST_ROUTES)
@FUZZ_SETTINGS
@given(data=st.data())
def test_signed_samples_with_wrong_field_types(fuzz_app: FuzzApp, route: str, data: st.DataObject) -> None:
    """Documented payload shapes, signed, with fields of the wrong type or odd values: 2xx or 4xx."""
    _post_fuzzer(route)
    run(fuzz_app, data.draw(webhook_requests(fuzz_app, route, authenticated=True, kinds=["mutated", "mutated", "sample"])))


@pytest.mark.parametrize("route", POST_ROUTES)
@FUZZ_SETTINGS
@given(data=st.data())
def test_replayed_deliveries_store_nothing_new(fuzz_app: FuzzApp, route: str, data: st.DataObject) -> None:
    """A signed delivery sent twice: the second answer is 2xx/4xx too and adds no item."""
    fuzzer = _post_fuzzer(route)
    request = data.draw(webhook_requests(fuzz_app, route, authenticated=True, kinds=["sample", "mutated"]))
    first = run(fuzz_app, request)
    if not 200 <= first.status < 300:
        return
    before = fuzz_app.item_count()
    again = run(fuzz_app, request)
    after = fuzz_app.item_count()
    if fuzzer.replay_adds_nothing:
        assert after == before, f"the replay added {after - before} item(s)\n{request.describe()}\n{again.describe()}"
    if route == GenericPostFuzz.route:
        # The same delivery re-signed with a timestamp outside the 5-minute window.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in fuzzer.auth_headers}
        secret = fuzz_app.secrets[GENERIC_SOURCES[GenericPostFuzz.source(request.path)]].split()[0]
        stale = str(int(time.time()) - data.draw(st.integers(360, 10**8)))
        headers.update({"webhook-id": "msg_replayed", "webhook-timestamp": stale,
                        "webhook-signature": standard_signature(secret, "msg_replayed", stale, request.body)})
        replay = FuzzRequest("POST", request.path, headers, request.body, route=route, authenticated=False,
                             label="replayed outside the tolerance", expect_status=401)
        run(fuzz_app, replay)


@pytest.mark.parametrize("route", GET_ROUTES)
@FUZZ_SETTINGS
@given(data=st.data())
def test_get_routes_with_hostile_query_strings(fuzz_app: FuzzApp, route: str, data: st.DataObject) -> None:
    """Health, the Meta handshake and the X CRC check, with any query string and headers."""
    if route not in GET_FUZZ:
        pytest.fail(f"{route} has no fuzz strategy: add one to GET_FUZZ in tests/fuzz/test_routes_fuzz.py")
    request = data.draw(GET_FUZZ[route](fuzz_app))
    run(fuzz_app, request, extra=get_expectations(request))


def test_the_oracles_see_what_the_app_writes(fuzz_app: FuzzApp) -> None:
    """The write spy and the item count notice a genuine delivery (so "no write" means something)."""
    update = copy.deepcopy(event_seeds("telegram_private_text")[0])
    update["update_id"] = int(time.time() * 1000)
    update["message"]["message_id"] = update["update_id"]
    request = _signed(fuzz_app, TelegramPostFuzz.route, json.dumps(update).encode())
    answer = fuzz_app.send(request, count_items=True)
    assert answer.status == 200, answer.describe()
    assert answer.writes >= 1, "the app wrote through a client the spy does not wrap (see conftest.fuzz_app)"
    assert answer.items_after is not None and answer.items_before is not None
    assert answer.items_after > answer.items_before, answer.describe()
    assert fuzz_app.item_count() == fuzz_app.scan_count(), "moto's ItemCount and a scan disagree"


# --- regressions: bugs the fuzzing found, fixed -------------------------------------------


def _signed(fuzz: FuzzApp, route: str, body: bytes, path: str | None = None, **headers: str) -> FuzzRequest:
    fuzzer = POST_FUZZ[route]
    path = path or route.split(" ", 1)[1].replace("{source}", "trustpilot")
    if isinstance(fuzzer, GenericPostFuzz):
        now = str(int(time.time()))
        auth = {"webhook-id": "msg_1", "webhook-timestamp": now,
                "webhook-signature": standard_signature(fuzz.secrets["GENERIC_WEBHOOK_SECRET_TRUSTPILOT"], "msg_1", now, body)}
    elif isinstance(fuzzer, GooglePostFuzz):
        auth = {"Authorization": f"Bearer {google_token(fuzz)}"}
    elif isinstance(fuzzer, FreshdeskEventPostFuzz):
        auth = {fuzzer.header: fuzz.secrets["FRESHDESK_WEBHOOK_SECRET"]}
    elif isinstance(fuzzer, ZendeskEventPostFuzz):
        from chalicelib.outbound.agent_events import signed_headers

        auth = {k: v for k, v in signed_headers(fuzz.secrets["ZENDESK_WEBHOOK_SECRET"], body).items() if k != "Content-Type"}
    elif isinstance(fuzzer, TelegramPostFuzz):
        auth = {fuzzer.header: fuzz.secrets["TELEGRAM_SECRET_TOKEN"]}
    else:
        assert isinstance(fuzzer, HmacPostFuzz)
        auth = {fuzzer.header: fuzzer.verifier(fuzz.secrets[fuzzer.secret_name]).sign(body)}
    return FuzzRequest("POST", path, {"Content-Type": "application/json", **auth, **headers}, body, route=route,
                       authenticated=True, label="regression")


def _assert_contract(fuzz: FuzzApp, request: FuzzRequest) -> Answer:
    answer = fuzz.send(request, count_items=True)
    problems = contract_problems(request, answer)
    assert not problems, "; ".join(problems) + "\n" + request.describe() + "\n" + answer.describe()
    return answer


@pytest.mark.parametrize("route", [r for r in POST_ROUTES if r in POST_FUZZ and r != PrivacyPostFuzz.route])
def test_regression_deeply_nested_json_with_a_valid_signature(fuzz_app: FuzzApp, route: str) -> None:
    answer = _assert_contract(fuzz_app, _signed(fuzz_app, route, b"[" * 10000 + b"]" * 10000))
    assert answer.status == 400


@pytest.mark.parametrize(("route", "content_type"), [("POST /webhooks/meta", "application/xml"),
                                                     ("GET /health", "text/html")])
def test_regression_unsupported_content_type_gets_our_json_error(fuzz_app: FuzzApp, route: str, content_type: str) -> None:
    if route.startswith("POST"):
        # Signed by the platform's secret: the content type alone is no reason to refuse it.
        request = _signed(fuzz_app, route, json.dumps(event_seeds("meta_")[0]).encode())
    else:
        request = FuzzRequest("GET", "/health", route=route, authenticated=True, label="regression")
    request.headers["Content-Type"] = content_type
    _assert_contract(fuzz_app, request)


def test_regression_signed_comment_with_an_oversized_id(fuzz_app: FuzzApp) -> None:
    payload = {"object": "page", "entry": [{"id": "1", "time": 1700000000, "changes": [{"field": "feed", "value": {
        "from": {"id": "5", "name": "x"}, "post_id": "1_2", "comment_id": "c" * 2000, "parent_id": "1_2",
        "created_time": 1700000000, "item": "comment", "verb": "add", "message": "hi"}}]}]}
    _assert_contract(fuzz_app, _signed(fuzz_app, "POST /webhooks/meta", json.dumps(payload).encode()))


def test_regression_signed_message_over_the_dynamodb_item_limit(fuzz_app: FuzzApp, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.config import settings

    monkeypatch.delenv("MAX_BODY_BYTES")
    settings.cache_clear()
    try:
        payload = {"object": "page", "entry": [{"id": "1", "time": 1700000000, "changes": [{"field": "feed", "value": {
            "from": {"id": "5", "name": "x"}, "post_id": "1_2", "comment_id": "c-big", "parent_id": "1_2",
            "created_time": 1700000000, "item": "comment", "verb": "add", "message": "hi " * 200_000}}]}]}
        _assert_contract(fuzz_app, _signed(fuzz_app, "POST /webhooks/meta", json.dumps(payload).encode()))
    finally:
        monkeypatch.setenv("MAX_BODY_BYTES", str(FUZZ_MAX_BODY_BYTES))
        settings.cache_clear()


def test_regression_signed_status_whose_key_dynamodb_refuses(fuzz_app: FuzzApp) -> None:
    # A garbled phone_number_id makes the receipt's key too long for DynamoDB: the
    # receipt is quarantined with the reason (a retry would fail the same way), not 503.
    deep: Any = "x"
    for _ in range(300):
        deep = {"a": deep}
    body = _with("meta_whatsapp_status", ("entry", 0, "changes", 0, "value", "metadata", "phone_number_id"), deep)
    answer = _assert_contract(fuzz_app, _signed(fuzz_app, "POST /webhooks/meta", body))
    assert answer.status == 200 and json.loads(answer.body)["quarantined"] >= 1


def test_regression_unconfigured_generic_source(fuzz_app: FuzzApp) -> None:
    request = FuzzRequest("POST", "/webhooks/generic/nosuchsource", {"Content-Type": "application/json"}, b"{}",
                          route=GenericPostFuzz.route, label="regression")
    _assert_contract(fuzz_app, request)


@pytest.mark.parametrize("time_value", ["", "abc", {}, [None, 1]])
def test_regression_meta_entry_time_that_is_not_a_time(fuzz_app: FuzzApp, time_value: Any) -> None:
    payload = event_seeds("meta_instagram_comment")[0]
    payload = {**payload, "entry": [{**payload["entry"][0], "time": time_value}]}
    _assert_contract(fuzz_app, _signed(fuzz_app, "POST /webhooks/meta", json.dumps(payload).encode()))


def _with(name: str, path: tuple[Any, ...], value: Any) -> bytes:
    doc = copy.deepcopy(event_seeds(name)[0])
    return json.dumps(set_at(doc, path, value)).encode()


@pytest.mark.parametrize(("route", "sample", "path", "value"), [
    ("POST /webhooks/meta", "meta_messenger_message", ("entry", 0, "messaging", 0, "timestamp"), 1e300),
    ("POST /webhooks/meta", "meta_whatsapp_text", ("entry", 0, "changes", 0, "value", "messages", 0, "timestamp"), "1e300"),
    ("POST /webhooks/meta", "meta_page_feed_comment", ("entry", 0, "changes", 0, "value", "created_time"), 10**20),
    ("POST /webhooks/telegram", "telegram_private_text", ("message", "date"), 10**20),
    ("POST /webhooks/line", "line_text_user", ("events", 0, "timestamp"), 1e300),
    ("POST /webhooks/x", "x_dm_inbound", ("direct_message_events", 0, "created_timestamp"), "99999999999999999999"),
], ids=["meta-messenger", "meta-whatsapp", "meta-feed", "telegram", "line", "x-dm"])
def test_regression_epoch_out_of_range(fuzz_app: FuzzApp, route: str, sample: str, path: tuple[Any, ...], value: Any) -> None:
    _assert_contract(fuzz_app, _signed(fuzz_app, route, _with(sample, path, value)))


@pytest.mark.parametrize("encoding", ["json escape", "raw bytes"])
def test_regression_lone_surrogate_in_a_signed_message(fuzz_app: FuzzApp, encoding: str) -> None:
    body = _with("telegram_private_text", ("message", "text"), "broken \ud800 text")
    if encoding == "raw bytes":  # json.loads(bytes) decodes with 'surrogatepass'
        body = body.replace(b"\\ud800", b"\xed\xa0\x80")
    _assert_contract(fuzz_app, _signed(fuzz_app, "POST /webhooks/telegram", body))


@pytest.mark.parametrize("where", ["json body (unauthenticated)", "signed payload"])
def test_regression_deeply_nested_json_in_the_deletion_callback(fuzz_app: FuzzApp, where: str) -> None:
    if where == "signed payload":
        value = PrivacyPostFuzz.signed_request(b"[" * 3000 + b"]" * 3000, fuzz_app.secrets["META_APP_SECRET"])
        body, content_type, authenticated = urllib.parse.urlencode({"signed_request": value}).encode(), "application/x-www-form-urlencoded", True
    else:
        body, content_type, authenticated = b"[" * 10000 + b"]" * 10000, "application/json", False
    request = FuzzRequest("POST", "/privacy/meta/deletion", {"Content-Type": content_type}, body,
                          route=PrivacyPostFuzz.route, authenticated=authenticated, label="regression")
    _assert_contract(fuzz_app, request)
