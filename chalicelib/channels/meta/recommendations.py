"""Facebook Page recommendations (reviews) cannot be answered through the Graph API.

From Graph API v22.0 the Recommendation type is deprecated: any field or edge that
returns one fails with error 12, so a recommendation can be neither read nor answered by
an app (the old way, a comment on its ``open_graph_story``, goes through that type). The
webhook still announces them (``ratings``), so they become tickets; the agent is told once,
when the ticket opens, that the answer must be given on Facebook, with the link, and an
answer written on the ticket anyway is noted the same way without any Graph API call.
"""

from __future__ import annotations

from chalicelib.models import Platform, SocialMessage
from chalicelib.outbound.base import REJECTED, ReplyFailed, ReplyTarget

WHY = "Facebook no longer lets apps read or answer Page recommendations (Graph API v22.0 and later)"


def is_recommendation(platform: Platform, conversation_key: str) -> bool:
    """A Facebook review conversation (``facebook:review:<story or rating id>``)."""
    return platform is Platform.FACEBOOK and conversation_key.split(":")[1:2] == ["review"]


def recommendation_link(page_id: str, conversation_key: str) -> str:
    """The recommendation's story on Facebook, else the Page's reviews tab."""
    review_id = conversation_key.split(":", 2)[2] if conversation_key.count(":") >= 2 else ""
    if review_id.isdigit():
        return f"https://www.facebook.com/{review_id}"
    return f"https://www.facebook.com/{page_id}/reviews"


def ticket_note(message: SocialMessage) -> str | None:
    """The note on a ticket of a recommendation's conversation, whether the recommendation
    or a comment under it opened it (None for any other conversation)."""
    if not is_recommendation(message.platform, message.conversation_key):
        return None
    link = recommendation_link(message.account_id, message.conversation_key)
    return f"{WHY}, so socialdesk cannot post an answer to this one. Answer it on Facebook: {link}"


def not_answerable(target: ReplyTarget) -> ReplyFailed:
    """The refusal of an answer on a recommendation's ticket (nothing is sent)."""
    link = recommendation_link(target.account_id, target.conversation_key)
    return ReplyFailed(
        REJECTED,
        f"Not sent: {WHY}, so socialdesk did not try. Answer it on Facebook directly: {link}",
        platform=Platform.FACEBOOK,
        code="recommendations_unsupported",
    )
