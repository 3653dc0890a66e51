"""What every real payload in ``../shared/realpay`` must become, written by hand from the
platforms' documentation (never generated from our own output).

One entry per file name. The rules they follow, by platform:

* Meta Page feed (Graph API webhooks reference, ``page``): a comment or post by the Page
  itself is outbound (stored, never ticketed); ``edited``/``remove`` are changes of the
  original (``<id>:edit:<first 16 hex of sha256(new text)>``, ``<id>:deleted``); Graph
  <= 2.10 named the author in ``sender_id``/``sender_name`` instead of ``from``; a Page
  ``mention`` is a mention conversation of its own; reactions, likes and hidden comments
  are ignored. ``ratings``: a new, edited or removed rating/recommendation is a review; a
  comment under one joins that review's conversation; a like on one is ignored.
* Messenger / Instagram Direct (Messenger Platform webhook events): ``message`` is a
  message, ``message.is_deleted`` an unsend (``<mid>:deleted``), ``message_edit`` an edit
  (``<mid>:edit:<num_edit>``); ``standby`` (handover protocol) is read like ``messaging``;
  receipts, reactions, postbacks, opt-ins and referrals are ignored. Attachments that are
  not files (location, product template, fallback link) are written into the text.
* WhatsApp Cloud API: the customer is the BSUID (``from_user_id``/``user_id``) when the
  payload has one, else the phone (``from``/``wa_id``), whose ``+<phone>`` is the handle; a
  group message (``group_id``) is the group's conversation; ``contacts``, ``order``,
  ``location`` and unsupported types get readable text; reactions, system messages,
  ``user_id_update`` and group lifecycle fields are ignored; statuses are receipts.
* LINE Messaging API: one-to-one chats key on the user, groups and rooms on the chat;
  ``unsend`` is a deletion and ``messageEdited`` an edit (``<id>:edit:<timestamp>``);
  follow, unfollow, join, memberJoined, postback and unknown types are ignored.
* Telegram Bot API: ``<chat id>:<message_id>``; edits ``...:edit:<edit_date>``; a message
  that is one bot command (``/start``) is stored but opens no ticket; channel posts and
  ``my_chat_member`` are ignored.
* X Account Activity API: text is HTML-unescaped; typing indicators are ignored; the
  brand's own deleted tweet is ignored.

``Helpdesk`` says what reaches the helpdesk from this delivery alone, on an empty stack.
"""

from __future__ import annotations

from chalicelib.models import Kind
from tests.conformance.realpay import TELEGRAM_BOT_ID, Expect, Helpdesk, Msg, Status

TICKET, NOTE, NO_TICKET = Helpdesk.TICKET, Helpdesk.NOTE, Helpdesk.NO_TICKET
DM, COMMENT, REPLY, POST, MENTION, REVIEW = (
    Kind.DIRECT_MESSAGE,
    Kind.COMMENT,
    Kind.REPLY,
    Kind.POST,
    Kind.MENTION,
    Kind.REVIEW,
)


def maps(lat: str, lon: str) -> str:
    """The map link a shared location's text carries (Google Maps URLs, ``search`` action)."""
    return f"https://www.google.com/maps/search/?api=1&query={lat}%2C{lon}"


# --- LINE (destination U123) ----------------------------------------------------------------

LINE_USER = "U206d25c2ea6bd87c17655609a1c37cb8"
LINE_ROOM = "Ra8dbf4673c4c812cd491258042226c99"
LINE_GROUP = "Ca56f94637cc4347f90a25382909b24b9"
LINE_DM = f"line:dm:U123:{LINE_USER}"


def line_dm(text: str, *, id: str = "325708", attachments: tuple[str, ...] = ()) -> Msg:  # noqa: A002
    return Msg(id=id, key=LINE_DM, kind=DM, author=LINE_USER, text=text, attachments=attachments)


