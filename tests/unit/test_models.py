"""The canonical model and how a message reads inside a ticket."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.helpdesks.formatting import (
    SUBJECT_TEXT_CHARS,
    change_note,
    comment_body,
    message_reference,
    source_label,
    ticket_subject,
    ticket_tags,
)
from chalicelib.models import (
    Attachment,
    Author,
    DeliveryStatus,
    Direction,
    Kind,
    NormalizedBatch,
    Platform,
    SocialMessage,
    conversation_key,
    from_epoch,
)
from chalicelib.sync.policy import TicketPolicy

UTC = timezone.utc


def make_message(**overrides: Any) -> SocialMessage:
    fields: dict[str, Any] = {
        "platform": Platform.X,
        "kind": Kind.MENTION,
        "direction": Direction.INBOUND,
        "message_id": "1050118621198921728",
        "conversation_key": "x:tweets:2244994945:3001969357",
        "account_id": "2244994945",
        "author": Author(platform_id="3001969357", handle="furiouscamper", display_name="Jordan Brinks", follower_count=15200),
        "text": "@TwitterDev my voucher code doesn't work",
        "created_at": datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC),
        "permalink": "https://x.com/furiouscamper/status/1050118621198921728",
    }
    fields.update(overrides)
    return SocialMessage(**fields)


# --- conversation keys and timestamps ----------------------------------------------------


def test_conversation_key_joins_platform_scope_and_parts() -> None:
    assert conversation_key(Platform.MESSENGER, "dm", "448242228374517", "7001234567890123") == (
        "messenger:dm:448242228374517:7001234567890123"
    )
    assert conversation_key(Platform.FACEBOOK, "comment", "1_2") == "facebook:comment:1_2"


def test_conversation_keys_of_different_platforms_never_collide() -> None:
    assert conversation_key(Platform.MESSENGER, "dm", "1", "2") != conversation_key(Platform.INSTAGRAM, "dm", "1", "2")


@pytest.mark.parametrize(
    "value",
    [1539202764, "1539202764", 1539202764000, "1539202764000", 1539202764.0],
    ids=["int-seconds", "str-seconds", "int-ms", "str-ms", "float-seconds"],
)
def test_from_epoch_reads_seconds_and_milliseconds_alike(value: int | str | float) -> None:
    parsed = from_epoch(value)
    assert parsed == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


def test_from_epoch_keeps_milliseconds() -> None:
    assert from_epoch(1458692752478) == datetime(2016, 3, 23, 0, 25, 52, 478000, tzinfo=UTC)


def test_from_epoch_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        from_epoch("yesterday")


def test_a_naive_created_at_is_taken_as_utc() -> None:
    message = make_message(created_at=datetime(2025, 3, 22, 18, 16, 28))
    assert message.created_at == datetime(2025, 3, 22, 18, 16, 28, tzinfo=UTC)
    assert message.created_at.utcoffset() == timedelta(0)


def test_an_offset_created_at_is_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    message = make_message(created_at=datetime(2025, 3, 22, 20, 16, 28, tzinfo=paris))
    assert message.created_at.utcoffset() == timedelta(0)
    assert message.created_at.hour == 18
    assert message.created_at == datetime(2025, 3, 22, 18, 16, 28, tzinfo=UTC)


def test_delivery_status_timestamps_are_utc_too() -> None:
    status = DeliveryStatus(
        platform=Platform.WHATSAPP,
        message_id="wamid.X",
        conversation_key="whatsapp:dm:106540352242922:16505551234",
        status="read",
        timestamp=datetime(2025, 6, 18, 12, 0, tzinfo=timezone(timedelta(hours=-4))),
    )
    assert status.timestamp == datetime(2025, 6, 18, 16, 0, tzinfo=UTC)
    assert status.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize("field", ["message_id", "conversation_key", "account_id"])
def test_identifiers_may_not_be_empty(field: str) -> None:
    with pytest.raises(ValidationError):
        make_message(**{field: ""})


def test_messages_are_immutable() -> None:
    message = make_message()
    with pytest.raises(ValidationError):
        message.text = "edited"  # type: ignore[misc]


def test_only_direct_messages_are_private() -> None:
    assert make_message(kind=Kind.DIRECT_MESSAGE).is_private
    for kind in (Kind.POST, Kind.COMMENT, Kind.REPLY, Kind.MENTION, Kind.REVIEW):
        assert not make_message(kind=kind).is_private


@pytest.mark.parametrize(
    "author,label",
    [
        (Author(platform_id="1", handle="furiouscamper", display_name="Jordan Brinks"), "Jordan Brinks (@furiouscamper)"),
        (Author(platform_id="1", display_name="Dana Reyes"), "Dana Reyes"),
        (Author(platform_id="1", handle="lena.k"), "@lena.k"),
        (Author(platform_id="7001234567890123"), "7001234567890123"),
    ],
)
def test_author_label(author: Author, label: str) -> None:
    assert author.label == label


# --- ticket formatting ---------------------------------------------------------------------


class TestSubject:
    def test_a_short_subject_names_source_author_and_text(self) -> None:
        assert ticket_subject(make_message()) == (
            "[X mention] Jordan Brinks (@furiouscamper): @TwitterDev my voucher code doesn't work"
        )

    def test_whitespace_and_line_breaks_are_collapsed(self) -> None:
        subject = ticket_subject(make_message(text="  Order 4411\n\n  arrived\tbroken  "))
        assert subject.endswith(": Order 4411 arrived broken")

    def test_a_long_text_is_cut_to_the_limit_with_an_ellipsis(self) -> None:
        text = "word " * 60
        subject = ticket_subject(make_message(text=text))
        prefix = "[X mention] Jordan Brinks (@furiouscamper): "
        assert subject.startswith(prefix)
        shown = subject[len(prefix) :]
        assert shown.endswith("…")
        assert len(shown) <= SUBJECT_TEXT_CHARS
        assert not shown[:-1].endswith(" ")  # no dangling space before the ellipsis
        assert text.strip().startswith(shown[:-1])

    def test_text_of_exactly_the_limit_is_not_cut(self) -> None:
        text = "a" * SUBJECT_TEXT_CHARS
        assert ticket_subject(make_message(text=text)).endswith(": " + text)

    def test_a_message_without_text_has_no_dangling_colon(self) -> None:
        message = make_message(
            platform=Platform.INSTAGRAM,
            kind=Kind.COMMENT,
            author=Author(platform_id="8001765432109876", handle="lena.k"),
            text="",
        )
        assert ticket_subject(message) == "[Instagram comment] @lena.k"

    @pytest.mark.parametrize(
        "platform,kind,label",
        [
            (Platform.FACEBOOK, Kind.POST, "Facebook post"),
            (Platform.FACEBOOK, Kind.REPLY, "Facebook reply"),
            (Platform.MESSENGER, Kind.DIRECT_MESSAGE, "Messenger direct message"),
            (Platform.WHATSAPP, Kind.DIRECT_MESSAGE, "WhatsApp direct message"),
            (Platform.INSTAGRAM, Kind.MENTION, "Instagram mention"),
        ],
    )
    def test_source_labels(self, platform: Platform, kind: Kind, label: str) -> None:
        assert source_label(make_message(platform=platform, kind=kind)) == label


class TestCommentBody:
    def test_text_then_footer_then_link(self) -> None:
        body = comment_body(make_message())
        assert body.split("\n") == [
            "@TwitterDev my voucher code doesn't work",
            "",
            "— Jordan Brinks (@furiouscamper) · X mention · 15,200 followers · 2018-10-10 20:19 UTC",
            "https://x.com/furiouscamper/status/1050118621198921728",
        ]

    def test_the_footer_time_is_utc_whatever_the_input_offset(self) -> None:
        message = make_message(created_at=datetime(2018, 10, 10, 22, 19, 24, tzinfo=timezone(timedelta(hours=2))))
        assert "· 2018-10-10 20:19 UTC" in comment_body(message)

    def test_no_follower_count_no_followers_in_the_footer(self) -> None:
        message = make_message(
            platform=Platform.MESSENGER,
            kind=Kind.DIRECT_MESSAGE,
            author=Author(platform_id="7001234567890123"),
            permalink=None,
        )
        body = comment_body(message)
        assert "followers" not in body
        assert body.endswith("— 7001234567890123 · Messenger direct message · 2018-10-10 20:19 UTC")

    def test_attachments_are_listed_with_url_or_media_id(self) -> None:
        message = make_message(
            platform=Platform.WHATSAPP,
            kind=Kind.DIRECT_MESSAGE,
            text="",
            permalink=None,
            attachments=(
                Attachment(type="image", media_id="1003383421387256", mime_type="image/jpeg"),
                Attachment(type="document", media_id="55", caption="invoice.pdf"),
                Attachment(type="photo", url="https://pbs.twimg.com/media/DpLhHB7U8AA5Tjq.jpg"),
            ),
        )
        lines = comment_body(message).split("\n")
        assert lines[:4] == [
            "(no text)",
            "[image] media id 1003383421387256",
            "[document] media id 55 (invoice.pdf)",
            "[photo] https://pbs.twimg.com/media/DpLhHB7U8AA5Tjq.jpg",
        ]


def test_ticket_tags_name_the_bridge_platform_and_kind() -> None:
    assert ticket_tags(make_message()) == ["socialdesk", "x", "mention"]
    assert ticket_tags(make_message(platform=Platform.WHATSAPP, kind=Kind.DIRECT_MESSAGE)) == [
        "socialdesk",
        "whatsapp",
        "direct_message",
    ]


def test_message_reference_is_platform_scoped() -> None:
    assert message_reference(make_message()) == "x:1050118621198921728"
    assert message_reference(make_message(platform=Platform.INSTAGRAM, message_id="1050118621198921728")) != (
        message_reference(make_message())
    )


# --- batches ---------------------------------------------------------------------------------


def test_an_ignored_event_keeps_its_reason_and_merging_keeps_count_and_reasons() -> None:
    batch = NormalizedBatch.ignoring("read receipt")
    batch.extend(NormalizedBatch.ignoring("reaction"))
    batch.extend(NormalizedBatch(ignored=1))  # a caller that only counts
    assert (batch.ignored, batch.ignored_reasons) == (3, ["read receipt", "reaction"])


# --- change notes ------------------------------------------------------------------------------


class TestChangeNote:
    def test_an_edit_quotes_the_new_text(self) -> None:
        edit = make_message(message_id="1050118621198921728:edit:1", edit_of="1050118621198921728", text="Fixed, thanks")
        assert change_note(edit) == (
            "Jordan Brinks (@furiouscamper) edited their X mention on 2018-10-10 20:19 UTC. It now reads:\n\nFixed, thanks"
        )

    def test_a_deleted_public_message_is_deleted(self) -> None:
        deletion = make_message(message_id="1050118621198921728:deleted", edit_of="1050118621198921728", deleted=True, text="")
        assert change_note(deletion) == (
            "Jordan Brinks (@furiouscamper) deleted their X mention on 2018-10-10 20:19 UTC. It is no longer visible on X; "
            "the copy on this ticket stays for the record."
        )

    def test_a_deleted_private_message_was_unsent(self) -> None:
        deletion = make_message(platform=Platform.INSTAGRAM, kind=Kind.DIRECT_MESSAGE, message_id="m:deleted", edit_of="m",
                                deleted=True, text="")
        assert change_note(deletion).startswith(
            "Jordan Brinks (@furiouscamper) unsent (deleted) their Instagram direct message on 2018-10-10 20:19 UTC."
        )


# --- which messages open a ticket ---------------------------------------------------------------


class TestTicketPolicy:
    policy = TicketPolicy()

    def test_a_deletion_opens_no_ticket_whatever_it_deletes(self) -> None:
        for kind in Kind:
            deletion = make_message(kind=kind, message_id="m:deleted", edit_of="m", deleted=True, text="")
            assert not self.policy.opens_ticket(deletion), kind

    def test_an_edit_of_a_message_we_never_saw_opens_one(self) -> None:
        assert self.policy.opens_ticket(make_message(message_id="m:edit:1", edit_of="m", text="the only copy of my words"))

    def test_a_bare_bot_command_opens_none(self) -> None:
        start = make_message(platform=Platform.TELEGRAM, kind=Kind.DIRECT_MESSAGE, text="/start", bot_command="/start")
        assert not self.policy.opens_ticket(start)
        assert self.policy.opens_ticket(start.model_copy(update={"text": "/start my order is late", "bot_command": None}))

    @pytest.mark.parametrize(
        ("rating", "recommends", "opens"),
        [(3, None, True), (4, None, False), (None, False, True), (None, True, False), (2, True, True)],
    )
    def test_reviews_open_one_when_they_need_an_agent(self, rating: int | None, recommends: bool | None, opens: bool) -> None:
        review = make_message(platform=Platform.FACEBOOK, kind=Kind.REVIEW, rating=rating, recommends=recommends)
        assert self.policy.opens_ticket(review) is opens
