"""``make demo``, second half: agents answer from the helpdesk, and the answers reach the customers.

Nothing here calls the app's code: it goes through the running ``make run`` stack over
HTTP, as the people and platforms involved would.

* **The platforms' side.** A reply needs the customer's message to exist on the platform
  (the Graph API refuses to answer a comment it does not know, Telegram a chat the bot is
  not in, ...). Before each sample webhook is sent, ``PlatformSandboxes.seed`` tells the
  platform's sandbox about the customer's message (``POST /__sandbox/...``), as if the
  customer had written it there; for LINE it also takes the reply token the platform would
  put in the webhook.
* **The agent.** With Zendesk, an agent answers in the web UI: the sandbox's
  ``/__sandbox/tickets/{id}/agent_update`` (Zendesk's API cannot do this: an update made
  through the API is by design ignored by socialdesk's trigger, which is how the bridge's
  own writes never come back as replies). The triggers ``make run`` installed
  (``ZendeskAdmin.ensure``) then POST their signed webhook, ids only, to
  ``/helpdesk/zendesk``, and the app reads the agent's comment through the API. With
  Freshdesk, ``make run`` creates no automation rule (Freshdesk's rules are set up by hand,
  see the README), so the demo sets the rule up in the sandbox first, then the agent
  replies in the sandbox's UI stand-in and the rule POSTs ``/helpdesk/freshdesk`` with the
  ``X-Socialdesk-Token`` header.
* **What the agent sees.** The internal note the bridge writes on the ticket ("Sent to the
  customer on ..." or why not, in plain words), and where the reply landed: the platform
  sandbox's ``GET /__sandbox/sent``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.helpdesks.freshdesk.events import REFERENCE_MARK, TOKEN_HEADER, event_body
from chalicelib.models import Direction, Kind, Platform, SocialMessage
from local.defaults import SANDBOX_FRESHDESK_API_KEY, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN, port, secret
from local.samples import normalizer

NOTE_WAIT_SECONDS = 30.0
SUCCESS_NOTE = "Sent to the customer on"  # how AgentReplies words a note for an answer that went out


def http_json(method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
              timeout: float = 15) -> tuple[int, Any]:
    """One request; (status, the JSON answer or its text). A refused connection is status 0."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        payload, status = exc.read(), exc.code
    except OSError as exc:  # nothing listens there (a sandbox `make run` did not start)
        return 0, str(exc)
    try:
        return status, json.loads(payload or b"null")
    except ValueError:
        return status, payload.decode(errors="replace")


def _post_json(url: str, data: dict[str, Any], headers: dict[str, str] | None = None, timeout: float = 15) -> tuple[int, Any]:
    return http_json("POST", url, body=json.dumps(data).encode(), headers={"Content-Type": "application/json", **(headers or {})},
                     timeout=timeout)


def _local(url: str | None) -> bool:
    return bool(url) and "127.0.0.1" in str(url)


# --- the platforms' side -------------------------------------------------------------------


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


