"""Attachment fetching: limits, the address policy, file names and types, the notes agents
read, the comment text, the Zendesk upload request, and the sync's once-per-delivery
upload with its idempotency handling.

Downloads go to a tiny stdlib server on 127.0.0.1 (``allow_localhost=True``); the
private-address refusal is checked with an injected resolver, so no test needs DNS.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.sync.attachments import (
    AttachmentFetcher,
    FileToAttach,
    choose_content_type,
    choose_filename,
    human_size,
    is_file_attachment,
    problem_note,
)
from chalicelib.helpdesks.base import (
    Helpdesk,
    HelpdeskRejected,
    HelpdeskUnavailable,
    IdempotencyConflict,
    TicketRef,
)
from chalicelib.helpdesks.formatting import comment_body
from chalicelib.models import Attachment, Author, Direction, Kind, Platform, SocialMessage
from chalicelib.store import Conversation
from chalicelib.sync.tickets import Outcome, TicketSync, idempotency_key
from tests.support.memory_store import MemoryQueue, MemoryStore

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 300
KB = 1024


# --- a local media server -------------------------------------------------------------------


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class Media:
    """Routes: path -> (status, headers, body). ``stream_bytes``: a body sent in chunks, no length."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)
    url: str = ""


def _handler(media: Media) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            media.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
            path = urlsplit(self.path).path
            if path == "/endless":  # chunked, no Content-Length, far more than any limit
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                try:
                    for _ in range(4096):
                        chunk = b"v" * 16 * KB
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        sent += len(chunk)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client stopped reading: expected
                media.streamed.append(sent)
                self.close_connection = True
                return
            status, headers, body = media.routes.get(path, (404, {"Content-Type": "text/plain"}, b"not found"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that stops reading a body mid-way is what some tests do


@pytest.fixture
def media() -> Iterator[Media]:
    state = Media()
    server = QuietServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


SECRET_NAMES = {Platform.WHATSAPP: "WHATSAPP_ACCESS_TOKEN", Platform.TELEGRAM: "TELEGRAM_BOT_TOKEN",
                Platform.LINE: "LINE_CHANNEL_ACCESS_TOKEN"}
API_SETTINGS = {"meta_graph_url": "META_GRAPH_URL", "telegram_api_url": "TELEGRAM_API_URL",
                "line_data_api_url": "LINE_DATA_API_URL"}


def fetcher(**kwargs: Any) -> AttachmentFetcher:
    """A fetcher with ``tokens`` per platform and platform API URLs by keyword (``meta_graph_url``...)."""
    secrets = {SECRET_NAMES[platform]: token for platform, token in kwargs.pop("tokens", {}).items()}
    kwargs["api_urls"] = {API_SETTINGS[name]: kwargs.pop(name) for name in list(kwargs) if name in API_SETTINGS}
    kwargs.setdefault("allow_localhost", True)
    kwargs.setdefault("timeout", (1.0, 2.0))
    return AttachmentFetcher(secrets.get, **kwargs)


def message(*attachments: Attachment, platform: Platform = Platform.MESSENGER, permalink: str | None = None,
            text: str = "Look at this", message_id: str = "m1") -> SocialMessage:
    return SocialMessage(
        platform=platform,
        kind=Kind.COMMENT if permalink else Kind.DIRECT_MESSAGE,
        direction=Direction.INBOUND,
        message_id=message_id,
        conversation_key=f"{platform.value}:dm:page:cust",
        account_id="page",
        author=Author(platform_id="cust", display_name="Dana"),
        text=text,
        created_at=datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc),
        permalink=permalink,
        attachments=attachments,
    )


# --- downloads and limits ---------------------------------------------------------------------


def test_an_image_is_downloaded_with_its_type_and_a_sensible_name(media: Media) -> None:
    media.routes["/v/t39/12345_678_n.jpg"] = (200, {"Content-Type": "image/jpeg"}, JPEG)
    got = fetcher().fetch(message(Attachment(type="image", url=media.url + "/v/t39/12345_678_n.jpg?stp=dst&oh=x")))
    assert got.problems == []
    [file] = got.files
    assert (file.filename, file.content_type, file.data, file.kind) == ("12345_678_n.jpg", "image/jpeg", JPEG, "image")
    assert "Authorization" not in {k.title() for k in media.seen[0].headers}  # CDN links get no credentials
    assert "bytes" in repr(file) and "\\xff" not in repr(file)


def test_a_file_over_the_limit_by_content_length_is_not_read(media: Media) -> None:
    media.routes["/big.mp4"] = (200, {"Content-Type": "video/mp4"}, b"x" * (300 * KB))
    got = fetcher(max_file_bytes=100 * KB).fetch(message(Attachment(type="video", url=media.url + "/big.mp4")))
    assert got.files == []
    [note] = got.problems
    assert note.startswith("⚠ The customer's video could not be attached: it is too large (300 KB; the limit is 100 KB)")


def test_a_stream_without_length_stops_at_the_limit(media: Media) -> None:
    got = fetcher(max_file_bytes=64 * KB).fetch(message(Attachment(type="video", url=media.url + "/endless")))
    assert got.files == []
    assert "it is larger than the 64 KB limit" in got.problems[0]
    # the server could write only what the socket buffers took, far from the 64 MB it offered
    for _ in range(50):
        if media.streamed:
            break
        threading.Event().wait(0.05)
    assert media.streamed and media.streamed[0] < 64 * 1024 * KB


def test_an_expired_link_is_a_note_with_the_status(media: Media) -> None:
    media.routes["/gone.jpg"] = (403, {"Content-Type": "text/plain"}, b"URL signature expired")
    got = fetcher().fetch(message(Attachment(type="image", url=media.url + "/gone.jpg"), permalink="https://fb.com/p/1"))
    assert got.problems == [
        "⚠ The customer's image could not be attached: the link had expired (HTTP 403). Open the post to see it."
    ]


def test_an_html_page_instead_of_an_image_is_not_attached(media: Media) -> None:
    media.routes["/login"] = (200, {"Content-Type": "text/html; charset=utf-8"}, b"<html>sign in</html>")
    got = fetcher().fetch(message(Attachment(type="image", url=media.url + "/login")))
    assert got.files == [] and "no longer leads to the file" in got.problems[0]


def test_the_total_and_the_count_of_files_per_message_are_limited(media: Media) -> None:
    for name in ("a", "b", "c"):
        media.routes[f"/{name}.png"] = (200, {"Content-Type": "image/png"}, b"p" * (60 * KB))
    attachments = [Attachment(type="image", url=f"{media.url}/{n}.png") for n in ("a", "b", "c")]
    got = fetcher(max_file_bytes=100 * KB, max_total_bytes=100 * KB).fetch(message(*attachments[:2]))
    assert [f.filename for f in got.files] == ["a.png"]
    assert "the message's files together are over the 100 KB limit" in got.problems[0]

    got = fetcher(max_files=2).fetch(message(*attachments))
    assert len(got.files) == 2 and "only the first 2 files of a message are attached" in got.problems[0]


def test_a_redirect_is_followed_only_to_an_allowed_address(media: Media) -> None:
    media.routes["/img.jpg"] = (200, {"Content-Type": "image/jpeg"}, JPEG)
    media.routes["/hop"] = (302, {"Location": "/img.jpg"}, b"")
    media.routes["/to-metadata"] = (302, {"Location": "https://169.254.169.254/latest/meta-data/"}, b"")
    media.routes["/to-plain-http"] = (302, {"Location": "http://example.com/x.jpg"}, b"")
    got = fetcher().fetch(message(
        Attachment(type="image", url=media.url + "/hop"),
        Attachment(type="image", url=media.url + "/to-metadata"),
        Attachment(type="image", url=media.url + "/to-plain-http"),
    ))
    assert [f.data for f in got.files] == [JPEG]
    assert "private network address" in got.problems[0]
    assert "not a secure (https) web address" in got.problems[1]


# --- the address policy (no network) ------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["10.0.0.5", "172.16.3.4", "192.168.1.1", "127.0.0.1", "169.254.169.254", "::1", "fd00::1", "::ffff:127.0.0.1",
     "0.0.0.0", "100.64.0.1"],
)
def test_links_resolving_to_private_addresses_are_refused(address: str) -> None:
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["93.184.216.34", address]  # one bad address is enough

    got = AttachmentFetcher(lambda p: None, resolver=resolver).fetch(
        message(Attachment(type="image", url="https://cdn.example.com/a.jpg"))
    )
    assert resolved == ["cdn.example.com"]
    assert got.files == [] and "private network address" in got.problems[0]