LINE: dict[str, Expect] = {
    "line__sdkpy__00_text_user.json": Expect(TICKET, (line_dm("Hello, world"),)),
    # A room member LINE does not identify (no userId): the room itself speaks.
    "line__sdkpy__01_image_room_external.json": Expect(
        TICKET,
        (
            Msg(
                id="325708",
                key=f"line:group:U123:{LINE_ROOM}",
                kind=COMMENT,
                author=LINE_ROOM,
                text="",
                attachments=("image",),
            ),
        ),
    ),
    "line__sdkpy__02_video_external.json": Expect(TICKET, (line_dm("", attachments=("video",)),)),
    "line__sdkpy__03_audio_external.json": Expect(TICKET, (line_dm("", attachments=("audio",)),)),
    "line__sdkpy__04_location.json": Expect(
        TICKET,
        (
            line_dm(
                "Shared a location: my location, Tokyo (35.65910807942215, 139.70372892916203) "
                + maps("35.65910807942215", "139.70372892916203")
            ),
        ),
    ),
    # A message sticker: ``text`` is what the user typed on it; ``keywords`` describe the sticker.
    "line__sdkpy__05_sticker_with_text.json": Expect(TICKET, (line_dm("Just sticker (sticker: Love You, Love)"),)),
    "line__sdkpy__06_follow.json": Expect(NO_TICKET, ignored=("follow",)),
    "line__sdkpy__07_unfollow.json": Expect(NO_TICKET, ignored=("unfollow",)),
    "line__sdkpy__08_join.json": Expect(NO_TICKET, ignored=("joined a group",)),
    "line__sdkpy__10_postback.json": Expect(NO_TICKET, ignored=("postback",)),
    "line__sdkpy__14_text_group.json": Expect(
        TICKET,
        (Msg(id="325708", key=f"line:group:U123:{LINE_GROUP}", kind=COMMENT, author=LINE_USER, text="Hello, world"),),
    ),
    "line__sdkpy__15_text_room.json": Expect(
        TICKET,
        (Msg(id="325708", key=f"line:group:U123:{LINE_ROOM}", kind=COMMENT, author=LINE_USER, text="Hello, world"),),
    ),
    "line__sdkpy__19_member_joined.json": Expect(NO_TICKET, ignored=("member joined",)),
    "line__sdkpy__21_file.json": Expect(TICKET, (line_dm("", attachments=("file",)),)),
    # The user unsent message 325708 in the group: a deletion, which alone opens nothing.
    "line__sdkpy__22_unsend.json": Expect(
        NO_TICKET,
        (
            Msg(
                id="325708:deleted",
                key=f"line:group:U123:{LINE_GROUP}",
                kind=COMMENT,
                author=LINE_USER,
                text="",
                edit_of="325708",
                deleted=True,
            ),
        ),
        after="line__sdkpy__14_text_group.json",
    ),
    "line__sdkpy__24_image_imageset.json": Expect(
        TICKET, (line_dm("", id="354718705033693861", attachments=("image",)),)
    ),
    # A redelivery (deliveryContext.isRedelivery) is the same message: same id.
    "line__sdkpy__25_text_redelivery.json": Expect(TICKET, (line_dm("Hello, world"),)),
    # An edit whose original we never saw still opens a ticket: it is the customer's only copy.
    "line__sdkpy__26_message_edited.json": Expect(
        TICKET,
        (
            Msg(
                id="325708:edit:1462629479859",
                key=LINE_DM,
                kind=DM,
                author=LINE_USER,
                text="Hello, edited world",
                edit_of="325708",
            ),
        ),
        after="line__sdkpy__00_text_user.json",
    ),
    "line__sdkpy__27_undefined_type.json": Expect(NO_TICKET, ignored=("'undefined'",)),
}


# --- Instagram (chatwoot factories, restfb captures) ------------------------------------------

IG_SENDER = "Sender-id-1"


def ig_dm(account: str, text: str, *, attachments: tuple[str, ...] = ()) -> Msg:
    return Msg(
        id="message-id-1",
        key=f"instagram:dm:{account}:{IG_SENDER}",
        kind=DM,
        author=IG_SENDER,
        text=text,
        attachments=attachments,
    )


INSTAGRAM: dict[str, Expect] = {
    "meta__chatwoot__ig_attachment_share.json": Expect(
        TICKET, (ig_dm("instagram-message-id-1234", "", attachments=("share",)),)
    ),
    "meta__chatwoot__ig_message_create.json": Expect(
        TICKET, (ig_dm("instagram-message-id-123", "This is the first message from the customer"),)
    ),
    # Handover protocol: another app owns the thread; the customer's words still count.
    "meta__chatwoot__ig_message_standby.json": Expect(
        TICKET,
        (ig_dm("instagram-message-id-123", "This is the first standby message from the customer, after 24 hours."),),
    ),
    "meta__chatwoot__ig_story_mention.json": Expect(
        TICKET,
        (ig_dm("instagram-message-id-1234", "Mentioned the account in their story", attachments=("story_mention",)),),
    ),
    # is_echo: the business's own message, keyed on the customer (the recipient).
    "meta__chatwoot__ig_story_mention_echo.json": Expect(
        NO_TICKET,
        (
            Msg(
                id="message-id-1",
                key="instagram:dm:instagram-message-id-1234:chatwoot-app-user-id-1",
                kind=DM,
                author=IG_SENDER,
                text="Mentioned the account in their story",
                attachments=("story_mention",),
                outbound=True,
            ),
        ),
    ),
    "meta__chatwoot__ig_story_reply.json": Expect(
        TICKET, (ig_dm("instagram-message-id-123", "This is the story reply"),)
    ),
    "meta__chatwoot__ig_test_text_event.json": Expect(
        TICKET, (Msg(id="random_mid", key="instagram:dm:0:12334", kind=DM, author="12334", text="random_text"),)
    ),
    "meta__chatwoot__ig_unsend.json": Expect(
        NO_TICKET,
        (
            Msg(
                id="message-id-to-delete:deleted",
                key=f"instagram:dm:instagram-message-id-123:{IG_SENDER}",
                kind=DM,
                author=IG_SENDER,
                text="",
                edit_of="message-id-to-delete",
                deleted=True,
            ),
        ),
    ),
    "meta__restfb__instagram_messaging-attachment-unsupported.json": Expect(
        TICKET,
        (
            Msg(
                id="aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDUyNjkxNjAwMDk4OjM0MDI4MjM2Njg0MTcxMDMwMDk0OTEyODUyNTYwOTEwODQ0ODU4Mj"
                "ozMDc2OTU4MTA5OTY0OTI5MzAzMjAwODc1MDUxMTE2MTM0NAZDZD",
                key="instagram:dm:17841452691600098:5614879045272581",
                kind=DM,
                author="5614879045272581",
                text="[Instagram did not pass this message on: unsupported attachment]",
                attachments=("unsupported_type",),
            ),
        ),
    ),
    "meta__restfb__instagram_messaging-seen.json": Expect(NO_TICKET, ignored=("read receipt",)),
    "meta__restfb__instagram_wh-comments-2021.json": Expect(
        TICKET,
        (
            Msg(
                id="123456789",
                key="instagram:comment:987654321",
                kind=REPLY,
                author="1234536447",
                label="@testuser",
                text="This is an example.",
            ),
        ),
    ),
    # Comment notifications without ``from``: the author is unknown, the words are kept.
    "meta__restfb__instagram_wh-comments.json": Expect(
        TICKET,
        (
            Msg(
                id="123456789",
                key="instagram:comment:123456789",
                kind=COMMENT,
                author="unknown",
                label="Unknown Instagram user",
                text="This is an example.",
            ),
        ),
    ),
    "meta__restfb__instagram_wh-livecomments.json": Expect(
        TICKET,
        (
            Msg(
                id="123456789",
                key="instagram:comment:123456789",
                kind=COMMENT,
                author="unknown",
                label="Unknown Instagram user",
                text="This is an example.",
            ),
        ),
    ),
    # Mentions carry only ids; the text must be fetched, so the ticket says where to look.
    "meta__restfb__instagram_wh-mentions.json": Expect(
        TICKET,
        (
            Msg(
                id="mention:17887498072083520",
                key="instagram:mention:17887498072083520",
                kind=MENTION,
                author="unknown",
                label="Unknown Instagram user",
                text="@mentioned in a comment on media 17887498072083520",
            ),
        ),
    ),
}