class PlatformSandboxes:
    """The reply sandboxes ``make run`` started (``_start_reply_sandboxes``), found over HTTP.

    ``make run`` does not record their URLs in the state file, so they are found where it
    starts them: ``*_SANDBOX_PORT`` (same environment as ``make run``), unless the real API
    URL is configured. The X sandbox's URL is in the state file.
    """

    def __init__(self, state: dict[str, Any]) -> None:
        candidates = {
            "meta": None if os.environ.get("META_GRAPH_URL") else f"http://127.0.0.1:{port('META_SANDBOX_PORT')}",
            "telegram": None if os.environ.get("TELEGRAM_API_URL") else f"http://127.0.0.1:{port('TELEGRAM_SANDBOX_PORT')}",
            "line": None if os.environ.get("LINE_API_URL") else f"http://127.0.0.1:{port('LINE_SANDBOX_PORT')}",
            "x": state.get("x_api_url") if _local(state.get("x_api_url")) else None,
            "google": state.get("google_url") if "google" in state.get("sandboxes", ()) else None,
            "callback": None if os.environ.get("GENERIC_REPLY_URL_TRUSTPILOT") else f"http://127.0.0.1:{port('REPLY_CALLBACK_PORT')}",
        }
        # A sandbox answers GET /__sandbox/sent; anything else (a real API, nothing) is not seeded.
        self.urls: dict[str, str] = {
            name: url for name, url in candidates.items() if url and http_json("GET", f"{url}/__sandbox/sent", timeout=3)[0] == 200
        }
        self.seeded: set[str] = set()  # conversation keys the platform knows: their answers should go out
        self._seen: set[tuple[str, str]] = set()

    def missing(self) -> list[str]:
        """Sandboxes not found (their platforms' answers are not expected to go out)."""
        return [name for name in ("meta", "x", "telegram", "line", "google", "callback") if name not in self.urls]

    def _control(self, sandbox: str, control: str, /, **arguments: Any) -> Any:
        # Positional-only: the controls' own keyword arguments include "name".
        status, answer = _post_json(f"{self.urls[sandbox]}/__sandbox/{control}", arguments)
        if status not in (200, 201):
            raise RuntimeError(f"{sandbox} sandbox refused {control}: {status} {answer}")
        return (answer or {}).get("result")

    def seed(self, route: str, payload: dict[str, Any]) -> None:
        """Put the customer's side of one sample delivery on its platform, before its webhook is sent."""
        if route == "line" and "line" in self.urls:
            # LINE issues the reply token in the webhook event; the sample's own would be refused.
            for event in payload.get("events") or []:
                user = (event.get("source") or {}).get("userId")
                if user and event.get("replyToken") and ("line", event["replyToken"]) not in self._seen:
                    event["replyToken"] = self._control("line", "issue_reply_token", to=user)
                    self._seen.add(("line", event["replyToken"]))
        normalize = normalizer(route)
        if normalize is None:
            return
        for message in normalize(payload).messages:
            if message.direction is Direction.INBOUND and (message.platform.value, message.message_id) not in self._seen:
                self._seen.add((message.platform.value, message.message_id))
                if self._seed_message(message):
                    self.seeded.add(message.conversation_key)

    def _seed_message(self, m: SocialMessage) -> bool:
        """One customer message as its platform's sandbox holds it; False when there is nothing to seed."""
        who, when = m.author, _epoch(m.created_at)
        if m.platform is Platform.FACEBOOK and m.kind in (Kind.COMMENT, Kind.REPLY) and "meta" in self.urls and m.thread_id:
            parent = m.parent_id if m.parent_id and m.parent_id != m.thread_id else None
            self._control("meta", "add_post_comment", page_id=m.account_id, post_id=m.thread_id, text=m.text,
                          comment_id=m.message_id, from_id=who.platform_id, from_name=who.display_name,
                          created=when, parent_id=parent)
            return True
        if m.platform is Platform.INSTAGRAM and m.kind in (Kind.COMMENT, Kind.REPLY) and "meta" in self.urls and m.thread_id:
            parent = m.parent_id if m.parent_id and m.parent_id != m.thread_id else None
            self._control("meta", "add_ig_comment", ig_id=m.account_id, media_id=m.thread_id, text=m.text,
                          comment_id=m.message_id, from_id=who.platform_id, username=who.handle or "customer",
                          created=when, parent_id=parent)
            return True
        if m.platform in (Platform.MESSENGER, Platform.INSTAGRAM) and m.kind is Kind.DIRECT_MESSAGE and "meta" in self.urls:
            self._control("meta", "add_conversation_message", account_id=m.account_id, user_id=who.platform_id,
                          text=m.text, platform=m.platform.value, message_id=m.message_id, created=when)
            return True
        if m.platform is Platform.WHATSAPP and "meta" in self.urls:
            self._control("meta", "add_whatsapp_contact", phone_number_id=m.account_id, wa_id=who.platform_id,
                          last_inbound=when)
            return True
        if m.platform is Platform.X and "x" in self.urls:
            # The poller sees these too: the bridge stores a tweet or DM seen both ways once.
            profile = {"username": who.handle, "name": who.display_name, "created_ms": int(when * 1000)}
            if m.kind is Kind.DIRECT_MESSAGE:
                self._control("x", "add_dm", text=m.text, sender_id=who.platform_id, event_id=m.message_id, **profile)
            else:
                self._control("x", "add_mention", text=m.text, author_id=who.platform_id, tweet_id=m.message_id, **profile)
            return True
        if m.platform is Platform.TELEGRAM and "telegram" in self.urls:
            chat, _, number = m.message_id.rpartition(":")  # Telegram message ids are "<chat>:<number>"
            self._control("telegram", "add_chat", chat_id=int(chat), messages=[int(number)],
                          first_name=who.display_name or "Customer")
            return True
        if m.platform is Platform.LINE and "line" in self.urls:
            return True  # the reply token above made the user a recipient
        if m.platform is Platform.OTHER and m.source == "trustpilot" and "callback" in self.urls:
            return True  # its configuration names the reply callback `make run` started
        return False  # other reviews and sources: nothing of theirs lives in a sandbox

    def sent(self) -> list[tuple[str, dict[str, Any]]]:
        """Every reply the platform sandboxes accepted: (sandbox, entry)."""
        found = []
        for name, url in self.urls.items():
            status, answer = http_json("GET", f"{url}/__sandbox/sent", timeout=5)
            if status == 200:
                found += [(name, entry) for entry in (answer or {}).get("sent") or []]
        return found

    def landing(self, text: str) -> str | None:
        """Where the reply ``text`` landed, in a few words (None: on no sandbox)."""
        for sandbox, entry in self.sent():
            if _sent_text(sandbox, entry) == text:
                return _describe_landing(sandbox, entry)
        return None


