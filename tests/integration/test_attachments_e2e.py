"""Customers' files reach the ticket: webhook in over HTTP, file downloaded from a local
media server, uploaded to the Zendesk sandbox, attached to the comment.

The media server (stdlib, 127.0.0.1) plays a platform CDN (an image, a file too big, an
expired link), Meta's Graph API for WhatsApp media ids and the Telegram Bot API
(``getFile`` and the file download). Every Zendesk exchange, uploads included, is checked
against Zendesk's OpenAPI document by the ``stack`` fixture.

(Named ``..._e2e`` because ``tests/unit/test_attachments.py`` exists: test directories
have no ``__init__.py``, so two test modules may not share a base name.)
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import Stack

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 40 + b"\xff\xd9"
TELEGRAM_TOKEN = "7012345678:AAlocal-telegram-bot-token"
WHATSAPP_TOKEN = "local-whatsapp-access-token"
MAX_BYTES = 64 * 1024


@dataclass
class MediaServer:
    """path -> (status, headers, body); every request is remembered with its headers."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def serve(self, path: str, body: bytes, content_type: str = "application/octet-stream", status: int = 200,
              **headers: str) -> str:
        self.routes[path] = (status, {"Content-Type": content_type, **headers}, body)
        return self.url + path

    def serve_json(self, path: str, payload: Any, status: int = 200) -> str:
        return self.serve(path, json.dumps(payload).encode(), "application/json", status)


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def media() -> Iterator[MediaServer]:
    state = MediaServer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            state.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            status, headers, body = state.routes.get(urlsplit(self.path).path, (404, {"Content-Type": "text/plain"}, b"no"))
            if status == 200 and "Authorization-Required" in headers:
                expected = headers["Authorization-Required"]
                if self.headers.get("Authorization") != expected:
                    status, body = 401, b'{"error": {"message": "Invalid OAuth access token.", "code": 190}}'
            self.send_response(status)
            for name, value in headers.items():
                if name != "Authorization-Required":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = _Quiet(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def files_stack(stack: Stack, media: MediaServer) -> Stack:
    """The e2e stack with a sync that fetches attachments from the media server."""
    from chalicelib import wiring
    from chalicelib.sync.attachments import AttachmentFetcher
    from chalicelib.sync.tickets import TicketSync

    tokens = {"WHATSAPP_ACCESS_TOKEN": WHATSAPP_TOKEN, "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN}
    fetcher = AttachmentFetcher(
        tokens.get,
        max_file_bytes=MAX_BYTES,
        allow_localhost=True,  # ATTACHMENT_ALLOW_LOCALHOST: the media server is on 127.0.0.1
        api_urls={name: media.url for name in ("META_GRAPH_URL", "TELEGRAM_API_URL", "LINE_DATA_API_URL")},
        timeout=(1.0, 3.0),
    )
    wiring.override(
        "sync",
        TicketSync(wiring.message_store(), wiring.helpdesk(), wiring.dead_letters(), sleep=stack.sleeps.append, fetcher=fetcher),
    )
    return stack


# --- webhook payloads -------------------------------------------------------------------------


def messenger(mid: str, psid: str, text: str, *attachments: tuple[str, str], t: int | None = None) -> dict[str, Any]:
    from local.samples import PAGE_ID

    t = t or int(time.time())
    message: dict[str, Any] = {"mid": mid, "text": text} if text else {"mid": mid}
    message["attachments"] = [{"type": kind, "payload": {"url": url}} for kind, url in attachments]
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": t * 1000, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": t * 1000, "message": message}]}]}


def whatsapp_image(mid: str, wa_id: str, media_id: str, caption: str) -> dict[str, Any]:
    from local.samples import WA_PHONE_NUMBER_ID

    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Priya Shah"}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": mid, "timestamp": str(int(time.time())), "type": "image",
                      "image": {"id": media_id, "mime_type": "image/jpeg", "sha256": "x", "caption": caption}}]}}]}]}