# --- Facebook Page feed and ratings (Page 1234567890321) ----------------------------------------

PAGE = "1234567890321"
TESTER = "705955836155788"


def page_comment(text: str, *, attachments: tuple[str, ...] = ()) -> Msg:
    """The Page's own comment 901097836652708_903438993085259 (its author is the Page)."""
    comment = "901097836652708_903438993085259"
    return Msg(
        id=comment,
        key=f"facebook:comment:{comment}",
        kind=COMMENT,
        author=PAGE,
        label="Tester",
        text=text,
        attachments=attachments,
        outbound=True,
    )


FACEBOOK: dict[str, Expect] = {
    "meta__restfb__webhooks_feed-comment-add-211.json": Expect(NO_TICKET, (page_comment("and the next one"),)),
    "meta__restfb__webhooks_feed-comment-add-with-photo.json": Expect(
        NO_TICKET, (page_comment("and the next one", attachments=("image",)),)
    ),
    "meta__restfb__webhooks_feed-comment-add-with-video.json": Expect(
        NO_TICKET, (page_comment("and the next one", attachments=("video",)),)
    ),
    "meta__restfb__webhooks_feed-comment-edited-25.json": Expect(
        NO_TICKET,
        (
            Msg(
                id="900728623356296_900744590021366:edit:cc36d8c68c316257",
                key="facebook:comment:900728623356296_900744590021366",
                kind=COMMENT,
                author=PAGE,
                label="Tester",
                text="Let's see the Webhooks in action :D",
                outbound=True,
                edit_of="900728623356296_900744590021366",
            ),
        ),
    ),
    "meta__restfb__webhooks_feed-comment-hide.json": Expect(NO_TICKET, ignored=("hidden",)),
    "meta__restfb__webhooks_feed-comment-remove-25.json": Expect(
        NO_TICKET,
        (
            Msg(
                id="905578656204626_905579239537901:deleted",
                key="facebook:comment:905578656204626_905579239537901",
                kind=COMMENT,
                author=PAGE,
                label="John Doe",
                text="",
                outbound=True,
                edit_of="905578656204626_905579239537901",
                deleted=True,
            ),
        ),
    ),
    "meta__restfb__webhooks_feed-photo-add-message.json": Expect(
        NO_TICKET,
        (
            Msg(
                id=f"{PAGE}_900767076685784",
                key=f"facebook:post:{PAGE}_900767076685784",
                kind=POST,
                author=PAGE,
                label="Testers Paradise",
                text="A new really great Photo",
                attachments=("image",),
                outbound=True,
            ),
        ),
    ),
    # A visitor post on the Page: a conversation of its own.
    "meta__restfb__webhooks_feed-post-add-25.json": Expect(
        TICKET,
        (
            Msg(
                id=f"{PAGE}_7293787835232",
                key=f"facebook:post:{PAGE}_7293787835232",
                kind=POST,
                author="8423678347823",
                label="John Doe",
                text="Let's check this",
            ),
        ),
    ),
    "meta__restfb__webhooks_feed-post-remove-25.json": Expect(
        NO_TICKET,
        (
            Msg(
                id=f"{PAGE}_901097836652708:deleted",
                key=f"facebook:post:{PAGE}_901097836652708",
                kind=POST,
                author=PAGE,
                label="John Doe",
                text="",
                outbound=True,
                edit_of=f"{PAGE}_901097836652708",
                deleted=True,
            ),
        ),
    ),
    "meta__restfb__webhooks_feed-reaction-add.json": Expect(NO_TICKET, ignored=("reaction",)),
    # A post sharing a link, written by the Page.
    "meta__restfb__webhooks_feed-share-add-25.json": Expect(
        NO_TICKET,
        (
            Msg(
                id=f"{PAGE}_98735342324352",
                key=f"facebook:post:{PAGE}_98735342324352",
                kind=POST,
                author=PAGE,
                label="Test Sender",
                text="Ein Link zu was ganz anderem: www.daserste.de",
                attachments=("link",),
                outbound=True,
            ),
        ),
    ),
    "meta__restfb__webhooks_feed-status-add-25.json": Expect(
        NO_TICKET,
        (
            Msg(
                id=f"{PAGE}_930145403745849",
                key=f"facebook:post:{PAGE}_930145403745849",
                kind=POST,
                author=PAGE,
                label="Tester",
                text="This is just a short test message",
                outbound=True,
            ),
        ),
    ),
    "meta__restfb__webhooks_feed-status-add-photos.json": Expect(
        NO_TICKET,
        (
            Msg(
                id=f"{PAGE}_930145403745849",
                key=f"facebook:post:{PAGE}_930145403745849",
                kind=POST,
                author=PAGE,
                label="Tester",
                text="This is just a short test message",
                attachments=("image", "image", "image"),
                outbound=True,
            ),
        ),
    ),
    "meta__restfb__webhooks_feed-two-entries-25.json": Expect(NO_TICKET, ignored=("'parking'", "'payment_options'")),
    "meta__restfb__webhooks_feed-video-add.json": Expect(
        NO_TICKET,
        (
            Msg(
                id=f"{PAGE}_901097836652708",
                key=f"facebook:post:{PAGE}_901097836652708",
                kind=POST,
                author=PAGE,
                label="Tester",
                text="Test video",
                attachments=("video",),
                outbound=True,
            ),
        ),
    ),
    # The Page was @mentioned: the notification names no author.
    "meta__restfb__webhooks_mention-comment-add.json": Expect(
        TICKET,
        (
            Msg(
                id="mention:7363534231324_3754798971271444",
                key="facebook:mention:7363534231324_3754798971271444",
                kind=MENTION,
                author="unknown",
                label="Unknown Facebook user",
                text="Just a test message",
            ),
        ),
    ),
    "meta__restfb__webhooks_mention-post-add-real.json": Expect(
        TICKET,
        (
            Msg(
                id=f"mention:{PAGE}_98722536423179",
                key=f"facebook:mention:{PAGE}_98722536423179",
                kind=MENTION,
                author="unknown",
                label="Unknown Facebook user",
                text="A test post message",
            ),
        ),
    ),
    "meta__restfb_issue686__feed_like_comment.json": Expect(NO_TICKET, ignored=("like",)),
    # Graph 2.11 replaced sender_id/sender_name by ``from``.
    "meta__restfb_issue817__feed_comment_v211.json": Expect(
        TICKET,
        (
            Msg(
                id="987654321_1491873277575158",
                key="facebook:comment:987654321_1491873277575158",
                kind=COMMENT,
                author="123456789098764",
                label="Test User or Page",
                text="more attachments more fun",
            ),
        ),
    ),
    # A comment under a review belongs to the review's conversation.
    "meta__restfb__webhooks_ratings-comment-add-25.json": Expect(
        TICKET,
        (
            Msg(
                id="904801129604590_904802532937783",
                key="facebook:review:6767676767",
                kind=COMMENT,
                author=TESTER,
                label="Tester",
                text="",
            ),
        ),
    ),
    "meta__restfb__webhooks_ratings-like-add-25.json": Expect(NO_TICKET, ignored=("like",)),
    # 3 stars: at or under REVIEW_TICKET_MAX_STARS (3), so it needs an agent.
    "meta__restfb__webhooks_ratings-rating-add-25.json": Expect(
        TICKET,
        (
            Msg(
                id="904801129604590",
                key="facebook:review:904801129604590",
                kind=REVIEW,
                author=TESTER,
                label="Tester",
                text="Ja ziemlich coole Sache",
                rating=3,
            ),
        ),
    ),
    # Graph 3.1 added recommendation_type, in capitals here: compared case-insensitively.
    "meta__restfb__webhooks_ratings-rating-add-31.json": Expect(
        TICKET,
        (
            Msg(
                id="904801129604590",
                key="facebook:review:904801129604590",
                kind=REVIEW,
                author=TESTER,
                label="Tester",
                text="Ja ziemlich coole Sache",
                rating=3,
                recommends=True,
            ),
        ),
    ),
    "meta__restfb__webhooks_ratings-rating-remove-25.json": Expect(
        NO_TICKET,
        (
            Msg(
                id="904801129604590:deleted",
                key="facebook:review:904801129604590",
                kind=REVIEW,
                author=TESTER,
                text="",
                edit_of="904801129604590",
                deleted=True,
            ),
        ),
        after="meta__restfb__webhooks_ratings-rating-add-25.json",
    ),
    "meta__restfb__webhooks_unknown-change-value.json": Expect(NO_TICKET, ignored=("'foo'",)),
}