def _sent_text(sandbox: str, entry: dict[str, Any]) -> str | None:
    body = entry.get("body") or {}
    if sandbox == "meta":
        message, text = body.get("message"), body.get("text")
        if isinstance(message, dict):
            return message.get("text")
        if isinstance(text, dict):  # WhatsApp
            return text.get("body")
        return message
    if sandbox == "line":
        return next((m.get("text") for m in body.get("messages") or []), None)
    if sandbox == "google":
        return body.get("comment")
    if sandbox == "callback":
        return (body.get("data") or {}).get("text")
    return body.get("text")  # X, Telegram


def _describe_landing(sandbox: str, entry: dict[str, Any]) -> str:
    body, answer = entry.get("body") or {}, entry.get("answer") or {}
    if sandbox == "meta":
        route = entry.get("route")
        if route == "send.comment":
            return f"Meta sandbox: Page comment {answer.get('id')} under comment {entry.get('object_id')}"
        if route == "send.ig_reply":
            return f"Meta sandbox: Instagram reply {answer.get('id')} under comment {entry.get('object_id')}"
        if body.get("messaging_product") == "whatsapp":
            message_id = ((answer.get("messages") or [{}])[0]).get("id")
            return f"Meta sandbox: WhatsApp message {message_id} to {body.get('to')}"
        recipient = body.get("recipient") or {}
        to = recipient.get("id") or f"the author of comment {recipient.get('comment_id') or recipient.get('post_id')}"
        return f"Meta sandbox: Send API message {answer.get('message_id')} to {to}"
    if sandbox == "x":
        if entry.get("kind") == "dm":
            return f"X sandbox: DM {entry.get('id')} to user {entry.get('participant_id')}"
        return f"X sandbox: post {entry.get('id')} replying to {(body.get('reply') or {}).get('in_reply_to_tweet_id')}"
    if sandbox == "telegram":
        quoted = (body.get("reply_parameters") or {}).get("message_id")
        return f"Telegram sandbox: message {entry.get('message_id')} in chat {entry.get('chat_id')}" + (
            f", quoting message {quoted}" if quoted else "")
    if sandbox == "google":
        replaced = " (replacing its earlier reply)" if entry.get("replaced") else ""
        return f"Google sandbox: the reply of review {entry.get('review')}{replaced}"
    if sandbox == "callback":
        return (f"Trustpilot reply callback: answer {entry.get('id')} to review {(body.get('data') or {}).get('in_reply_to')}, "
                f"signature verified, webhook-id {entry.get('webhook_id')}")
    message_id = ((entry.get("sentMessages") or [{}])[0]).get("id")
    return f"LINE sandbox: {entry.get('kind')} message {message_id} to {entry.get('to')}"


