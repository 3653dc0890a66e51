"""How a social message reads inside a ticket, shared by every helpdesk adapter."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.channels.registry import platform_label
from chalicelib.models import KIND_LABELS, Platform, SocialMessage, source_name
from chalicelib.sync.attachments import is_file_attachment

SUBJECT_TEXT_CHARS = 80


def message_reference(message: SocialMessage) -> str:
    """A stable reference to one platform message, stored in the helpdesk so the
    bridge can tell later whether the message already reached the ticket."""
    return f"{message.platform.value}:{message.message_id}"


def source_label(message: SocialMessage) -> str:
    """E.g. ``Instagram comment``, ``WhatsApp direct message`` or ``trustpilot review``."""
    if message.platform is Platform.OTHER and message.source:
        platform = source_name(message.source)
    else:
        platform = platform_label(message.platform)
    label = f"{platform} {KIND_LABELS[message.kind]}"
    return f"{label} ({message.rating}★)" if message.rating is not None else label


def ticket_subject(message: SocialMessage) -> str:
    """A subject agents can scan: where, who, and the start of what they wrote."""
    text = " ".join(message.text.split())
    if len(text) > SUBJECT_TEXT_CHARS:
        text = text[: SUBJECT_TEXT_CHARS - 1].rstrip() + "…"
    who = message.author.label
    return f"[{source_label(message)}] {who}: {text}" if text else f"[{source_label(message)}] {who}"


def comment_body(message: SocialMessage, problems: Sequence[str] | None = None) -> str:
    """The comment text: what the customer wrote, then who, where and a link.

    ``problems`` is given when the message's files were fetched to be attached to the
    comment: each is a note about a file that could not be (see
    ``chalicelib.sync.attachments.problem_note``), shown under the text, and only the
    attachments that are links rather than files (a shared post, a map) are listed.
    Without it (no attachment fetching), every attachment is listed as its link or
    media id, as before.
    """
    lines = [message.text.strip() or "(no text)"]
    for attachment in message.attachments:
        if problems is not None and is_file_attachment(attachment):
            continue  # attached to the comment, or explained in a note below
        target = attachment.url or (f"media id {attachment.media_id}" if attachment.media_id else "")
        caption = f" ({attachment.caption})" if attachment.caption else ""
        lines.append(f"[{attachment.type}] {target}{caption}".rstrip())
    if problems:
        lines.append("")
        lines.extend(" ".join(str(problem).split()) for problem in problems)
    footer = f"— {message.author.label} · {source_label(message)}"
    if message.author.follower_count is not None:
        footer += f" · {message.author.follower_count:,} followers"
    footer += f" · {message.created_at:%Y-%m-%d %H:%M} UTC"
    lines.append("")
    lines.append(footer)
    if message.permalink:
        lines.append(message.permalink)
    return "\n".join(lines)


def ticket_tags(message: SocialMessage) -> list[str]:
    """Tags every bridged ticket carries: ``socialdesk``, the platform and the kind."""
    tags = ["socialdesk", message.platform.value, message.kind.value]
    if message.platform is Platform.OTHER and message.source:
        tags.append(message.source)
    return tags


def change_note(message: SocialMessage) -> str:
    """The internal note for an edit or deletion, in plain words for the agent.

    The customer's comment stays on the ticket as it was: the note says what changed.
    """
    who = message.author.label
    where = source_label(message)
    when = f"{message.created_at:%Y-%m-%d %H:%M} UTC"
    platform = platform_label(message.platform)
    if message.deleted:
        # A private message is "unsent" on every chat app; a public one is deleted.
        verb = "unsent (deleted)" if message.is_private else "deleted"
        return (
            f"{who} {verb} their {where} on {when}. It is no longer visible on {platform}; "
            "the copy on this ticket stays for the record."
        )
    text = message.text.strip() or "(no text)"
    return f"{who} edited their {where} on {when}. It now reads:\n\n{text}"