# --- Messenger (Page 12345654332 unless said otherwise) -------------------------------------------

PSID = "987654321432"
MESSENGER_DM = f"messenger:dm:12345654332:{PSID}"
BASIC_MID = "mid.1457764197618:41d102a3e1ae206a38"
ATTACHMENT_MID = "mid.1458696618141:b4ef9d19ec21086067"


def messenger(id: str, text: str, *, key: str = MESSENGER_DM, attachments: tuple[str, ...] = ()) -> Msg:  # noqa: A002
    return Msg(id=id, key=key, kind=DM, author=PSID, text=text, attachments=attachments)


MESSENGER: dict[str, Expect] = {
    "meta__restfb__webhooks_messaging-delivery-basic.json": Expect(NO_TICKET, ignored=("delivery receipt",)),
    "meta__restfb__webhooks_messaging-message-basic.json": Expect(TICKET, (messenger(BASIC_MID, "hello, world!"),)),
    # message_edits: the 37th edit of BASIC_MID.
    "meta__restfb__webhooks_messaging-message-edits.json": Expect(
        TICKET,
        (
            Msg(
                id=f"{BASIC_MID}:edit:37",
                key=MESSENGER_DM,
                kind=DM,
                author=PSID,
                text="hello, world!",
                edit_of=BASIC_MID,
            ),
        ),
        after="meta__restfb__webhooks_messaging-message-basic.json",
    ),
    # ``payload`` of a fallback attachment may be a string: title and url are beside it.
    "meta__restfb__webhooks_messaging-message-fallback-attachment.json": Expect(
        TICKET, (messenger(ATTACHMENT_MID, "Shared a link: Legacy Attachment https://www.messenger.com/"),)
    ),
    "meta__restfb__webhooks_messaging-message-isdeleted.json": Expect(
        NO_TICKET,
        (
            Msg(
                id="message_id:deleted",
                key=MESSENGER_DM,
                kind=DM,
                author=PSID,
                text="",
                edit_of="message_id",
                deleted=True,
            ),
        ),
        after="meta__restfb__webhooks_messaging-message-isunsupported.json",
    ),
    "meta__restfb__webhooks_messaging-message-isunsupported.json": Expect(
        TICKET, (messenger("message_id", "[Messenger did not pass this message on: unsupported message type]"),)
    ),
    "meta__restfb__webhooks_messaging-message-location-attachment.json": Expect(
        TICKET, (messenger(ATTACHMENT_MID, "Shared a location: 12.34, 43.21 " + maps("12.34", "43.21")),)
    ),
    "meta__restfb__webhooks_messaging-message-media-attachment.json": Expect(
        TICKET, (messenger(ATTACHMENT_MID, "", attachments=("image",)),)
    ),
    "meta__restfb__webhooks_messaging-message-product-template.json": Expect(
        TICKET,
        (
            Msg(
                id="mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c",
                key="messenger:dm:682498302938465:<PSID>",
                kind=DM,
                author="<PSID>",
                text="Shared a product: Some product title ($40) https://fb.cdn.com/sdsd",
            ),
        ),
    ),
    "meta__restfb__webhooks_messaging-message-quickreply.json": Expect(
        TICKET, (messenger(ATTACHMENT_MID, "quick reply text", key=f"messenger:dm:{PAGE}:{PSID}"),)
    ),
    "meta__restfb__webhooks_messaging-message-reply-1.json": Expect(TICKET, (messenger(BASIC_MID, "hello, world!"),)),
    "meta__restfb__webhooks_messaging-message-sticker.json": Expect(
        TICKET, (messenger("mid.12345654332:226a70a704", "[sticker]", attachments=("image",)),)
    ),
    "meta__restfb__webhooks_messaging-optin-basic.json": Expect(NO_TICKET, ignored=("opt-in",)),
    "meta__restfb__webhooks_messaging-postback-basic.json": Expect(NO_TICKET, ignored=("postback",)),
    "meta__restfb__webhooks_messaging-postback-referral.json": Expect(NO_TICKET, ignored=("postback",)),
    "meta__restfb__webhooks_messaging-reaction-1.json": Expect(NO_TICKET, ignored=("reaction",)),
    "meta__restfb__webhooks_messaging-read-basic.json": Expect(NO_TICKET, ignored=("read receipt",)),
    "meta__restfb__webhooks_messaging-referral-basic.json": Expect(NO_TICKET, ignored=("referral",)),
}