def telegram_photo(update_id: int, chat: int, file_id: str, caption: str) -> dict[str, Any]:
    user = {"id": chat, "is_bot": False, "first_name": "Kenji", "username": "kenji_s"}
    return {"update_id": update_id, "message": {
        "message_id": 31, "from": user, "chat": {"id": chat, "first_name": "Kenji", "type": "private"},
        "date": int(time.time()), "caption": caption,
        "photo": [{"file_id": file_id + "-small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 900},
                  {"file_id": file_id, "file_unique_id": "b", "width": 1280, "height": 960, "file_size": len(JPEG)}]}}


# --- helpers ----------------------------------------------------------------------------------


def only_ticket(stack: Stack) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    [ticket] = stack.tickets()
    return ticket, stack.sandbox.comments(ticket["id"])


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def upload_calls(stack: Stack) -> int:
    return stack.sandbox.stats()["requests"].get("POST /api/v2/uploads", 0)


# --- tests ------------------------------------------------------------------------------------


def test_an_image_in_a_messenger_chat_is_attached_to_the_ticket(files_stack: Stack, media: MediaServer) -> None:
    url = media.serve("/v/t1.15752-9/4412_n.jpg", JPEG, "image/jpeg")
    answer = files_stack.post_webhook("meta", messenger("m_att_1", "8800001", "The box arrived crushed", ("image", url + "?_nc_oh=x")))
    assert answer.status == 200
    files_stack.sync()

    ticket, [comment] = only_ticket(files_stack)
    assert comment["body"].startswith("The box arrived crushed")
    assert "⚠" not in comment["body"] and media.url not in comment["body"]  # the expiring CDN link is not needed
    [attachment] = comment["attachments"]
    assert (attachment["file_name"], attachment["content_type"], attachment["size"]) == ("4412_n.jpg", "image/jpeg", len(JPEG))
    assert download(attachment["content_url"]) == JPEG
    assert upload_calls(files_stack) == 1
    assert all(upload["used"] for upload in files_stack.sandbox.uploads().values())
    # the upload went through the fixture's spec check like every other Zendesk call
    [upload] = [e for e in files_stack.exchanges if urlsplit(e.url).path == "/api/v2/uploads"]
    assert upload.request_body == JPEG and upload.request_headers["Content-Type"] == "image/jpeg"
    assert urlsplit(upload.url).query == "filename=4412_n.jpg"


def test_a_too_big_file_is_noted_and_the_text_still_arrives(files_stack: Stack, media: MediaServer) -> None:
    big = media.serve("/video/clip.mp4", b"\x00" * (MAX_BYTES * 3), "video/mp4")
    small = media.serve("/img/ok.jpg", JPEG, "image/jpeg")
    files_stack.post_webhook("meta", messenger("m_att_2", "8800002", "Here is the video of the noise", ("video", big), ("image", small)))
    files_stack.sync()

    _, [comment] = only_ticket(files_stack)
    lines = comment["body"].splitlines()
    assert lines[0] == "Here is the video of the noise"
    assert any(
        line.startswith("⚠ The customer's video could not be attached: it is too large (192 KB; the limit is 64 KB)")
        for line in lines
    )
    assert [a["file_name"] for a in comment["attachments"]] == ["ok.jpg"]


def test_an_expired_link_becomes_a_note(files_stack: Stack, media: MediaServer) -> None:
    expired = media.serve("/v/old.jpg", b"URL signature expired", "text/plain", status=403)
    files_stack.post_webhook("meta", messenger("m_att_3", "8800003", "", ("image", expired)))
    files_stack.sync()

    _, [comment] = only_ticket(files_stack)
    assert comment["body"].startswith("(no text)")
    assert "⚠ The customer's image could not be attached: the link had expired (HTTP 403)." in comment["body"]
    assert comment["attachments"] == []
    assert upload_calls(files_stack) == 0


def test_a_whatsapp_image_is_fetched_through_the_graph_media_id(files_stack: Stack, media: MediaServer) -> None:
    auth = {"Authorization-Required": f"Bearer {WHATSAPP_TOKEN}"}
    file_url = media.serve("/whatsapp_business/attachments/", JPEG, "image/jpeg", **auth)
    media.routes["/v23.0/1203948576"] = (200, {"Content-Type": "application/json", **auth}, json.dumps({
        "messaging_product": "whatsapp", "url": file_url + "?mid=1203948576&ext=1764000000&hash=ATs",
        "mime_type": "image/jpeg", "sha256": hashlib.sha256(JPEG).hexdigest(), "file_size": len(JPEG), "id": "1203948576",
    }).encode())
    files_stack.post_webhook("meta", whatsapp_image("wamid.ATT1", "16505550199", "1203948576", "the damaged seal"))
    files_stack.sync()

    _, [comment] = only_ticket(files_stack)
    assert comment["body"].startswith("the damaged seal")
    [attachment] = comment["attachments"]
    assert attachment["file_name"] == "whatsapp-image-1.jpg"
    assert download(attachment["content_url"]) == JPEG
    assert [path.split("?")[0] for path, _ in media.seen] == ["/v23.0/1203948576", "/whatsapp_business/attachments/"]


def test_a_telegram_photo_is_fetched_with_get_file(files_stack: Stack, media: MediaServer) -> None:
    media.serve_json(f"/bot{TELEGRAM_TOKEN}/getFile", {"ok": True, "result": {
        "file_id": "AgACAgQ", "file_unique_id": "b", "file_size": len(JPEG), "file_path": "photos/file_12.jpg"}})
    media.serve(f"/file/bot{TELEGRAM_TOKEN}/photos/file_12.jpg", JPEG, "image/jpeg")
    files_stack.post_webhook("telegram", telegram_photo(917001, 5501917, "AgACAgQ", "screen after the update"))
    files_stack.sync()

    _, [comment] = only_ticket(files_stack)
    assert comment["body"].startswith("screen after the update")
    [attachment] = comment["attachments"]
    assert (attachment["file_name"], download(attachment["content_url"])) == ("file_12.jpg", JPEG)
    assert "file_id=AgACAgQ" in media.seen[0][0]  # the largest size, not the thumbnail


def test_a_retried_ticket_creation_reuses_the_upload_tokens(files_stack: Stack, media: MediaServer) -> None:
    url = media.serve("/v/receipt.jpg", JPEG, "image/jpeg")
    # Zendesk creates the ticket, then the connection drops before the answer arrives.
    files_stack.sandbox.inject(match="POST /api/v2/tickets", drop=True, when="after", count=1)
    files_stack.post_webhook("meta", messenger("m_att_4", "8800004", "receipt attached", ("image", url)))
    files_stack.sync()

    ticket, [comment] = only_ticket(files_stack)
    assert [a["file_name"] for a in comment["attachments"]] == ["receipt.jpg"]
    assert upload_calls(files_stack) == 1  # uploaded once for the delivery, not once per attempt
    assert files_stack.sandbox.stats()["requests"]["POST /api/v2/tickets"] == 2
    creates = [e for e in files_stack.exchanges if e.method == "POST" and urlsplit(e.url).path == "/api/v2/tickets"]
    assert [e.status for e in creates] == [201]  # the retry was answered from the idempotency record
    assert creates[0].response_headers.get("x-idempotency-lookup") == "hit"
    assert not any(b"IdempotentRequestError" in (e.response_body or b"") for e in files_stack.exchanges)
    assert files_stack.parked_in_queue() == 0


def test_a_redrive_after_a_creation_that_was_applied_does_not_open_a_second_ticket(files_stack: Stack, media: MediaServer) -> None:
    import app as lambda_app
    from local.defaults import SCHEDULED_EVENT

    url = media.serve("/v/scratch.jpg", JPEG, "image/jpeg")
    # Every attempt is applied (or answered from the key) but answered 500: the message is parked.
    files_stack.sandbox.inject(match="POST /api/v2/tickets", status=500, when="after", count=3)
    files_stack.post_webhook("meta", messenger("m_att_5", "8800005", "scratch on the screen", ("image", url)))
    files_stack.sync()
    assert files_stack.parked_in_queue() == 1
    assert len(files_stack.tickets()) == 1 and upload_calls(files_stack) == 1

    # The redrive is a new delivery: it would upload again (new tokens, so a new body for
    # the same key); it looks for the ticket first and finds the message already there.
    lambda_app.redrive_parked(SCHEDULED_EVENT, None)
    ticket, [comment] = only_ticket(files_stack)
    assert [a["file_name"] for a in comment["attachments"]] == ["scratch.jpg"]
    assert files_stack.parked_in_queue() == 0
    assert upload_calls(files_stack) == 1
    assert not any(b"IdempotentRequestError" in (e.response_body or b"") for e in files_stack.exchanges)

    # a follow-up message in the same chat is a comment on that ticket, with its own file
    second = media.serve("/v/second.jpg", JPEG[::-1], "image/jpeg")
    files_stack.post_webhook("meta", messenger("m_att_6", "8800005", "and another angle", ("image", second), t=int(time.time()) + 5))
    files_stack.sync()
    ticket, comments = only_ticket(files_stack)
    assert [c["attachments"][0]["file_name"] for c in comments] == ["scratch.jpg", "second.jpg"]
    assert download(comments[1]["attachments"][0]["content_url"]) == JPEG[::-1]


def test_sandbox_uploads_follow_zendesk_rules_and_its_spec(contract: Any) -> None:
    """Upload tokens: attach once, expire, unknown ones refused -- every answer spec-valid."""
    from chalicelib.sync.attachments import FileToAttach
    from chalicelib.helpdesks.base import HelpdeskRejected
    from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk
    from chalicelib.models import Attachment, Author, Direction, Kind, Platform, SocialMessage
    from local.zendesk_sandbox import ZendeskSandbox
    from tests.support.openapi import ContractRecorder

    recorder = ContractRecorder(contract=contract)
    with ZendeskSandbox(email="a@sandbox.test", api_token="tok") as sandbox:
        helpdesk = ZendeskHelpdesk(sandbox.url, "a@sandbox.test", "tok", observer=recorder)
        msg = SocialMessage(
            platform=Platform.MESSENGER, kind=Kind.DIRECT_MESSAGE, direction=Direction.INBOUND, message_id="m_sb_1",
            conversation_key="messenger:dm:p:c", account_id="p", author=Author(platform_id="c"), text="photo",
            created_at=time.time(), attachments=(Attachment(type="image", url="https://cdn.example/a.jpg"),),
        )
        requester = helpdesk.ensure_requester(Platform.MESSENGER, msg.author)
        [token] = helpdesk.upload([FileToAttach("a.jpg", "image/jpeg", JPEG)])
        ticket = helpdesk.open_ticket(msg, requester, idempotency_key="k-1", uploads=[token])
        helpdesk._call("GET", f"/api/v2/tickets/{ticket.ticket_id}/comments", writes_message=False)  # spec-checked listing
        [comment] = sandbox.comments(ticket.ticket_id)
        assert sandbox.attachment_content(comment["attachments"][0]["content_url"]) == (JPEG, "image/jpeg")

        for tokens in ([token], ["no-such-token"]):  # used up, unknown
            with pytest.raises(HelpdeskRejected, match="422"):
                helpdesk.append_message(ticket.ticket_id, msg, requester, uploads=tokens)
        [fresh] = helpdesk.upload([FileToAttach("b.jpg", "image/jpeg", JPEG)])
        sandbox.expire_uploads()
        with pytest.raises(HelpdeskRejected, match="invalid or has expired"):
            helpdesk.append_message(ticket.ticket_id, msg, requester, uploads=[fresh])
        assert len(sandbox.comments(ticket.ticket_id)) == 1
    assert "POST /api/v2/uploads" in recorder.operations()
    recorder.assert_all_valid()
