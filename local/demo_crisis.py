"""``make demo``, the crisis part: 200 customers complain about the same outage at once, on
every platform; the bridge turns them into one Zendesk problem ticket with 200 incidents and
one alert, and the agent's one answer on the problem waits for a lead's approval once (the rules
file holds a crisis's public answers), then reaches each customer exactly once.

Runs against ``make run``'s stack with our Zendesk sandbox (a helpdesk the user named is
never sent a burst). Every step is checked, and its time printed.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from typing import Any

from local.crisis_burst import burst
from local.defaults import SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN
from local.demo_replies import PlatformSandboxes, http_json
from local.samples import encode, normalizer, sign

BURST_SIZE = 200
LINK_WAIT_SECONDS = 120.0
ANSWER_WAIT_SECONDS = 150.0  # the webhook sends for ~8 s; the schedule (every 60 s in make run) continues
HELD_WAIT_SECONDS = 30.0  # the sandbox delivers the comment's webhook in the background
ANSWER = "We found the bug in this morning's app update and rolled it back. Please update the app again; sorry for the trouble!"


def _zendesk(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    auth = base64.b64encode(f"{SANDBOX_ZENDESK_EMAIL}/token:{SANDBOX_ZENDESK_TOKEN}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Accept": "application/json", "Content-Type": "application/json"}
    return http_json(method, f"{url}{path}", body=json.dumps(body).encode() if body is not None else None, headers=headers)


def _alerts(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The crisis alerts recorded in the local table (an SNS topic in AWS)."""
    import boto3

    from chalicelib.crisis.tickets import CrisisAlerts
    from local.defaults import aws_environment

    env = aws_environment(state["moto_url"])
    client = boto3.client(
        "dynamodb",
        endpoint_url=state["moto_url"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    return CrisisAlerts(state["table_name"], client).recorded()


def _recipient(sandbox: str, entry: dict[str, Any]) -> str:
    """Who a send went to: the send's body without the answer's text."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not (isinstance(v, str) and ANSWER in v)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return f"{sandbox}:{json.dumps(strip(entry.get('body')), sort_keys=True)}"


def show_crisis(state: dict[str, Any], app_url: str, secrets: dict[str, str], platforms: PlatformSandboxes, run: str) -> bool:
    """Send the burst, check the problem, its incidents and the alert, answer once, check every customer got it once."""
    if state.get("helpdesk") != "zendesk" or "zendesk" not in state.get("sandboxes", ()):
        print("\nCrisis: skipped (it needs `make run`'s own Zendesk sandbox).")
        return True
    zendesk = state["helpdesk_url"].rstrip("/")
    deliveries = burst(f"9{run[-4:]}", BURST_SIZE)
    keys = [normalizer(route)(payload).messages[0].conversation_key for route, payload in deliveries]  # type: ignore[misc]
    print(f"\nCrisis: {BURST_SIZE} customers complain about the same outage at once on {len(Counter(k.split(':')[0] for k in keys))} platforms …")
    started = time.monotonic()
    for route, payload in deliveries:
        platforms.seed(route, payload)  # each customer's message exists on their platform
        body = encode(payload)
        status, _ = http_json("POST", f"{app_url}/webhooks/{route}", body=body, headers=sign(route, body, secrets))
        if status != 200:
            print(f"  ✗ POST /webhooks/{route} answered {status}")
            return False
    sent_in = time.monotonic() - started
    print(f"  {BURST_SIZE} webhooks answered 200 in {sent_in:.1f} s")

    wanted, problem_id, incidents = set(keys), None, 0
    deadline = time.monotonic() + LINK_WAIT_SECONDS
    while time.monotonic() < deadline:
        _status, listing = _zendesk(zendesk, "GET", "/api/v2/tickets.json")
        ours = [t for t in (listing or {}).get("tickets") or [] if t.get("external_id") in wanted]
        problems = Counter(t.get("problem_id") for t in ours if t.get("type") == "incident")
        if problems:
            problem_id, incidents = problems.most_common(1)[0]
        if len(ours) == BURST_SIZE and incidents == BURST_SIZE:
            break
        time.sleep(1.0)
    linked_in = time.monotonic() - started
    if problem_id is None:
        print(f"  ✗ no problem ticket after {linked_in:.0f} s ({len(ours)} of {BURST_SIZE} tickets opened)")
        return False
    _status, shown = _zendesk(zendesk, "GET", f"/api/v2/tickets/{problem_id}.json")
    problem = (shown or {}).get("ticket") or {}
    crisis_id = str(problem.get("external_id") or "").rsplit(":", 1)[-1]
    alerts = [a for a in _alerts(state) if a.get("crisis_id") == crisis_id]
    other_problems = {t.get("problem_id") for t in ours} - {problem_id}
    print(
        f"  {'✓' if incidents == BURST_SIZE and not other_problems else '✗'} one problem ticket #{problem_id} "
        f"(“{problem.get('subject')}”) with {incidents} of {BURST_SIZE} complaints linked as incidents, "
        f"{linked_in:.1f} s after the first webhook"
    )
    print(f"  {'✓' if len(alerts) == 1 else '✗'} {len(alerts)} alert for crisis {crisis_id}: {json.dumps(alerts[0]) if alerts else '-'}")

    seeded = [k for k in keys if k in platforms.seeded]
    before = {_recipient(s, e) for s, e in platforms.sent() if ANSWER in json.dumps(e.get("body"))}
    answered = time.monotonic()
    status, _ = http_json(
        "POST",
        f"{zendesk}/__sandbox/tickets/{problem_id}/agent_update",
        body=json.dumps({"comment": ANSWER, "public": True}).encode(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    print(f"  An agent answers the problem ticket once, publicly (sandbox agent_update → {status}) …")
    held = _held_note(zendesk, problem_id)
    print(f"  {'✓' if held else '✗'} the answer waits for a lead, once for every customer: {held or 'no note'}")
    status, _ = http_json(
        "POST",
        f"{zendesk}/__sandbox/tickets/{problem_id}/agent_update",
        body=json.dumps({"add_tags": ["socialdesk_approved"]}).encode(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    print(f"  A lead approves it: tag socialdesk_approved on the problem (sandbox agent_update → {status}) …")
    deadline = time.monotonic() + ANSWER_WAIT_SECONDS
    received: Counter[str] = Counter()
    while time.monotonic() < deadline:
        received = Counter(
            _recipient(s, e) for s, e in platforms.sent() if ANSWER in json.dumps(e.get("body")) and _recipient(s, e) not in before
        )
        if len(received) >= len(seeded):
            break
        time.sleep(2.0)
    doubled = sum(1 for n in received.values() if n > 1)
    per_platform = Counter(r.split(":", 1)[0] for r in received)
    notes = _count_notes(zendesk, problem_id, final=f"Sent {len(received):,} of {BURST_SIZE:,}")
    ok = len(received) == len(seeded) == BURST_SIZE and doubled == 0
    print(
        f"  {'✓' if ok else '✗'} {len(received)} of {BURST_SIZE} customers got the answer on their platform "
        f"({', '.join(f'{n} via the {p} sandbox' for p, n in sorted(per_platform.items()))}), {doubled} twice, "
        f"{time.monotonic() - answered:.1f} s after the answer"
    )
    print(f"  The problem ticket's running count: {notes[-1] if notes else '-'}")
    return ok and bool(held) and incidents == BURST_SIZE and len(alerts) == 1


def _count_notes(zendesk: str, problem_id: Any, *, final: str) -> list[str]:
    """The problem ticket's internal notes, once the running count reads ``final``: the last
    customer's answer arrives on its platform a moment before the fan-out writes its count."""
    deadline = time.monotonic() + HELD_WAIT_SECONDS
    while True:
        _status, comments = _zendesk(zendesk, "GET", f"/api/v2/tickets/{problem_id}/comments.json")
        notes = [c["body"] for c in (comments or {}).get("comments") or [] if not c.get("public")]
        if (notes and notes[-1].startswith(final)) or time.monotonic() > deadline:
            return notes
        time.sleep(1.0)


def _held_note(zendesk: str, problem_id: Any) -> str | None:
    """The problem ticket's "waiting for approval" note, once the comment's webhook has written it."""
    deadline = time.monotonic() + HELD_WAIT_SECONDS
    while time.monotonic() < deadline:
        _status, comments = _zendesk(zendesk, "GET", f"/api/v2/tickets/{problem_id}/comments.json")
        for comment in (comments or {}).get("comments") or []:
            if not comment.get("public") and str(comment.get("body")).startswith("Waiting for approval by a lead"):
                return str(comment["body"])
        time.sleep(0.5)
    return None