# --- the agent -------------------------------------------------------------------------------


@dataclass
class Answered:
    """One agent answer and what the helpdesk's webhook delivery to the app said."""

    ticket_id: int
    text: str
    marker: Any  # the agent's comment or conversation, to find the notes written after it
    status: int | None = None
    outcome: str = "no webhook"
    notes: list[str] = field(default_factory=list)
    landing: str | None = None


class ZendeskAgent:
    """A human agent answering in Zendesk's web UI (the sandbox plays the UI)."""

    how: tuple[str, ...] = (
        "an agent comments publicly in the web UI (sandbox: POST /__sandbox/tickets/<id>/agent_update;",
        "an update through Zendesk's API would not do: socialdesk's trigger skips those, so its own writes never",
        "come back as replies); the triggers `make run` installed POST signed webhooks to {app}/helpdesk/zendesk,",
        "carrying the ticket's id only: the app reads the agent's comment through Zendesk's API.",
    )

    def __init__(self, url: str, app_url: str) -> None:
        self.url, self.app_url = url, app_url
        email = os.environ.get("ZENDESK_EMAIL") or SANDBOX_ZENDESK_EMAIL
        token = os.environ.get("ZENDESK_API_TOKEN") or SANDBOX_ZENDESK_TOKEN
        self.headers = {"Authorization": "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode(),
                        "Accept": "application/json"}

    def prepare(self) -> str | None:
        """Nothing to set up: ``make run`` ran ``ZendeskAdmin.ensure``. A line saying so, or why not."""
        status, triggers = http_json("GET", f"{self.url}/api/v2/triggers.json", headers=self.headers)
        titles = [t.get("title", "") for t in (triggers or {}).get("triggers") or []] if status == 200 else []
        if not any(t.startswith("socialdesk:") for t in titles):
            return f"no socialdesk triggers in {self.url} (did `make run` set them up?)"
        return None

    def answer(self, ticket_id: int, text: str) -> Answered:
        """Post a public comment as the agent; the trigger's delivery to the app is sent before this returns."""
        status, answer = _post_json(f"{self.url}/__sandbox/tickets/{ticket_id}/agent_update",
                                    {"comment": text, "public": True}, timeout=60)
        answered = Answered(ticket_id, text, marker=text)
        deliveries = ((answer or {}).get("deliveries") or []) if status == 200 else []
        for delivery in deliveries:
            if '"agent_comment"' in delivery.get("body", ""):  # not the status trigger's
                response = delivery.get("response")
                answered.status = delivery.get("status")
                answered.outcome = response.get("outcome", "?") if isinstance(response, dict) else str(response)[:80]
        if status != 200:
            answered.outcome = f"the sandbox refused the comment: {status} {answer}"
        return answered

    def notes_after(self, answered: Answered) -> list[str]:
        """Internal notes written on the ticket after the agent's comment."""
        _, answer = http_json("GET", f"{self.url}/api/v2/tickets/{answered.ticket_id}/comments.json", headers=self.headers)
        comments = (answer or {}).get("comments") or []
        mine = [i for i, c in enumerate(comments) if c.get("public") and (c.get("body") or "").strip() == answered.text]
        if not mine:
            return []
        return [(c.get("body") or "").strip() for c in comments[mine[-1] + 1:] if not c.get("public")]


