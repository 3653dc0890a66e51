"""Outbound replies: an agent's answer goes back to the platform the customer wrote on.

Public API::

    from chalicelib.outbound import ReplyDispatcher, ReplyFailed, SentReply, build_dispatcher, target_from_messages

    dispatcher = build_dispatcher()                       # senders wired from env + secrets
    target = target_from_messages(conversation_messages)  # the ticket's customer, their latest message
    try:
        sent = dispatcher.send(target, text, private=False, idempotency_key=helpdesk_comment_id)
    except ReplyFailed as failure:
        note = failure.plain_words                        # internal note for the agent

See ``base`` for the failure kinds and configuration, and each platform module for the
exact calls it makes.
"""

from chalicelib.outbound.base import (
    FAILURE_KINDS,
    PERMISSION_MISSING,
    RATE_LIMITED,
    REJECTED,
    TARGET_DELETED,
    TOKEN_EXPIRED,
    TOKEN_REVOKED,
    UNAVAILABLE,
    WINDOW_CLOSED,
    ReplyConfig,
    ReplyFailed,
    ReplyRequest,
    ReplyTarget,
    Sender,
    SentReply,
)
from chalicelib.outbound.dispatch import (
    ReplyDispatcher,
    build_dispatcher,
    check_text,
    target_from_messages,
    text_limit,
)

__all__ = [
    "FAILURE_KINDS",
    "PERMISSION_MISSING",
    "RATE_LIMITED",
    "REJECTED",
    "ReplyConfig",
    "ReplyDispatcher",
    "ReplyFailed",
    "ReplyRequest",
    "ReplyTarget",
    "Sender",
    "SentReply",
    "TARGET_DELETED",
    "TOKEN_EXPIRED",
    "TOKEN_REVOKED",
    "UNAVAILABLE",
    "WINDOW_CLOSED",
    "build_dispatcher",
    "check_text",
    "target_from_messages",
    "text_limit",
]
