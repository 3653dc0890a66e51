"""``make demo``: send signed sample webhooks to the running local stack, show the tickets,
then an agent answers each ticket and the answers reach the customers.

Run ``make run`` first, in another terminal. Every platform's samples are sent the
way the platform would send them (signed, compact JSON), one delivery is sent twice
as platforms do on retries, then the tickets that resulted are printed. Then
``local.demo_replies`` answers every ticket from the helpdesk and prints the note the
bridge wrote on it and where the answer landed on the platform's sandbox.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from typing import Any

from chalicelib.models import Direction
from chalicelib.sync.policy import TicketPolicy
from local.defaults import LOCAL_SECRETS, SANDBOX_FRESHDESK_API_KEY, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN, read_state, secret
from local.demo_approval import show_approval
from local.demo_crisis import show_crisis
from local.demo_replies import PlatformSandboxes, show_agent_replies
from local.demo_triage import show_triage, triage_cases
from local.demo_replies import http_json as _http
from local.samples import normalizer, X_BRAND_ID, all_samples, encode, sign

WAIT_SECONDS = 60.0
POLICY = TicketPolicy.from_env()  # praise is stored, not ticketed: expect tickets the way the sync decides


Found = tuple[dict[str, Any], list[str]]  # the ticket, and the first line of each of its messages
# Freshdesk answers a ticket's status as a number (Zendesk: a word).
FRESHDESK_STATUSES = {2: "Open", 3: "Pending", 4: "Resolved", 5: "Closed"}


def is_sandbox(state: dict[str, Any], part: str) -> bool:
    """Whether `make run` started ``part`` itself (it says so in its state; a URL on this
    machine may just as well be the user's own service)."""
    return part in state.get("sandboxes", ())


def _credential(name: str, sandbox_value: str, sandbox: bool) -> str:
    """Our sandbox's credential, or the user's for the helpdesk they named."""
    if sandbox:
        return sandbox_value
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"`make run` uses your helpdesk: set {name} for `make demo` too.")
    return value


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def _zendesk_lookup(url: str, *, sandbox: bool) -> Callable[[str], Found | None]:
    email = _credential("ZENDESK_EMAIL", SANDBOX_ZENDESK_EMAIL, sandbox)
    token = _credential("ZENDESK_API_TOKEN", SANDBOX_ZENDESK_TOKEN, sandbox)
    credentials = base64.b64encode(f"{email}/token:{token}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}", "Accept": "application/json"}

    def find(key: str) -> Found | None:
        query = urllib.parse.urlencode({"external_id": key})
        _, listing = _http("GET", f"{url}/api/v2/tickets.json?{query}", headers=headers)
        found = (listing or {}).get("tickets") or []
        if not found:
            return None
        ticket = found[-1]
        _, answer = _http("GET", f"{url}/api/v2/tickets/{ticket['id']}/comments.json", headers=headers)
        return ticket, [_first_line(c.get("body") or "") for c in (answer or {}).get("comments") or []]

    return find


def _freshdesk_lookup(url: str, *, sandbox: bool) -> Callable[[str], Found | None]:
    from chalicelib.helpdesks.freshdesk.adapter import conversation_tag

    api_key = _credential("FRESHDESK_API_KEY", SANDBOX_FRESHDESK_API_KEY, sandbox)
    headers = {"Authorization": "Basic " + base64.b64encode(f"{api_key}:X".encode()).decode(), "Accept": "application/json"}

    def find(key: str) -> Found | None:
        query = urllib.parse.urlencode({"query": f'"tag:\'{conversation_tag(key)}\'"'})
        _, answer = _http("GET", f"{url}/api/v2/search/tickets?{query}", headers=headers)
        found = (answer or {}).get("results") or []
        if not found:
            return None
        # Search results leave the description out: the ticket itself has it (the first message).
        _, ticket = _http("GET", f"{url}/api/v2/tickets/{max(t['id'] for t in found)}", headers=headers)
        if not isinstance(ticket, dict) or "id" not in ticket:
            return None
        _, notes = _http("GET", f"{url}/api/v2/tickets/{ticket['id']}/conversations", headers=headers)
        texts = [ticket.get("description_text") or ""] + [n.get("body_text") or "" for n in notes or [] if not n.get("private")]
        return ticket, [_first_line(text) for text in texts]

    return find