class FreshdeskAgent:
    """An agent replying in Freshdesk's UI, with socialdesk's automation rule in place (the sandbox plays both)."""

    how: tuple[str, ...] = (
        "`make run` sets up no automation rule (Freshdesk's are made by hand, see the README), so the demo creates",
        "it in the sandbox: reply sent / note added / status changed -> POST {app}/helpdesk/freshdesk with",
        "X-Socialdesk-Token. Then an agent replies in the UI (sandbox: POST /__sandbox/tickets/<id>/reply).",
    )

    def __init__(self, url: str, app_url: str) -> None:
        self.url, self.app_url = url, app_url
        api_key = os.environ.get("FRESHDESK_API_KEY") or SANDBOX_FRESHDESK_API_KEY
        self.headers = {"Authorization": "Basic " + base64.b64encode(f"{api_key}:X".encode()).decode(),
                        "Accept": "application/json"}

    def prepare(self) -> str | None:
        """The rule of the README: on reply sent, public note, status change -> the webhook with the shared token."""
        rule = {"url": f"{self.app_url}/helpdesk/freshdesk", "body": event_body(),
                "headers": {TOKEN_HEADER: secret("FRESHDESK_WEBHOOK_SECRET")},
                "events": ["reply_sent", "note_public", "note_private", "status"]}
        status, answer = _post_json(f"{self.url}/__sandbox/automation", rule)
        return None if status == 200 else f"the Freshdesk sandbox refused the automation rule: {status} {answer}"

    def answer(self, ticket_id: int, text: str) -> Answered:
        """Reply as the agent; the rule's webhook to the app is sent before this returns."""
        status, answer = _post_json(f"{self.url}/__sandbox/tickets/{ticket_id}/reply", {"body": text}, timeout=60)
        answer = answer if isinstance(answer, dict) else {}
        answered = Answered(ticket_id, text, marker=(answer.get("conversation") or {}).get("id"))
        delivery = answer.get("delivery")
        if status != 200:
            answered.outcome = f"the sandbox refused the reply: {status} {answer}"
        elif delivery:
            response = delivery.get("response")
            answered.status = delivery.get("status")
            answered.outcome = response.get("outcome", "?") if isinstance(response, dict) else str(response)[:80]
        return answered

    def notes_after(self, answered: Answered) -> list[str]:
        """Private notes added to the ticket after the agent's reply."""
        _, answer = http_json("GET", f"{self.url}/api/v2/tickets/{answered.ticket_id}/conversations", headers=self.headers)
        later = [c for c in answer or [] if isinstance(c, dict) and answered.marker is not None and c.get("id", 0) > answered.marker]
        return [(c.get("body_text") or "").strip() for c in later if c.get("private")]


# --- the whole second half --------------------------------------------------------------------

# What the agent writes, by (platform, scope of the conversation key); the case number keeps
# every answer distinct (X refuses a post with the same text twice).
ANSWERS: dict[tuple[str, str], str] = {
    ("facebook", "comment"): "Sorry about that! A replacement ships today.",
    ("facebook", "review"): "We're sorry about the wait. Please send us your order number.",
    ("messenger", "dm"): "We've refunded the second charge.",
    ("instagram", "comment"): "So sorry! A new one is on its way.",
    ("instagram", "dm"): "Yes, returns are free within 90 days.",
    ("whatsapp", "dm"): "Your refund was issued today.",
    ("x", "tweets"): "Sorry! A new voucher code is in your DMs.",
    ("x", "dm"): "Thanks, your booking is fixed.",
    ("telegram", "dm"): "Please update to 4.2.2, it fixes the logouts.",
    ("line", "dm"): "We've issued a new coupon: SPRING25.",
}
DEFAULT_ANSWER = "We're sorry. Our manager will call you today."


def answer_text(key: str, ticket_id: int) -> str:
    """What the agent writes on the ticket of conversation ``key``."""
    platform, _, rest = key.partition(":")
    scope = rest.split(":", 1)[0]
    return f"{ANSWERS.get((platform, scope), DEFAULT_ANSWER)} (case #{ticket_id})"