# --- WhatsApp Cloud API -----------------------------------------------------------------------

WA_PNID = "106540352242922"  # Meta's OpenAPI examples
SHEENA = "16505551234"
SHEENA_DM = f"whatsapp:dm:{WA_PNID}:{SHEENA}"
SHEENA_LABEL = "Sheena Nelson (@+16505551234)"
BSUID = "US.13491208655302741918"
RESTFB_PNID = "10634295353625"
RESTFB_CUSTOMER = "491234567890"
RESTFB_WAMID = "wamid.HBgNNDkxNTIwOTgzMzM5OBUCABIYHGDEHJVFHJEVCFHJEVBCMTkyODk1OEIyAA=="


def sheena(id: str, text: str, *, attachments: tuple[str, ...] = ()) -> Msg:  # noqa: A002
    return Msg(id=id, key=SHEENA_DM, kind=DM, author=SHEENA, label=SHEENA_LABEL, text=text, attachments=attachments)


def restfb_wa(text: str, *, attachments: tuple[str, ...] = ()) -> Msg:
    return Msg(
        id=RESTFB_WAMID,
        key=f"whatsapp:dm:{RESTFB_PNID}:{RESTFB_CUSTOMER}",
        kind=DM,
        author=RESTFB_CUSTOMER,
        label="TestUser (@+491234567890)",
        text=text,
        attachments=attachments,
    )


