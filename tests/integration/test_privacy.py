"""Forgetting one person: only their items go, everyone else's stay, the status page says done.

In-process moto (``mock_aws``) with the table from ``infra/template.json`` (stage
``privacy``); conversations get their state (ticket, requesters) from the real ticket
sync against the Zendesk sandbox on 127.0.0.1, so the state layout is the one the
sync writes. Meta's callback goes through Chalice's test client, with the routes
proposed for ``app.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.models import Direction, SocialMessage
from chalicelib.channels.meta import webhook as meta
from chalicelib.privacy.deletion import DeletionRequests, handle_meta_deletion, main, sign_request
from chalicelib.store import MessageStore
from local.samples import PAGE_ID, facebook_comment_thread

ROOT = Path(__file__).resolve().parents[2]
APP_SECRET = "privacy-test-app-secret"
RUN = "77"
DANA, SAM = f"6001{RUN}", f"6002{RUN}"  # the comment thread's two customers (local.samples)


def _messenger(mid: str, sender: str, recipient: str, text: str, t: int, echo: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid, "text": text}
    if echo:
        message.update(is_echo=True, app_id=1517776481860111)
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": t * 1000, "messaging": [
        {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": t * 1000, "message": message}]}]}


def _sam_replies_in_danas_thread() -> dict[str, Any]:
    top = f"90{RUN}_1001"
    post = f"{PAGE_ID}_90{RUN}"
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1_764_000_100, "changes": [{"field": "feed", "value": {
        "from": {"id": SAM, "name": "Sam Ortiz"}, "post_id": post, "comment_id": f"90{RUN}_1004", "parent_id": top,
        "message": "Same problem here.", "created_time": 1_764_000_100, "item": "comment", "verb": "add"}}]}]}


def _deliveries() -> list[dict[str, Any]]:
    t = 1_764_000_000
    return [
        *(payload for _, payload in facebook_comment_thread(RUN)),
        _sam_replies_in_danas_thread(),
        # Dana's and Sam's Messenger chats (the test uses one id per person on every Meta
        # platform, so the callback's user id matches both; see the privacy module docstring)
        _messenger(f"m_{RUN}d1", DANA, PAGE_ID, "My card was charged twice, call me on +1 650 555 0199", t),
        _messenger(f"m_{RUN}d2", PAGE_ID, DANA, "Sorry Dana, refund on its way.", t + 1, echo=True),
        _messenger(f"m_{RUN}s1", SAM, PAGE_ID, "Where is my parcel?", t + 2),
    ]


@dataclass
class Rig:
    dynamodb: Any
    table: str
    store: MessageStore
    requests: DeletionRequests
    sandbox: Any
    messages: list[SocialMessage]

    def items(self, prefix: str = "") -> list[dict[str, Any]]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True)
        return [item for page in pages for item in page["Items"] if item["pk"]["S"].startswith(prefix)]

    def keys(self) -> set[tuple[str, str]]:
        return {(item["pk"]["S"], item["sk"]["S"]) for item in self.items("CONV#")}

    def mentions(self, author_id: str) -> list[tuple[str, str]]:
        """Every item that still names the person: as author, in a key, or in state."""
        found = []
        for item in self.items():
            text = json.dumps(item)
            if f"#{author_id}" in text or f":{author_id}" in text or f'\\"platform_id\\":\\"{author_id}\\"' in text:
                found.append((item["pk"]["S"], item["sk"]["S"]))
        return found


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    from chalicelib.sync.deadletter import DeadLetterQueue
    from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk
    from chalicelib.sync.tickets import TicketSync
    from local.resources import create_local_resources
    from local.zendesk_sandbox import ZendeskSandbox

    # In-process moto: no endpoint override may send boto3 to a moto server elsewhere.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    sandbox = ZendeskSandbox(host="127.0.0.1", port=0).start()
    try:
        with mock_aws():
            dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
            resources = create_local_resources(
                dynamodb=dynamodb, sqs=sqs, template_path=ROOT / "infra" / "template.json", stage="privacy"
            )
            store = MessageStore(resources.table_name, dynamodb)
            sync = TicketSync(
                store,
                ZendeskHelpdesk(sandbox.url, sandbox.email, sandbox.api_token),
                DeadLetterQueue(resources.dlq_url, sqs),
                sleep=lambda _: None,
            )
            messages = [m for payload in _deliveries() for m in meta.normalize_delivery(payload).messages]
            assert all(store.save_messages(messages))
            for message in messages:  # what the stream would hand the sync, in order
                if message.direction is Direction.INBOUND:
                    sync.sync_message(message)
            monkeypatch.setenv("TABLE_NAME", resources.table_name)
            yield Rig(dynamodb, resources.table_name, store, DeletionRequests(resources.table_name, dynamodb, sleep=lambda _: None),
                      sandbox, messages)
    finally:
        sandbox.stop()


def _state(rig: Rig, key: str) -> dict[str, Any]:
    """The people a conversation's messages are written as in Zendesk: its requester (on the
    conversation item) and every other participant, as the sync finds them again."""
    conversation = rig.store.get_conversation(key)
    requesters = {conversation.requester_key: conversation.requester_id} if conversation.requester_id else {}
    authors = {(m.platform.value, m.author.platform_id) for m in rig.messages if m.conversation_key == key}
    for platform, author in authors:
        user = rig.store.find_requester("zendesk", platform, author)  # their own item, or a conversation they requested
        if user and f"zendesk#{platform}#{author}" != conversation.requester_key:
            requesters[f"zendesk#{platform}#{author}"] = user
    return {"requesters": requesters, "requester_id": conversation.requester_id, "version": conversation.version}


def _key_of(rig: Rig, author: str, kind: str) -> str:
    return next(m.conversation_key for m in rig.messages if m.author.platform_id == author and m.kind.value == kind)


def test_the_sync_recorded_both_people_as_requesters(rig: Rig) -> None:
    thread = _key_of(rig, DANA, "comment")
    requesters = _state(rig, thread)["requesters"]
    assert set(requesters) == {f"zendesk#facebook#{DANA}", f"zendesk#facebook#{SAM}"}


def test_forgetting_one_person_removes_only_their_items(rig: Rig) -> None:
    thread = _key_of(rig, DANA, "comment")
    dana_dm = _key_of(rig, DANA, "direct_message")
    sam_dm = _key_of(rig, SAM, "direct_message")
    before = rig.keys()
    sams_items = {k for k in before if k[0] in (f"CONV#{sam_dm}",)} | {
        (f"CONV#{m.conversation_key}", f"MSG#{m.message_id}") for m in rig.messages if m.author.platform_id == SAM
    }
    sam_thread_state = _state(rig, thread)["requesters"][f"zendesk#facebook#{SAM}"]
    dana_user = _state(rig, thread)["requesters"][f"zendesk#facebook#{DANA}"]

    fb = rig.requests.forget("facebook", DANA)
    ms = rig.requests.forget("messenger", DANA)

    assert (fb.messages_deleted, fb.conversations_touched, fb.conversations_deleted, fb.requesters_removed) == (2, 1, 0, 1)
    assert (ms.messages_deleted, ms.conversations_deleted, ms.other_items_deleted) == (1, 1, 1)  # her message + the Page's reply
    assert dana_user in fb.helpdesk_user_ids
    after = rig.keys()
    assert sams_items <= after, "Sam's items must stay"
    assert not [k for k in after if k[0] == f"CONV#{dana_dm}"], "Dana's own chat goes whole, conversation item included"
    assert rig.mentions(DANA) == []
    # the shared thread keeps its ticket and Sam's requester; Dana's entry and requester id are gone
    state = _state(rig, thread)
    assert state["requesters"] == {f"zendesk#facebook#{SAM}": sam_thread_state}
    assert state["requester_id"] is None
    assert rig.store.get_conversation(thread).ticket_id is not None
    assert _state(rig, sam_dm)["requesters"] == {f"zendesk#messenger#{SAM}": _state(rig, sam_dm)["requesters"][f"zendesk#messenger#{SAM}"]}
    # forgetting again finds nothing
    again = rig.requests.forget("facebook", DANA)
    assert (again.messages_deleted, again.conversations_touched) == (0, 0)


def test_meta_callback_records_forgets_and_reports_done(rig: Rig) -> None:
    signed = sign_request({"algorithm": "HMAC-SHA256", "issued_at": 1_764_000_500, "user_id": DANA}, APP_SECRET)
    answer = handle_meta_deletion(
        f"signed_request={signed}".encode(), "application/x-www-form-urlencoded", APP_SECRET, rig.requests, "https://hooks.example.com/api"
    )
    code = answer["confirmation_code"]
    assert answer["url"] == f"https://hooks.example.com/api/privacy/status/{code}"
    assert rig.mentions(DANA) == []
    assert any(m[0].endswith(SAM) or SAM in m[0] for m in rig.mentions(SAM))

    status = rig.requests.status(code)
    assert status["status"] == "done" and status["messages_deleted"] == 3 and status["conversations_deleted"] == 1
    assert "completed" in status["message"]
    # the finished record keeps counts and times, never the person's id, and leaves the open list
    [record] = rig.items(f"PRIVACY#{code}")
    assert DANA not in json.dumps(record) and "gsi1pk" not in record
    assert rig.requests.open_requests() == []


def test_a_failed_deletion_stays_open_and_a_retry_finishes_it(rig: Rig) -> None:
    class Broken:
        def __init__(self, client: Any) -> None:
            self._client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

        def batch_write_item(self, **kwargs: Any) -> Any:
            raise RuntimeError("throttled for good")

    broken = DeletionRequests(rig.table, Broken(rig.dynamodb), sleep=lambda _: None)  # type: ignore[arg-type]
    code, report = broken.request_and_forget([("facebook", DANA)], source="meta")
    assert report is None
    assert rig.requests.status(code)["status"] == "failed"
    assert rig.requests.open_requests() == [code]
    assert rig.requests.retry_open() == {code: "done"}
    assert rig.requests.status(code)["status"] == "done"
    assert rig.requests.open_requests() == []


def test_paginated_queries_and_unprocessed_batch_items_are_followed(rig: Rig) -> None:
    calls: dict[str, int] = {"query": 0, "batch": 0}

    class Stingy:
        """One item per query page; the first try of every batch leaves one item unprocessed."""

        def __init__(self, client: Any) -> None:
            self._client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

        def query(self, **kwargs: Any) -> Any:
            calls["query"] += 1
            return self._client.query(**{**kwargs, "Limit": 1})

        def batch_write_item(self, RequestItems: dict[str, Any]) -> Any:  # noqa: N803 (boto3's name)
            calls["batch"] += 1
            [(table, requests)] = RequestItems.items()
            if len(requests) > 1 and calls["batch"] % 2 == 1:
                self._client.batch_write_item(RequestItems={table: requests[1:]})
                return {"UnprocessedItems": {table: requests[:1]}}
            return self._client.batch_write_item(RequestItems=RequestItems)

    sleeps: list[float] = []
    stingy = DeletionRequests(rig.table, Stingy(rig.dynamodb), sleep=sleeps.append)  # type: ignore[arg-type]
    report = stingy.forget("facebook", DANA).merge(stingy.forget("messenger", DANA))
    assert report.messages_deleted == 3
    assert rig.mentions(DANA) == []
    assert calls["query"] > 4 and sleeps, "pages were followed and unprocessed items retried with a pause"


def test_conversation_items_outliving_their_messages_are_found_with_a_scan(rig: Rig) -> None:
    dana_dm = _key_of(rig, DANA, "direct_message")
    thread = _key_of(rig, DANA, "comment")
    # the messages expired (TTL): only the conversation items still name Dana
    for pk, sk in list(rig.keys()):
        if sk.startswith("MSG#") and (pk == f"CONV#{dana_dm}" or DANA in json.dumps(rig.dynamodb.get_item(
                TableName=rig.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"].get("gsi1pk", {}))):
            rig.dynamodb.delete_item(TableName=rig.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    assert rig.requests.forget("messenger", DANA).conversations_deleted == 0  # the index finds nothing
    report = rig.requests.forget("messenger", DANA, scan_conversations=True).merge(
        rig.requests.forget("facebook", DANA, scan_conversations=True)
    )
    assert report.conversations_deleted == 1 and report.requesters_removed == 2
    assert rig.mentions(DANA) == []
    assert f"zendesk#facebook#{SAM}" in _state(rig, thread)["requesters"]


def test_the_command_line_forgets_and_prints_a_confirmation(rig: Rig) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["forget", "--platform", "messenger", "--author-id", SAM]) == 0
    printed = json.loads(out.getvalue())
    assert printed["messages_deleted"] == 1 and printed["conversations_deleted"] == 1
    assert rig.mentions(SAM) != []  # his Facebook comments are another platform's id: untouched
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["status", "--code", printed["confirmation_code"]]) == 0
    assert json.loads(out.getvalue())["status"] == "done"


# --- the routes, as proposed for app.py, through Chalice's test client ----------------------


def _privacy_app(requests: DeletionRequests) -> Any:
    """The two routes exactly as the report proposes them for app.py (wiring swapped for the rig)."""
    from chalice import Chalice, Response

    from chalicelib.errors import WebhookError

    app = Chalice(app_name="privacy-routes")

    def _json(body: Any, status: int = 200) -> Response:
        return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})

    @app.route("/privacy/meta/deletion", methods=["POST"], content_types=["application/x-www-form-urlencoded", "application/json"])
    def meta_data_deletion() -> Response:
        from chalicelib.privacy import deletion as privacy

        request = app.current_request
        try:
            answer = privacy.handle_meta_deletion(
                request.raw_body or b"",
                request.headers.get("content-type"),
                APP_SECRET,
                requests,
                privacy.status_base_url(request.context, request.headers, "/privacy/meta/deletion", None),
            )
        except WebhookError as exc:
            return _json(exc.to_body(), exc.status)
        return _json(answer)

    @app.route("/privacy/status/{code}", methods=["GET"])
    def deletion_status(code: str) -> Response:
        from chalicelib.privacy import deletion as privacy

        try:
            status = privacy.deletion_status(code, requests)
        except WebhookError as exc:
            return _json(exc.to_body(), exc.status)
        if "text/html" in (app.current_request.headers.get("accept") or ""):
            return Response(body=privacy.status_page_html(status), status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})
        return _json(status)

    return app


def test_the_routes_answer_meta_and_show_the_status(rig: Rig) -> None:
    from chalice.test import Client

    signed = sign_request({"algorithm": "HMAC-SHA256", "user_id": DANA}, APP_SECRET)
    form = {"Content-Type": "application/x-www-form-urlencoded", "Host": "127.0.0.1:8000"}
    with Client(_privacy_app(rig.requests)) as client:
        forged = sign_request({"algorithm": "HMAC-SHA256", "user_id": SAM}, "not-the-secret")
        refused = client.http.post("/privacy/meta/deletion", headers=form, body=f"signed_request={forged}".encode())
        assert refused.status_code == 401
        assert rig.mentions(SAM) != []

        answer = client.http.post("/privacy/meta/deletion", headers=form, body=f"signed_request={signed}".encode())
        assert answer.status_code == 200, answer.body
        body = json.loads(answer.body)
        assert body["url"] == f"http://127.0.0.1:8000/privacy/status/{body['confirmation_code']}"

        status = client.http.get(f"/privacy/status/{body['confirmation_code']}")
        assert status.status_code == 200 and json.loads(status.body)["status"] == "done"
        page = client.http.get(f"/privacy/status/{body['confirmation_code']}", headers={"Accept": "text/html"})
        assert page.status_code == 200 and b"completed" in page.body

        assert client.http.get("/privacy/status/" + "A" * 22).status_code == 404
        assert client.http.get("/privacy/status/not-a-code").status_code == 404
    assert rig.mentions(DANA) == []


def test_a_participants_own_requester_mapping_is_erased_with_them(rig: Rig) -> None:
    # What the sync writes for a person who joined someone else's thread (their first words anywhere).
    rig.store.save_requester("zendesk", "facebook", "600999", "777")
    assert rig.store.find_requester("zendesk", "facebook", "600999") == "777"
    report = rig.requests.forget("facebook", "600999")
    assert report.requesters_removed == 1 and report.helpdesk_user_ids == ["777"]
    assert rig.store.find_requester("zendesk", "facebook", "600999") is None
    assert rig.mentions("600999") == []