def test_only_https_and_never_loopback_without_the_local_setting() -> None:
    strict = AttachmentFetcher(lambda p: None, resolver=lambda h, p: ["127.0.0.1"])
    got = strict.fetch(message(
        Attachment(type="image", url="http://127.0.0.1:9/a.jpg"),
        Attachment(type="image", url="https://localhost/a.jpg"),
        Attachment(type="image", url="ftp://cdn.example.com/a.jpg"),
    ))
    assert "not a secure (https)" in got.problems[0]
    assert "private network address" in got.problems[1]
    assert "not a secure (https)" in got.problems[2]
    # the local setting admits loopback, never other private ranges
    local = AttachmentFetcher(lambda p: None, allow_localhost=True, resolver=lambda h, p: ["10.1.2.3"])
    got = local.fetch(message(
        Attachment(type="image", url="https://intranet.example/a.jpg"),
        Attachment(type="image", url="http://10.1.2.3/a.jpg"),
    ))
    assert "private network address" in got.problems[0] and "not a secure (https)" in got.problems[1]


def test_platform_api_urls_must_not_carry_credentials_over_plain_http() -> None:
    with pytest.raises(ValueError, match="plain http"):
        AttachmentFetcher(lambda p: None, api_urls={"TELEGRAM_API_URL": "http://api.telegram.example"})
    AttachmentFetcher(lambda p: None, api_urls={"TELEGRAM_API_URL": "http://127.0.0.1:8081"})  # a local sandbox is fine


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTACHMENT_MAX_BYTES", "1234")
    monkeypatch.setenv("ATTACHMENT_ALLOW_LOCALHOST", "1")
    monkeypatch.setenv("LINE_DATA_API_URL", "http://127.0.0.1:9999/")
    built = AttachmentFetcher.from_env(lambda p: None)
    assert (built.max_file_bytes, built.allow_localhost) == (1234, True)
    assert built.api_url("LINE_DATA_API_URL", "https://api-data.line.me") == "http://127.0.0.1:9999"
    monkeypatch.setenv("LINE_DATA_API_URL", "http://api-data.line.example")  # credentials never over plain http
    with pytest.raises(ValueError, match="plain http"):
        built.api_url("LINE_DATA_API_URL", "https://api-data.line.me")
    monkeypatch.delenv("ATTACHMENT_ALLOW_LOCALHOST")
    assert AttachmentFetcher.from_env(lambda p: None).allow_localhost is False