WHATSAPP: dict[str, Expect] = {
    "meta__restfb__whatsapp_webhook-incoming-message-audio.json": Expect(
        TICKET, (restfb_wa("", attachments=("audio",)),)
    ),
    "meta__restfb__whatsapp_webhook-incoming-message-contacts2.json": Expect(
        TICKET,
        (
            Msg(
                id="wamid.HBg...",
                key="whatsapp:dm:REDACTED:REDACTED",
                kind=DM,
                author="REDACTED",
                label="REDACTED (@+REDACTED)",
                text="Shared 2 contacts: REDACTED, +39 393 REDACTED; REDACTED, +39 349 REDACTED",
            ),
        ),
    ),
    "meta__restfb__whatsapp_webhook-incoming-message-document.json": Expect(
        TICKET, (restfb_wa("RESTFB ANNIVERSARY", attachments=("document",)),)
    ),
    "meta__restfb__whatsapp_webhook-incoming-message-error.json": Expect(
        TICKET, (restfb_wa("[WhatsApp did not pass this message on: Message type is not currently supported]"),)
    ),
    # Sent to the BSUID: the receipt names only the BSUID, and keys on it.
    "meta__restfb__whatsapp_webhook-incoming-message-status-bsuid.json": Expect(
        NO_TICKET,
        statuses=(
            Status(
                id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                key=f"whatsapp:dm:{WA_PNID}:{BSUID}",
                status="delivered",
            ),
        ),
    ),
    "meta__restfb__whatsapp_webhook-incoming-message-status-errors.json": Expect(
        NO_TICKET,
        statuses=(
            Status(
                id="wamid.HBgLMzI0NzY3NTUzNzYVAgARGBIzOTI2MzFGRjdBRjA4M0Y2RDQA",
                key="whatsapp:dm:REDACTED:REDACTED",
                status="failed",
            ),
        ),
    ),
    "meta__restfb__whatsapp_webhook-incoming-message-sticker.json": Expect(
        TICKET, (restfb_wa("[sticker]", attachments=("sticker",)),)
    ),
    "meta__restfb__whatsapp_webhook-incoming-message-system-bsuid.json": Expect(
        NO_TICKET, ignored=("user_changed_user_id",)
    ),
    # A user known only by BSUID and username, writing in a group the business is in.
    "meta__restfb__whatsapp_webhook-incoming-message-text-bsuid.json": Expect(
        TICKET,
        (
            Msg(
                id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                key=f"whatsapp:group:{WA_PNID}:120363418770915618@g.us",
                kind=COMMENT,
                author=BSUID,
                label="Sheena Nelson (@realsheenanelson)",
                text="Does it come in another color?",
            ),
        ),
    ),
    "meta__restfb__whatsapp_webhook-incoming-message-video.json": Expect(
        TICKET, (restfb_wa("Video", attachments=("video",)),)
    ),
    "meta__restfb__whatsapp_webhook-userIdUpdate.json": Expect(NO_TICKET, ignored=("user_id_update",)),
    "meta__wa_openapi__button_message.json": Expect(
        TICKET, (sheena("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUU0M0MxQzQzMUJCMTMwNUZFOQA=", "Unsubscribe"),)
    ),
    "meta__wa_openapi__contact_sharing_message.json": Expect(
        TICKET,
        (
            sheena(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                "Shared a contact: Lucía Gómez (Google), +1 (983) 555-2319",
            ),
        ),
    ),
    "meta__wa_openapi__group_create_message.json": Expect(NO_TICKET, ignored=("group_lifecycle_update",)),
    "meta__wa_openapi__group_remove_participants.json": Expect(NO_TICKET, ignored=("group_participants_update",)),
    "meta__wa_openapi__group_settings_update.json": Expect(NO_TICKET, ignored=("group_settings_update",)),
    "meta__wa_openapi__image_message.json": Expect(
        TICKET,
        (
            sheena(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", "Taj Mahal", attachments=("image",)
            ),
        ),
    ),
    "meta__wa_openapi__interactive_button_reply_message.json": Expect(
        TICKET, (sheena("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=", "Cancel"),)
    ),
    "meta__wa_openapi__interactive_list_reply_message.json": Expect(
        TICKET, (sheena("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJDQ0NDM0FEODY4ODkzOTc5RgA=", "Priority Mail Express"),)
    ),
    "meta__wa_openapi__location_message.json": Expect(
        TICKET,
        (
            sheena(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTU2MjZEMDBGRkE3MENEMDE0RQA=",
                "Shared a location: Philz Coffee, 101 Forest Ave, Palo Alto, CA 94301 (37.44221496582, -122.16165924072) "
                + maps("37.44221496582", "-122.16165924072"),
            ),
        ),
    ),
    "meta__wa_openapi__order_message.json": Expect(
        TICKET,
        (
            sheena(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTEyQjFGNzI1QTQxMjI5QTMyOQA=",
                "Placed an order: 2 × di9ozbzfi4 at 30.00 USD, 1 × nqryix03ez at 25.00 USD (total 85.00 USD)",
            ),
        ),
    ),
    "meta__wa_openapi__reaction_message.json": Expect(NO_TICKET, ignored=("reaction",)),
    "meta__wa_openapi__system_message.json": Expect(NO_TICKET, ignored=("user_changed_number",)),
    "meta__wa_openapi__text_message.json": Expect(
        TICKET,
        (sheena("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", "Does it come in another color?"),),
    ),
    "meta__wa_openapi__text_message_from_click_to_whatsapp_ad.json": Expect(
        TICKET,
        (
            sheena(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=", "Hello! Can I get more info on this?"
            ),
        ),
    ),
    "meta__wa_openapi__text_message_with_context_product_inquiry.json": Expect(
        TICKET, (sheena("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTA2NTUwRkNEMDdFQjJCRUU0NQA=", "Is this still available?"),)
    ),
    "meta__wa_openapi__unsupported_message.json": Expect(
        TICKET,
        (
            sheena(
                "wamid.HBgLMTQyMDU1NTA3NDkVAgASGBI5N0MwRjg0RTVBNUI1RDA2OTkA",
                "[WhatsApp did not pass this message on: Message type is currently not supported.]",
            ),
        ),
    ),
}


