"""Which stored messages need an agent, i.e. open a ticket.

Every inbound message is stored and counted; most open or continue a ticket. The
exceptions need no agent: praise (only low ratings and negative recommendations open
tickets unless configured otherwise), a deletion (its original never reached a
ticket, or it would have one: there is nothing left to answer) and a bare bot command
(Telegram's ``/start`` when a customer opens the chat). Once a conversation has a
ticket, everything in it goes there (a 5-star review edited down to 1 star, a
follow-up under a praised post, a deletion as an internal note). An edit of a
message we never saw does open one: it is the only copy of the customer's words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from chalicelib.models import Kind, SocialMessage

DEFAULT_REVIEW_MAX_STARS = 3


@dataclass(frozen=True)
class TicketPolicy:
    """``review_max_stars``: ratings up to this open tickets. ``positive_recommendations``:
    whether a Facebook "recommends" opens one too."""

    review_max_stars: int = DEFAULT_REVIEW_MAX_STARS
    positive_recommendations: bool = False

    @classmethod
    def from_env(cls) -> TicketPolicy:
        """``REVIEW_TICKET_MAX_STARS`` (default 3) and ``TICKET_POSITIVE_RECOMMENDATIONS`` (default false)."""
        return cls(
            review_max_stars=int(os.environ.get("REVIEW_TICKET_MAX_STARS", str(DEFAULT_REVIEW_MAX_STARS))),
            positive_recommendations=os.environ.get("TICKET_POSITIVE_RECOMMENDATIONS", "").lower() in ("1", "true", "yes"),
        )

    def opens_ticket(self, message: SocialMessage) -> bool:
        """True when ``message`` should open a ticket of its own."""
        if message.deleted or message.bot_command:
            return False
        if message.kind is not Kind.REVIEW:
            return True
        if message.recommends is not None and message.rating is None:
            return not message.recommends or self.positive_recommendations
        return message.rating is None or message.rating <= self.review_max_stars