def _plain(note: str) -> str:
    """The note's words on one line, without the reference line the bridge adds for itself (Freshdesk)."""
    return " ".join(line.strip() for line in note.splitlines() if line.strip() and not line.startswith(REFERENCE_MARK))


def _label(ticket: dict[str, Any], key: str) -> str:
    found = re.match(r"\[([^\]]+)\]", ticket.get("subject") or "")
    return found.group(1) if found else key.split(":", 1)[0]


def show_agent_replies(state: dict[str, Any], tickets: dict[str, dict[str, Any]], platforms: PlatformSandboxes,
                       expect_sent: set[str]) -> bool:
    """Answer every ticket as an agent, wait for the bridge's notes, print them and where the replies landed.

    ``expect_sent``: conversations whose answer should reach the customer (the platform knows
    them). False when one of those shows no success note, or a ticket gets no note at all.
    """
    app_url, helpdesk_url = state["app_url"], state["helpdesk_url"].rstrip("/")
    freshdesk = state.get("helpdesk") == "freshdesk"
    name = "Freshdesk" if freshdesk else "Zendesk"
    if not _local(helpdesk_url):
        print(f"\nAgents' answers: skipped, {name} at {helpdesk_url} is a real account (answer a ticket there to see it).")
        return True
    agent: ZendeskAgent | FreshdeskAgent = (FreshdeskAgent if freshdesk else ZendeskAgent)(helpdesk_url, app_url)
    print(f"\nAgents answer from {name} ({helpdesk_url}):")
    for line in agent.how:
        print("  " + line.replace("{app}", app_url))
    if platforms.missing():
        print(f"  (no sandbox found for {', '.join(platforms.missing())}: answers there are shown as the bridge notes them)")
    problem = agent.prepare()
    if problem:
        print(f"✗ {problem}")
        return False

    answered = {key: agent.answer(int(ticket["id"]), answer_text(key, int(ticket["id"]))) for key, ticket in tickets.items()}

    def settled(key: str) -> bool:
        done = answered[key]
        if key in expect_sent:
            return any(n.startswith(SUCCESS_NOTE) for n in done.notes) and done.landing is not None
        return bool(done.notes)

    # The Zendesk and Freshdesk sandboxes deliver the webhook before they answer, so the notes
    # are usually there at once; a retried send would add its note later.
    deadline = time.monotonic() + NOTE_WAIT_SECONDS
    while True:
        for key, done in answered.items():
            if not settled(key):
                done.notes = agent.notes_after(done)
                if key in expect_sent or any(n.startswith(SUCCESS_NOTE) for n in done.notes):
                    done.landing = platforms.landing(done.text)
        if all(settled(k) for k in answered) or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    failed = 0
    for key, done in answered.items():
        ok = settled(key)
        failed += not ok
        webhook = f"webhook {done.status}: {done.outcome}" if done.status is not None else done.outcome
        print(f"\n#{done.ticket_id}  {_label(tickets[key], key)}  ← agent: \"{done.text}\"   [{webhook}]")
        for note in done.notes or ["(no note on the ticket)"]:
            mark = "✓" if note.startswith(SUCCESS_NOTE) else ("✗" if key in expect_sent or not done.notes else "·")
            print(f"    {mark} note: {_plain(note)}")
        if done.landing:
            print(f"    ✓ landed: {done.landing}")
        elif key in expect_sent:
            print("    ✗ landed: on no platform sandbox")
    sent = sum(any(n.startswith(SUCCESS_NOTE) for n in d.notes) for d in answered.values())
    print(
        f"\nAgents answered {len(answered)} tickets: {sent} answers reached the customer, "
        f"{len(answered) - sent} were not sent (the note says why); "
        f"{'every expected answer went out' if not failed else f'{failed} answer(s) did NOT turn out as expected'}."
    )
    return failed == 0