# --- platforms: WhatsApp, Telegram, LINE ----------------------------------------------------------


def test_whatsapp_media_id_is_looked_up_then_downloaded_with_the_token(media: Media) -> None:
    media.routes["/v23.0/wamid-media-1"] = (200, {"Content-Type": "application/json"}, json.dumps({
        "messaging_product": "whatsapp", "url": media.url + "/whatsapp_business/attachments/?mid=1",
        "mime_type": "image/jpeg", "sha256": hashlib.sha256(JPEG).hexdigest(), "file_size": str(len(JPEG)), "id": "1",
    }).encode())
    media.routes["/whatsapp_business/attachments/"] = (200, {"Content-Type": "image/jpeg"}, JPEG)
    wa = fetcher(meta_graph_url=media.url, tokens={Platform.WHATSAPP: "wa-token"})
    got = wa.fetch(message(Attachment(type="image", media_id="wamid-media-1", mime_type="image/jpeg"), platform=Platform.WHATSAPP))
    assert got.problems == []
    [file] = got.files
    assert (file.data, file.content_type, file.filename) == (JPEG, "image/jpeg", "whatsapp-image-1.jpg")
    assert [s.headers.get("authorization") for s in media.seen] == ["Bearer wa-token", "Bearer wa-token"]


def test_whatsapp_document_keeps_its_name_and_a_damaged_download_is_refused(media: Media) -> None:
    body = b"%PDF-1.7 invoice"
    media.routes["/v23.0/doc-1"] = (200, {}, json.dumps({"url": media.url + "/f/doc", "mime_type": "application/pdf",
                                                          "sha256": hashlib.sha256(body).hexdigest()}).encode())
    media.routes["/v23.0/doc-2"] = (200, {}, json.dumps({"url": media.url + "/f/doc", "sha256": "0" * 64}).encode())
    media.routes["/f/doc"] = (200, {"Content-Type": "application/octet-stream"}, body)
    wa = fetcher(meta_graph_url=media.url, tokens={Platform.WHATSAPP: "t"})
    got = wa.fetch(message(
        Attachment(type="document", media_id="doc-1", mime_type="application/pdf", caption="Invoice 2026-03.pdf"),
        Attachment(type="document", media_id="doc-2", mime_type="application/pdf"),
        platform=Platform.WHATSAPP,
    ))
    assert [(f.filename, f.content_type) for f in got.files] == [("Invoice 2026-03.pdf", "application/pdf")]
    assert "damaged" in got.problems[0]