# --- Telegram (bot TELEGRAM_BOT_ID) ------------------------------------------------------------

AIOGRAM_USER = "12345678"
AIOGRAM_DM = f"telegram:dm:{TELEGRAM_BOT_ID}:{AIOGRAM_USER}"
AIOGRAM_LABEL = "FirstName LastName (@username)"
ZAMMAD_USER = "111111"
ZAMMAD_DM = f"telegram:dm:{TELEGRAM_BOT_ID}:{ZAMMAD_USER}"
ZAMMAD_LABEL = "Test Firstname Test Lastname (@Testusername)"


def aiogram(text: str, *, attachments: tuple[str, ...] = ()) -> Msg:
    return Msg(
        id=f"{AIOGRAM_USER}:12345",
        key=AIOGRAM_DM,
        kind=DM,
        author=AIOGRAM_USER,
        label=AIOGRAM_LABEL,
        text=text,
        attachments=attachments,
    )


def zammad(number: int, text: str, *, attachments: tuple[str, ...] = ()) -> Msg:
    return Msg(
        id=f"{ZAMMAD_USER}:{number}",
        key=ZAMMAD_DM,
        kind=DM,
        author=ZAMMAD_USER,
        label=ZAMMAD_LABEL,
        text=text,
        attachments=attachments,
    )


TELEGRAM: dict[str, Expect] = {
    "telegram__aiogram__audio_caption.json": Expect(
        TICKET, (aiogram("This is my favourite song", attachments=("audio",)),)
    ),
    "telegram__aiogram__edited_message.json": Expect(
        TICKET,
        (
            Msg(
                id=f"{AIOGRAM_USER}:12345:edit:1508825379",
                key=AIOGRAM_DM,
                kind=DM,
                author=AIOGRAM_USER,
                label=AIOGRAM_LABEL,
                text="hi there (edited)",
                edit_of=f"{AIOGRAM_USER}:12345",
            ),
        ),
        after="telegram__aiogram__reply.json",
    ),
    "telegram__aiogram__forwarded.json": Expect(
        TICKET, (aiogram("Forwarded text with entities from public channel "),)
    ),
    "telegram__aiogram__game.json": Expect(TICKET, (aiogram("Shared a game: Karate Kido"),)),
    "telegram__aiogram__location.json": Expect(
        TICKET, (aiogram("Shared a location: 55.693416, 37.624605 " + maps("55.693416", "37.624605")),)
    ),
    "telegram__aiogram__reply.json": Expect(TICKET, (aiogram("Reply to quoted message"),)),
    "telegram__zammad__channel_text.json": Expect(NO_TICKET, ignored=("channel post",)),
    "telegram__zammad__personal3_document.json": Expect(
        TICKET,
        (
            Msg(
                id="1111112:3367",
                key=f"telegram:dm:{TELEGRAM_BOT_ID}:1111112",
                kind=DM,
                author="1111112",
                label="Test Firstname2 Test Lastname2 (@Testusername2)",
                text="",
                attachments=("document",),
            ),
        ),
    ),
    "telegram__zammad__personal4_sticker.json": Expect(
        TICKET,
        (
            Msg(
                id="3310000:273",
                key=f"telegram:dm:{TELEGRAM_BOT_ID}:3310000",
                kind=DM,
                author="3310000",
                label="Roberto Blanco",
                text="[sticker 💻]",
            ),
        ),
    ),
    "telegram__zammad__private_document.json": Expect(TICKET, (zammad(2, "", attachments=("document",)),)),
    # The user blocked the bot (status kicked): not a message.
    "telegram__zammad__private_my_chat_member.json": Expect(NO_TICKET, ignored=("bot's membership",)),
    "telegram__zammad__private_photo.json": Expect(
        TICKET, (zammad(3, "caption 123<b>abc</b>", attachments=("image",)),)
    ),
    # Pressing Start sends "/start": stored, but nobody needs to answer it.
    "telegram__zammad__private_start.json": Expect(NO_TICKET, (zammad(1, "/start"),)),
    "telegram__zammad__private_text.json": Expect(TICKET, (zammad(5, "Hello, I need your Help"),)),
    "telegram__zammad__private_video_without_mime_type.json": Expect(TICKET, (zammad(21, "", attachments=("video",)),)),
    "telegram__zammad__private_voice.json": Expect(TICKET, (zammad(7, "", attachments=("audio",)),)),
}


# --- X Account Activity API ----------------------------------------------------------------------

NICOLAS = "272953809"
RESISTBOT = "835740314006511618"
MY_GRAPE = "921069199228919809"


