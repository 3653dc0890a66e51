"""`make demo`'s triage part: three messages the rules file decides about, and what the
helpdesk shows for each.

`make run` uses ``LOCAL_RULES`` (the follow-the-sun example) unless ``TRIAGE_RULES_PATH``
names another file. The demo sends: an angry public X post from an author with 182,000
followers (urgent, the English group open now, the SLA tag of a public X post), a comment
that only tags friends (stored as noise, no ticket) and a Spanish complaint in an Instagram
DM (the Spanish-speaking group). Then it reads the tickets back and prints what they got.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chalicelib.models import SocialMessage
from chalicelib.triage.rules import RULES_DIR, Triage, load_rules
from local.samples import IG_ACCOUNT_ID, X_BRAND_ID, normalizer

LOCAL_RULES = RULES_DIR / "examples" / "follow-the-sun.json"
# Freshdesk answers priorities as numbers.
FRESHDESK_PRIORITIES = {1: "low", 2: "normal", 3: "high", 4: "urgent"}


def rules_path() -> Path:
    """The rules `make run` gives the sync (the same default as ``local.run``)."""
    return Path(os.environ.get("TRIAGE_RULES_PATH") or LOCAL_RULES)


@dataclass(frozen=True)
class TriageCase:
    """One demo message: what it is, its delivery, and what the rules should make of it."""

    label: str
    route: str
    payload: dict[str, Any]
    noise: bool = False

    @property
    def message(self) -> SocialMessage:
        batch = normalizer(self.route)(self.payload)  # type: ignore[misc]  (both routes have a channel)
        return batch.messages[0]


def triage_cases(run: str) -> list[TriageCase]:
    """The three deliveries (unique per ``run``); the noise first, so it is decided before the rest."""
    now = int(time.time())
    tags_only = {"object": "instagram", "entry": [{"id": IG_ACCOUNT_ID, "time": now, "changes": [{"field": "comments", "value": {
        "from": {"id": f"8005{run}", "username": "sam.tags"}, "media": {"id": f"1795{run}", "media_product_type": "FEED"},
        "id": f"1796{run}", "text": "@amigo.uno @amiga.dos 👀"}}]}]}  # fmt: skip
    critic = {"id_str": f"3009{run}", "screen_name": "travel_critic", "name": "Rae Critic", "followers_count": 182_000}
    angry = {"for_user_id": X_BRAND_ID, "tweet_create_events": [{
        "created_at": time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime()), "id_str": f"18{run}09",
        "text": "@acme_support Absolutely disgraceful. Six hours on hold, no rebooking, nobody answers. Worst airline ever.",
        "user": critic, "in_reply_to_status_id_str": None, "in_reply_to_user_id_str": None,
        "entities": {"user_mentions": [{"id_str": X_BRAND_ID, "screen_name": "acme_support"}]}}]}  # fmt: skip
    spanish = {"object": "instagram", "entry": [{"id": IG_ACCOUNT_ID, "time": now * 1000, "messaging": [{
        "sender": {"id": f"8006{run}"}, "recipient": {"id": IG_ACCOUNT_ID}, "timestamp": now * 1000,
        "message": {"mid": f"aWdfZAG9{run}", "text": "Mi pedido llegó roto y nadie me responde. Es una vergüenza."}}]}]}  # fmt: skip
    return [
        TriageCase("tag-only Instagram comment", "meta", tags_only, noise=True),
        TriageCase("angry public X post, 182k followers", "x", angry),
        TriageCase("Spanish complaint, Instagram DM", "meta", spanish),
    ]


def _priority(ticket: dict[str, Any]) -> str | None:
    value = ticket.get("priority")
    return FRESHDESK_PRIORITIES.get(value) if isinstance(value, int) else value


def show_triage(cases: list[TriageCase], tickets: dict[str, dict[str, Any]], find: Callable[[str], Any]) -> bool:
    """Print what each case became next to what the rules say now; False on a mismatch."""
    path = rules_path()
    rules = Triage(load_rules(path))
    moment = datetime.now(timezone.utc)
    groups = {str(g.group_id): g.name for g in rules.rules.routing.groups if g.group_id}
    print(f"\nTriage ({path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}):")
    ok = True
    for case in cases:
        message = case.message
        key = message.conversation_key
        if case.noise:
            stored_only = key not in tickets and find(key) is None
            ok &= stored_only
            mark = "✓" if stored_only else "✗"
            print(f"  {mark} {case.label}: {'stored as noise, no ticket' if stored_only else 'opened a ticket'}")
            continue
        ticket = tickets.get(key)
        if ticket is None:
            ok = False
            print(f"  ✗ {case.label}: no ticket")
            continue
        wanted = rules.routing(message, rules.signals(message))
        group = str(ticket.get("group_id") or "")
        sla = next((t for t in ticket.get("tags", []) if t.startswith(rules.rules.sla.tag_prefix)), "no SLA tag")
        right = _priority(ticket) == wanted.priority and group == (wanted.group_id or "") and sla in wanted.tags
        ok &= right
        print(
            f"  {'✓' if right else '✗'} {case.label}: #{ticket['id']} {_priority(ticket)} · "
            f"group {groups.get(group, group or 'none')} · {sla}"
            + ("" if right else f"   (the rules say {wanted.priority} · group {wanted.group_id} at {moment:%H:%M} UTC)")
        )
    return ok