def test_whatsapp_size_from_graph_and_graph_errors(media: Media) -> None:
    media.routes["/v23.0/huge"] = (200, {}, json.dumps({"url": media.url + "/never", "file_size": 90_000_000}).encode())
    media.routes["/v23.0/gone"] = (404, {}, json.dumps({"error": {"message": "Unsupported get request", "code": 100}}).encode())
    wa = fetcher(meta_graph_url=media.url, tokens={Platform.WHATSAPP: "t"})
    got = wa.fetch(message(Attachment(type="video", media_id="huge"), Attachment(type="audio", media_id="gone"),
                           platform=Platform.WHATSAPP))
    assert "it is too large (85.8 MB; the limit is 20 MB)" in got.problems[0]
    assert "audio message could not be attached: WhatsApp no longer has the file (HTTP 404)" in got.problems[1]
    assert not any(s.path == "/never" for s in media.seen)
    # without a token nothing is requested
    before = len(media.seen)
    none = fetcher(meta_graph_url=media.url).fetch(message(Attachment(type="image", media_id="x"), platform=Platform.WHATSAPP))
    assert "no WhatsApp access configured" in none.problems[0] and len(media.seen) == before


def test_telegram_get_file_then_download_and_the_bot_api_limit(media: Media) -> None:
    token = "123456:ABC-secret"
    media.routes[f"/bot{token}/getFile"] = (200, {"Content-Type": "application/json"}, json.dumps(
        {"ok": True, "result": {"file_id": "F1", "file_unique_id": "u", "file_size": len(JPEG), "file_path": "photos/file_7.jpg"}}
    ).encode())
    media.routes[f"/file/bot{token}/photos/file_7.jpg"] = (200, {"Content-Type": "image/jpeg"}, JPEG)
    tg = fetcher(telegram_api_url=media.url, tokens={Platform.TELEGRAM: token})
    got = tg.fetch(message(Attachment(type="image", media_id="F1", mime_type="image/jpeg", caption="my parcel"),
                           platform=Platform.TELEGRAM))
    assert got.problems == []
    assert (got.files[0].filename, got.files[0].data) == ("file_7.jpg", JPEG)
    assert parse_qs(urlsplit(media.seen[0].path).query) == {"file_id": ["F1"]}

    media.routes[f"/bot{token}/getFile"] = (400, {"Content-Type": "application/json"}, json.dumps(
        {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"}).encode())
    big = tg.fetch(message(Attachment(type="video", media_id="F2"), platform=Platform.TELEGRAM))
    assert "larger than the 20 MB Telegram lets bots download" in big.problems[0]
    assert token not in big.problems[0] and "secret" not in " ".join(big.problems)


def test_line_content_is_downloaded_with_the_channel_token(media: Media) -> None:
    media.routes["/v2/bot/message/5551/content"] = (200, {"Content-Type": "image/png"}, PNG)
    line = fetcher(line_data_api_url=media.url, tokens={Platform.LINE: "line-token"})
    got = line.fetch(message(Attachment(type="image", media_id="5551"), platform=Platform.LINE))
    assert (got.files[0].filename, got.files[0].content_type, got.files[0].data) == ("line-image-1.png", "image/png", PNG)
    assert media.seen[0].headers["authorization"] == "Bearer line-token"


def test_a_bearer_token_is_not_sent_to_another_origin_after_a_redirect(media: Media) -> None:
    # /v2/bot/message/1/content redirects to the same server under another name (localhost): another origin
    port = urlsplit(media.url).port
    media.routes["/v2/bot/message/1/content"] = (302, {"Location": f"http://localhost:{port}/cdn/1.png"}, b"")
    media.routes["/cdn/1.png"] = (200, {"Content-Type": "image/png"}, PNG)
    line = fetcher(line_data_api_url=media.url, tokens={Platform.LINE: "line-token"},
                   resolver=lambda host, p: ["127.0.0.1"])
    got = line.fetch(message(Attachment(type="image", media_id="1"), platform=Platform.LINE))
    assert got.files and got.files[0].data == PNG
    assert [s.headers.get("authorization") for s in media.seen] == ["Bearer line-token", None]


def test_links_and_attachments_without_a_source_are_explained_not_fetched() -> None:
    nothing = AttachmentFetcher(lambda p: None, resolver=lambda h, p: pytest.fail("no lookup expected"))
    got = nothing.fetch(message(
        Attachment(type="fallback", url="https://example.com/article"),  # a shared link: stays a link
        Attachment(type="file"),  # neither url nor media id
    ))
    assert got.files == []
    assert got.problems == [
        "⚠ The customer's file could not be attached: Messenger sent no link to it. "
        "See it in the Messenger conversation, or ask the customer to send it again."
    ]
    assert not is_file_attachment(Attachment(type="share", url="https://x")) and is_file_attachment(Attachment(type="video"))


def test_a_token_is_read_only_for_a_file_that_needs_it_and_a_missing_one_is_a_plain_note(media: Media) -> None:
    reads: list[str] = []

    def secrets(name: str) -> str | None:
        reads.append(name)
        raise LookupError("not configured")  # get_secret's NotConfigured, a parameter store failure...

    files = AttachmentFetcher(secrets, allow_localhost=True, api_urls={"LINE_DATA_API_URL": media.url})
    media.routes["/a.jpg"] = (200, {"Content-Type": "image/jpeg"}, JPEG)
    assert files.fetch(message(Attachment(type="image", url=media.url + "/a.jpg"))).files and reads == []
    got = files.fetch(message(Attachment(type="image", media_id="4711"), platform=Platform.LINE))
    assert reads == ["LINE_CHANNEL_ACCESS_TOKEN"] and got.files == []
    assert "the bridge has no LINE access configured to download it" in got.problems[0]


# --- names, types, wording -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "declared", "name", "expected"),
    [
        ("image/jpeg; charset=binary", None, None, "image/jpeg"),
        ("application/octet-stream", "audio/ogg; codecs=opus", None, "audio/ogg"),
        ("", None, "report.pdf", "application/pdf"),
        (None, None, None, "application/octet-stream"),
    ],
)
def test_content_type_prefers_the_response_then_the_platform_then_the_name(
    response: str | None, declared: str | None, name: str | None, expected: str
) -> None:
    assert choose_content_type(response, declared, name) == expected


def test_file_names_are_safe_and_match_the_content_type() -> None:
    image = Attachment(type="image")

    def name(content_type: str, **kwargs: Any) -> str:
        return choose_filename(platform=Platform.INSTAGRAM, attachment=kwargs.pop("attachment", image), index=2,
                               content_type=content_type, **kwargs)

    assert name("image/jpeg", url="https://cdn/x/abc.jpg?oh=1") == "abc.jpg"
    assert name("image/jpeg", url="https://cdn/x/photo") == "instagram-image-2.jpg"
    assert name("image/png", url="https://cdn/x/abc.jpg") == "abc.jpg.png"  # extension made to agree
    assert name("application/pdf", disposition='attachment; filename="../../etc/Quote #7.pdf"') == "Quote _7.pdf"
    assert name("application/pdf", disposition="attachment; filename*=UTF-8''Fa%C3%A7ture.pdf") == "Fa_ture.pdf"
    doc = Attachment(type="document", caption="Order 1234.xlsx")
    assert name("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", attachment=doc) == "Order 1234.xlsx"
    assert len(name("image/jpeg", url="https://cdn/" + "a" * 300 + ".jpg")) <= 100
    assert name("audio/ogg", attachment=Attachment(type="voice", caption="a caption, not a name")) == "instagram-voice-2.ogg"


def test_notes_are_plain_words() -> None:
    dm = message(platform=Platform.WHATSAPP)
    post = message(permalink="https://www.facebook.com/1/posts/2")
    assert problem_note(post, "image", "the link had expired (HTTP 403)") == (
        "⚠ The customer's image could not be attached: the link had expired (HTTP 403). Open the post to see it."
    )
    assert problem_note(dm, "voice", "it is too large (31.5 MB; the limit is 20 MB)") == (
        "⚠ The customer's voice message could not be attached: it is too large (31.5 MB; the limit is 20 MB). "
        "See it in the WhatsApp conversation, or ask the customer to send it again."
    )
    assert [human_size(n) for n in (12, 2048, 20 * 1024 * 1024, 33030144)] == ["12 bytes", "2 KB", "20 MB", "31.5 MB"]


def test_comment_body_notes_problems_and_keeps_links_that_are_not_files() -> None:
    msg = message(
        Attachment(type="image", url="https://cdn.example.com/a.jpg?sig=1"),
        Attachment(type="share", url="https://example.com/article"),
    )
    legacy = comment_body(msg)
    assert "[image] https://cdn.example.com/a.jpg?sig=1" in legacy and "[share] https://example.com/article" in legacy

    note = "⚠ The customer's image could not be attached: the link had expired (HTTP 403). Open the post to see it."
    body = comment_body(msg, problems=[note])
    lines = body.splitlines()
    assert lines[0] == "Look at this"
    assert "cdn.example.com" not in body and "[share] https://example.com/article" in body
    assert note in lines and lines.index(note) < next(i for i, line in enumerate(lines) if line.startswith("— Dana"))
    assert comment_body(msg, problems=[]).count("⚠") == 0
    assert comment_body(message(Attachment(type="image", url="https://x/a.jpg"), text=""), problems=[]).startswith("(no text)")


# --- the Zendesk upload request ------------------------------------------------------------------


class FakeRaw:
    def __init__(self, status: int, body: Any) -> None:
        self.status, self.headers = status, {"Content-Type": "application/json"}
        self.data = json.dumps(body).encode()


class FakePool:
    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers, self.calls = list(answers), []

    def request(self, method: str, url: str, **kwargs: Any) -> FakeRaw:
        self.calls.append((method, url, kwargs))
        return FakeRaw(*self.answers.pop(0))


def zendesk(pool: FakePool) -> Any:
    from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk, basic_auth_header
    from chalicelib.http import JsonHttpClient

    http = JsonHttpClient("https://acme.zendesk.com", basic_auth_header("a@b.c", "tok"), pool=pool)
    return ZendeskHelpdesk("https://acme.zendesk.com", "a@b.c", "tok", http=http)


def test_zendesk_uploads_the_raw_file_with_its_name_and_type() -> None:
    pool = FakePool((201, {"upload": {"token": "T1", "attachment": {"id": 1}}}),
                    (201, {"upload": {"token": "T2"}}))
    helpdesk = zendesk(pool)
    files = [FileToAttach("photo 1.jpg", "image/jpeg", JPEG, "image"), FileToAttach("a.pdf", "application/pdf", b"%PDF")]
    assert helpdesk.upload(files) == ["T1", "T2"]
    method, url, kwargs = pool.calls[0]
    assert (method, url) == ("POST", "https://acme.zendesk.com/api/v2/uploads?filename=photo+1.jpg")
    assert kwargs["body"] == JPEG and kwargs["headers"]["Content-Type"] == "image/jpeg"
    assert kwargs["headers"]["Authorization"].startswith("Basic ")


def test_zendesk_upload_failures_map_to_helpdesk_errors() -> None:
    with pytest.raises(HelpdeskRejected, match="too large"):
        zendesk(FakePool((413, {"error": "RecordInvalid"}))).upload([FileToAttach("a.bin", "application/octet-stream", b"x")])
    with pytest.raises(HelpdeskUnavailable) as caught:
        zendesk(FakePool((500, {"error": "boom"}))).upload([FileToAttach("a.bin", "application/octet-stream", b"x")])
    assert caught.value.maybe_applied is False  # an upload is harmless to repeat


def test_zendesk_comment_carries_upload_tokens_and_conflicts_are_recognized() -> None:
    pool = FakePool((201, {"ticket": {"id": 9, "status": "new"}}),
                    (400, {"error": "IdempotentRequestError", "description": "Request parameters don't match"}))
    helpdesk = zendesk(pool)
    msg = message(Attachment(type="image", url="https://cdn/a.jpg"))
    helpdesk.open_ticket(msg, "7", idempotency_key="k", uploads=["T1"], problems=["⚠ note"])
    sent = json.loads(pool.calls[0][2]["body"])["ticket"]["comment"]
    assert sent["uploads"] == ["T1"] and "⚠ note" in sent["body"] and "cdn/a.jpg" not in sent["body"]
    with pytest.raises(IdempotencyConflict):
        helpdesk.open_ticket(msg, "7", idempotency_key="k", uploads=["T9"])


# --- the sync: once per delivery, idempotency ------------------------------------------------------


class ScriptedHelpdesk(Helpdesk):
    name = "zendesk"
    supports_uploads = True
    idempotent_creates = True  # like Zendesk's Idempotency-Key: a repeat never opens a second ticket

    def __init__(self) -> None:
        self.uploads: list[str] = []
        self.opened: list[dict[str, Any]] = []
        self.appended: list[dict[str, Any]] = []
        self.open_failures: list[Exception] = []
        self.upload_failures: list[Exception] = []
        self.found: TicketRef | None = None
        self.conflicting: set[str] = set()
        self.lookups = 0

    def ensure_requester(self, platform: Platform, author: Author) -> str:
        return "42"

    def upload(self, files: Any) -> list[str]:
        if self.upload_failures:
            raise self.upload_failures.pop(0)
        tokens = [f"tok-{len(self.uploads) + i + 1}" for i in range(len(files))]
        self.uploads.extend(tokens)
        return tokens

    def open_ticket(self, message: SocialMessage, requester_id: str, **kwargs: Any) -> TicketRef:
        self.opened.append(kwargs)
        if kwargs["idempotency_key"] in self.conflicting:
            raise IdempotencyConflict("IdempotentRequestError")
        if self.open_failures:
            raise self.open_failures.pop(0)
        return TicketRef("100", "new")

    def append_message(self, ticket_id: str, message: SocialMessage, requester_id: str, **kwargs: Any) -> TicketRef:
        self.appended.append(kwargs)
        return TicketRef(ticket_id, "open")

    def add_note(self, ticket_id: str, message: SocialMessage, text: str) -> TicketRef:
        return TicketRef(ticket_id, "open")

    def ticket_has_message(self, ticket_id: str, message: SocialMessage) -> bool:
        return False

    def find_ticket_with_message(self, external_id: str, message: SocialMessage) -> TicketRef | None:
        self.lookups += 1
        return self.found


class StaticFetcher:
    def __init__(self, *files: FileToAttach, problems: tuple[str, ...] = ()) -> None:
        self.files, self.problems, self.calls = list(files), list(problems), 0

    def fetch(self, message: SocialMessage) -> Any:
        from chalicelib.sync.attachments import FetchedFiles

        self.calls += 1
        return FetchedFiles(list(self.files), list(self.problems))


def sync_with(helpdesk: Helpdesk, fetcher_: Any) -> tuple[TicketSync, MemoryStore, MemoryQueue, list[float]]:
    store, queue, sleeps = MemoryStore(), MemoryQueue(), []
    sync = TicketSync(store, helpdesk, queue, sleep=sleeps.append, fetcher=fetcher_)  # type: ignore[arg-type]
    return sync, store, queue, sleeps


PHOTO = FileToAttach("a.jpg", "image/jpeg", JPEG, "image")


def test_retries_of_one_delivery_reuse_the_same_upload_tokens() -> None:
    helpdesk = ScriptedHelpdesk()
    helpdesk.open_failures = [HelpdeskUnavailable("dropped", maybe_applied=True), HelpdeskUnavailable("502", maybe_applied=True)]
    fetch = StaticFetcher(PHOTO, problems=("⚠ second file: expired",))
    sync, store, queue, _ = sync_with(helpdesk, fetch)
    msg = message(Attachment(type="image", url="https://cdn/a.jpg"), Attachment(type="image", url="https://cdn/b.jpg"))
    assert sync.sync_message(msg) is Outcome.TICKET_OPENED
    assert fetch.calls == 1 and helpdesk.uploads == ["tok-1"]
    assert len(helpdesk.opened) == 3
    assert all(o == helpdesk.opened[0] for o in helpdesk.opened)  # byte-for-byte the same request
    assert helpdesk.opened[0]["uploads"] == ("tok-1",) and helpdesk.opened[0]["problems"] == ("⚠ second file: expired",)
    assert helpdesk.lookups == 0 and queue.parked == []


def test_a_comment_gets_the_files_too() -> None:
    helpdesk = ScriptedHelpdesk()
    sync, store, _, _ = sync_with(helpdesk, StaticFetcher(PHOTO))
    store.save_conversation(Conversation("messenger:dm:page:cust", helpdesk="zendesk", ticket_id="100", ticket_status="open", epoch=1))
    assert sync.sync_message(message(Attachment(type="image", url="https://cdn/a.jpg"))) is Outcome.COMMENT_ADDED
    assert helpdesk.appended == [{"uploads": ("tok-1",), "problems": ()}]


def test_nothing_is_fetched_for_messages_without_files_duplicates_or_helpdesks_without_uploads() -> None:
    helpdesk = ScriptedHelpdesk()
    fetch = StaticFetcher(PHOTO)
    sync, store, _, _ = sync_with(helpdesk, fetch)
    sync.sync_message(message(message_id="plain"))
    assert helpdesk.opened[-1] == {"idempotency_key": helpdesk.opened[-1]["idempotency_key"], "follow_up_of": None}
    sync.sync_message(message(message_id="plain"))  # duplicate
    assert fetch.calls == 0

    class OldHelpdesk(ScriptedHelpdesk):
        supports_uploads = False

    old = OldHelpdesk()
    old_sync, _, _, _ = sync_with(old, fetch)
    old_sync.sync_message(message(Attachment(type="image", url="https://cdn/a.jpg")))
    assert fetch.calls == 0 and "uploads" not in old.opened[0]  # an adapter without uploads is called as before


def test_a_file_the_helpdesk_will_not_store_becomes_a_note_and_the_text_goes_through() -> None:
    helpdesk = ScriptedHelpdesk()
    helpdesk.upload_failures = [HelpdeskRejected("413 too large")]
    sync, _, queue, _ = sync_with(helpdesk, StaticFetcher(PHOTO))
    assert sync.sync_message(message(Attachment(type="image", url="https://cdn/a.jpg"))) is Outcome.TICKET_OPENED
    [note] = helpdesk.opened[0]["problems"]
    assert note.startswith("⚠ The customer's image could not be attached: Zendesk did not accept the file.")
    assert helpdesk.opened[0]["uploads"] == () and queue.parked == []


def test_a_transient_upload_failure_is_retried_with_backoff() -> None:
    helpdesk = ScriptedHelpdesk()
    helpdesk.upload_failures = [HelpdeskUnavailable("429", retry_after=4)]
    sync, _, _, sleeps = sync_with(helpdesk, StaticFetcher(PHOTO))
    sync.sync_message(message(Attachment(type="image", url="https://cdn/a.jpg")))
    assert sleeps == [4] and helpdesk.opened[0]["uploads"] == ("tok-1",)


def test_an_idempotency_conflict_finds_the_ticket_the_key_already_created() -> None:
    helpdesk = ScriptedHelpdesk()
    helpdesk.open_failures = [IdempotencyConflict("IdempotentRequestError")]
    helpdesk.found = TicketRef("77", "open")
    sync, store, queue, _ = sync_with(helpdesk, StaticFetcher(PHOTO))
    msg = message(Attachment(type="image", url="https://cdn/a.jpg"))
    assert sync.sync_message(msg) is Outcome.TICKET_OPENED
    assert len(helpdesk.opened) == 1 and helpdesk.lookups == 1
    saved = store.get_conversation(msg.conversation_key)
    assert (saved.ticket_id, saved.epoch, msg.message_id in saved.synced) == ("77", 1, True)


def test_an_idempotency_conflict_without_a_ticket_opens_one_under_a_key_of_its_own() -> None:
    helpdesk = ScriptedHelpdesk()
    msg = message(Attachment(type="image", url="https://cdn/a.jpg"))
    plain = idempotency_key(msg.conversation_key, 1, msg.message_id)
    helpdesk.conflicting = {plain}  # held by an earlier request that left no ticket
    helpdesk.open_failures = [HelpdeskUnavailable("dropped", maybe_applied=True)]  # the first variant request
    sync, _, queue, _ = sync_with(helpdesk, StaticFetcher(PHOTO))
    assert sync.sync_message(msg) is Outcome.TICKET_OPENED
    keys = [o["idempotency_key"] for o in helpdesk.opened]
    assert keys[0] == keys[2] == plain
    assert keys[1] == keys[3] != plain  # the variant is stable across the delivery's retries
    assert helpdesk.lookups == 2 and queue.parked == []


def test_a_redrive_looks_for_the_ticket_before_creating_it_again() -> None:
    helpdesk = ScriptedHelpdesk()
    helpdesk.found = TicketRef("55", "new")
    fetch = StaticFetcher(PHOTO)
    sync, store, queue, _ = sync_with(helpdesk, fetch)
    msg = message(Attachment(type="image", url="https://cdn/a.jpg"))
    entry = store.park(store.get_conversation(msg.conversation_key), msg.message_id, "helpdesk down")
    assert sync.sync_message(msg, redrive=entry) is Outcome.TICKET_OPENED
    assert helpdesk.opened == [] and fetch.calls == 0 and helpdesk.uploads == []  # found: nothing uploaded for nothing
    assert store.get_conversation(msg.conversation_key).parked == 0 and store.parked_head(msg.conversation_key) is None


# --- https: the checked address is used, the certificate is verified for the name -----------------


def _certificates(tmp_path: Any) -> tuple[str, str, str]:
    """A throwaway CA and a certificate for ``cdn.test`` it signed: (ca, cert, key) paths."""
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - timedelta(days=1))
          .not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("cdn.test")).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(2).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("cdn.test")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return tuple(str(p) for p in paths)  # type: ignore[return-value]