def describe_ticket(key: str, ticket: dict[str, Any], first_lines: list[str]) -> list[str]:
    """The lines `make demo` prints for one ticket: number, subject, status, tags, its messages."""
    status = ticket.get("status")
    shown = FRESHDESK_STATUSES.get(status, str(status)) if isinstance(status, int) else str(status)
    return [
        f"#{ticket['id']}  {ticket['subject']}",
        f"    status {shown} · tags {', '.join(ticket.get('tags', []))} · conversation {key}",
        *(f"    · {line}" for line in first_lines),
    ]


def expected_conversations(samples: list[tuple[str, dict[str, Any]]]) -> Counter[str]:
    """Inbound messages per conversation key, computed with the app's own normalizers."""
    expected: Counter[str] = Counter()
    for route, payload in samples:
        batch = normalizer(route)(payload)  # type: ignore[misc]  (every sample route has a channel)
        for message in batch.messages:
            if message.direction is Direction.INBOUND and POLICY.opens_ticket(message):
                expected[message.conversation_key] += 1
    return expected


def _send_google_review(state: dict[str, Any], app_url: str, run: str) -> str | None:
    """A 2-star Google review: the sandbox plays Google and hands back the signed Pub/Sub push."""
    google_url = state.get("google_url")
    if not google_url or not is_sandbox(state, "google"):
        return None  # a real Business Profile API: nothing to seed
    review = {"review_id": f"r{run}", "stars": 2, "reviewer": "Lea Brandt",
              "comment": "Waited 40 minutes for a table we had booked. Staff didn't care."}
    _, push = _http("POST", f"{google_url}/__sandbox/reviews", body=json.dumps(review).encode(),
                    headers={"Content-Type": "application/json"})
    status, answer = _http("POST", f"{app_url}/webhooks/google/reviews", body=push["push_body"].encode(),
                           headers=push["push_headers"])
    print(f"  POST /webhooks/google/reviews 2-star review          → {status} {json.dumps(answer)}")
    return f"google:review:accounts/1001/locations/2002/reviews/r{run}" if status == 200 else None


def _post_polled_mention(state: dict[str, Any], run: str) -> str | None:
    """A mention only the X poller can see (no webhook): it must still become a ticket."""
    x_api_url = state.get("x_api_url")
    if not x_api_url or not is_sandbox(state, "x"):
        return None
    author = f"4001{run}"
    mention = {"text": "@acme_support two weeks and still no refund for order 5521", "author_id": author,
               "username": "jo_polled", "name": "Jo Polled"}
    status, answer = _http("POST", f"{x_api_url}/__sandbox/mentions", body=json.dumps(mention).encode(),
                           headers={"Content-Type": "application/json"})
    print(f"  X API sandbox: a new mention, no webhook (the poller fetches it)  → {status}")
    return f"x:tweets:{X_BRAND_ID}:{author}" if status == 201 else None