X: dict[str, Expect] = {
    "x__courier__dm_attachment.json": Expect(
        TICKET,
        (
            Msg(
                id="958501034212564996",
                key=f"x:dm:{RESISTBOT}:{NICOLAS}",
                kind=DM,
                author=NICOLAS,
                label="Nicolas Pottier (@nicpottier)",
                text="Hello",
                attachments=("photo",),
            ),
        ),
    ),
    # X escapes &, < and > in text; the customer wrote "&".
    "x__courier__dm_hello_amp.json": Expect(
        TICKET,
        (
            Msg(
                id="958501034212564996",
                key=f"x:dm:{RESISTBOT}:{NICOLAS}",
                kind=DM,
                author=NICOLAS,
                label="Nicolas Pottier (@nicpottier)",
                text="Hello World & good wishes.",
            ),
        ),
    ),
    "x__learnawesome__mention_in_self_reply.json": Expect(
        TICKET,
        (
            Msg(
                id="1332557345071644672",
                key="x:tweets:1114259648326987776:1247048165561270272",
                kind=MENTION,
                author="1247048165561270272",
                label="Tanu Learns (@TanuLearns)",
                text="@Learn_Awesome Save this",
            ),
        ),
    ),
    "x__snbot__dm_quick_reply_response.json": Expect(
        TICKET,
        (
            Msg(
                id="1179623320821489668",
                key=f"x:dm:858242295807696896:{MY_GRAPE}",
                kind=DM,
                author=MY_GRAPE,
                label="MY Grape (@MyGrape11)",
                text="잦은 요청",
            ),
        ),
    ),
    "x__snbot__dm_tweet_link.json": Expect(
        TICKET,
        (
            Msg(
                id="1179781369284612100",
                key=f"x:dm:858242295807696896:{MY_GRAPE}",
                kind=DM,
                author=MY_GRAPE,
                label="MY Grape (@MyGrape11)",
                text="https://t.co/vnTq9ngUDS",
            ),
        ),
    ),
    # Truncated at 140 characters: the full text is in extended_tweet.
    "x__snbot__quote_tweet_mention_extended.json": Expect(
        TICKET,
        (
            Msg(
                id="1179790868309368834",
                key="x:tweets:1014719446525476864:1158276305785221121",
                kind=MENTION,
                author="1158276305785221121",
                label="[커미션] 유 디자인 (@kim_jakup)",
                text="여유로워서... 연성교환... 구해봅니다..\n\n저는 디자인이고\n\n교환은 수공예 그림 글 작곡 등 장르 가리지 않습니다~!\n\n"
                "차액 입금 가능해요 플텍풀고 멘션주세요!\n\n@cmsn_d @cmsn_M @cmsn_RT @cmsn_w",
            ),
        ),
    ),
    "x__twitterdocs__dm_indicate_typing.json": Expect(NO_TICKET, ignored=("typing indicator",)),
    # The docs' example nests ``users`` inside ``apps``: the sender is known by id only.
    "x__twitterdocs__dm_message_create.json": Expect(
        TICKET,
        (
            Msg(
                id="954491830116155396",
                key="x:dm:4337869213:3001969357",
                kind=DM,
                author="3001969357",
                text="Hello World!",
            ),
        ),
    ),
    # The subscribed account deleted its own tweet.
    "x__twitterdocs__tweet_delete.json": Expect(NO_TICKET, ignored=("own tweet",)),
}


PAYLOADS: dict[str, Expect] = {**LINE, **INSTAGRAM, **FACEBOOK, **MESSENGER, **WHATSAPP, **TELEGRAM, **X}


# --- two-step sequences: what a deletion does with and without a ticket -------------------------

COMMENT_817 = "987654321_1491873277575158"
COMMENT_817_MSG = Msg(
    id=COMMENT_817,
    key=f"facebook:comment:{COMMENT_817}",
    kind=COMMENT,
    author="123456789098764",
    label="Test User or Page",
    text="more attachments more fun",
)
COMMENT_817_REMOVED = Msg(
    id=f"{COMMENT_817}:deleted",
    key=f"facebook:comment:{COMMENT_817}",
    kind=COMMENT,
    author="123456789098764",
    label="Test User or Page",
    text="",
    edit_of=COMMENT_817,
    deleted=True,
)
REVIEW_KEY = "facebook:review:904801129604590"
RATING_REMOVED = Msg(
    id="904801129604590:deleted",
    key=REVIEW_KEY,
    kind=REVIEW,
    author=TESTER,
    text="",
    edit_of="904801129604590",
    deleted=True,
)

SEQUENCES: dict[str, tuple[Expect, ...]] = {
    "meta__seq__feed_comment_then_remove.json": (
        Expect(TICKET, (COMMENT_817_MSG,)),
        Expect(NOTE, (COMMENT_817_REMOVED,)),
    ),
    # The original never reached us: the removal is kept, nobody is bothered.
    "meta__seq__feed_comment_remove_only.json": (Expect(NO_TICKET, (COMMENT_817_REMOVED,)),),
    # Praise opens no ticket, and neither does its removal.
    "meta__seq__positive_recommendation_then_remove.json": (
        Expect(
            NO_TICKET,
            (
                Msg(
                    id="904801129604590",
                    key=REVIEW_KEY,
                    kind=REVIEW,
                    author=TESTER,
                    label="Tester",
                    text="Ja ziemlich coole Sache",
                    recommends=True,
                ),
            ),
        ),
        Expect(NO_TICKET, (RATING_REMOVED,)),
    ),
    "meta__seq__rating_then_remove.json": (
        Expect(
            TICKET,
            (
                Msg(
                    id="904801129604590",
                    key=REVIEW_KEY,
                    kind=REVIEW,
                    author=TESTER,
                    label="Tester",
                    text="Ja ziemlich coole Sache",
                    rating=3,
                ),
            ),
        ),
        Expect(NOTE, (RATING_REMOVED,)),
    ),
}