def test_https_connects_to_the_checked_address_and_verifies_the_name(tmp_path: Any) -> None:
    import ssl

    ca, cert, key = _certificates(tmp_path)
    state = Media()
    state.routes["/img.jpg"] = (200, {"Content-Type": "image/jpeg"}, JPEG)
    server = QuietServer(("127.0.0.1", 0), _handler(state))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = server.server_address[1]
    looked_up: list[str] = []

    def resolver(host: str, p: int) -> list[str]:
        looked_up.append(host)
        return ["::1", "127.0.0.1"] if host == "cdn.test" else ["127.0.0.1"]

    try:
        https = AttachmentFetcher(lambda p: None, allow_localhost=True, resolver=resolver, ca_certs=ca, timeout=(1.0, 2.0))
        got = https.fetch(message(
            Attachment(type="image", url=f"https://cdn.test:{port}/img.jpg"),
            Attachment(type="image", url=f"https://impostor.test:{port}/img.jpg"),  # same server, wrong name
        ))
        assert [f.data for f in got.files] == [JPEG]
        assert state.seen[0].headers["host"] == f"cdn.test:{port}"
        assert "a secure connection to the link's server failed" in got.problems[0]
        assert looked_up == ["cdn.test", "impostor.test"]  # resolved once each; the connection used that answer
    finally:
        server.shutdown()
        server.server_close()
