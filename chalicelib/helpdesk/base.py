"""The one interface the ticket sync uses to talk to any helpdesk.

The sync logic never knows whether it talks to Zendesk or Freshdesk, and it holds
no HTTP code: it calls these methods and reacts to these exceptions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from chalicelib.models import Author, Platform, SocialMessage


@dataclass(frozen=True)
class TicketRef:
    """A ticket as the sync needs to remember it."""

    ticket_id: str
    status: str  # the helpdesk's status word, normalized to: new, open, pending, hold, solved, closed


class HelpdeskError(Exception):
    """Base class for every helpdesk failure the sync must react to."""


class HelpdeskUnavailable(HelpdeskError):
    """Transient: rate-limited, 5xx, timeout or connection failure after retries.

    ``maybe_applied`` is True when the request may have reached the helpdesk (a
    timeout or dropped connection after sending), so a retry must first check
    whether the message is already on the ticket.
    """

    def __init__(self, message: str, *, maybe_applied: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.retry_after = retry_after


class HelpdeskRejected(HelpdeskError):
    """Permanent: the helpdesk refused the request (validation, permissions, auth)."""


class TicketClosed(HelpdeskError):
    """The ticket can no longer take comments; a follow-up ticket is needed."""


class Helpdesk(ABC):
    """A helpdesk the bridge turns conversations into tickets in."""

    name: str

    @abstractmethod
    def ensure_requester(self, platform: Platform, author: Author) -> str:
        """Return the helpdesk user id for a social author, creating the user if needed."""

    @abstractmethod
    def open_ticket(
        self,
        message: SocialMessage,
        requester_id: str,
        *,
        idempotency_key: str,
        follow_up_of: str | None = None,
    ) -> TicketRef:
        """Create a ticket whose first comment is ``message``; safe to repeat with the same key."""

    @abstractmethod
    def append_message(self, ticket_id: str, message: SocialMessage, requester_id: str) -> TicketRef:
        """Add ``message`` to the ticket as a comment authored by the requester.

        Raises ``TicketClosed`` when the ticket cannot take it any more.
        """

    @abstractmethod
    def add_note(self, ticket_id: str, message: SocialMessage, text: str) -> TicketRef:
        """Add an internal note (seen by agents only) about ``message``, e.g. that its
        author edited or deleted it. Raises ``TicketClosed`` like ``append_message``."""

    @abstractmethod
    def ticket_has_message(self, ticket_id: str, message: SocialMessage) -> bool:
        """True when ``message`` is already on the ticket (used after an ambiguous failure)."""