def main() -> int:
    """Send the samples, wait for the sync, print the tickets."""
    state = read_state()
    app_url = state["app_url"]
    secrets = {name: secret(name) for name in LOCAL_SECRETS}
    run = str(int(time.time() * 10) % 10_000_000)
    samples = all_samples(run)

    platforms = PlatformSandboxes(state)

    print(f"Sending {len(samples) + 1} signed webhook deliveries to {app_url} …")
    deliveries = [*samples, samples[0]]  # the last one repeats the first, as a platform retry would
    answer: Any = None
    for route, payload in deliveries:
        platforms.seed(route, payload)  # the customer's message exists on the platform before its webhook
        body = encode(payload)
        status, answer = _http("POST", f"{app_url}/webhooks/{route}", body=body, headers=sign(route, body, secrets))
        what = next(iter(k for k in payload if k.endswith("_events") or k == "message"), payload.get("object") or payload.get("type", "events"))
        print(f"  POST /webhooks/{route:<8} {what:<26} → {status} {json.dumps(answer)}")
        if status != 200:
            print("The app refused a signed sample: is `make run` using the same secrets as `make demo`?", file=sys.stderr)
            return 1

    repeat_stored_once = isinstance(answer, dict) and answer.get("stored") == 0 and answer.get("duplicates", 0) > 0
    expected = expected_conversations(samples)
    cases = triage_cases(run)  # the rules file at work: local/demo_triage.py
    for case in cases:
        body = encode(case.payload)
        status, _ = _http("POST", f"{app_url}/webhooks/{case.route}", body=body, headers=sign(case.route, body, secrets))
        print(f"  POST /webhooks/{case.route:<8} {case.label:<40} → {status}")
        if not case.noise:
            expected[case.message.conversation_key] += 1
    polled = _post_polled_mention(state, run)
    review = _send_google_review(state, app_url, run)
    for key in (review, polled):
        if key:
            expected[key] += 1
    # The platforms know these customers, so their answers should go out.
    known = platforms.seeded | ({polled} if polled and "x" in platforms.urls else set())
    if review and "google" in platforms.urls:
        known.add(review)  # the review lives on the Google sandbox: its answer is the review's reply
    expect_sent = {key for key in known if key in expected}
    helpdesk_url = state["helpdesk_url"].rstrip("/")
    print(f"\nWaiting for {len(expected)} tickets ({sum(expected.values())} customer messages) in {helpdesk_url} …")
    kind = state.get("helpdesk") or "zendesk"
    find = (_freshdesk_lookup if kind == "freshdesk" else _zendesk_lookup)(helpdesk_url, sandbox=is_sandbox(state, kind))
    deadline = time.monotonic() + WAIT_SECONDS
    tickets: dict[str, dict[str, Any]] = {}
    comments: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        for key, count in expected.items():
            if key in tickets and len(comments.get(key, [])) >= count:
                continue
            found = find(key)
            if found:
                tickets[key], comments[key] = found
        if len(tickets) == len(expected) and all(len(comments[k]) >= n for k, n in expected.items()):
            break
        time.sleep(0.5)

    for key in expected:
        ticket = tickets.get(key)
        if not ticket:
            print(f"\n✗ no ticket yet for {key}")
            continue
        print("\n" + "\n".join(describe_ticket(key, ticket, comments.get(key, []))))
    missing = [k for k in expected if k not in tickets or len(comments.get(k, [])) < expected[k]]
    print(
        f"\n{len(tickets)} tickets for {len(expected)} conversations; "
        f"{'all messages arrived' if not missing else f'{len(missing)} conversation(s) still incomplete'}; "
        f"the repeated delivery {'was recognised and stored nothing' if repeat_stored_once else 'was NOT deduplicated'}."
    )
    triage_ok = show_triage(cases, tickets, find)
    replies_ok = show_agent_replies(state, tickets, platforms, expect_sent)
    angry = next(c for c in cases if c.route == "x")  # its public answer waits for a lead: local/demo_approval.py
    approval_ok = show_approval(state, tickets, platforms, angry.message.conversation_key, (angry.route, angry.payload))
    # The response-time report of what just happened (prints its path).
    from chalicelib.reporting.cli import main as write_report

    report_ok = write_report(["--local"]) == 0  # .run/report.html
    crisis_ok = show_crisis(state, app_url, secrets, platforms, run)  # 200 complaints, one problem, one answer: local/demo_crisis.py
    return 0 if not missing and triage_ok and replies_ok and approval_ok and report_ok and crisis_ok else 1


if __name__ == "__main__":
    sys.exit(main())
