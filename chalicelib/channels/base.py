"""The ``Channel`` interface: everything socialdesk knows about one channel.

A channel is a source of messages with its own webhook (``/webhooks/<name>``) and the
platform(s) it carries (Meta's webhook carries Facebook, Messenger, Instagram and
WhatsApp). Shared code never branches on a platform: it asks the channel, found through
``chalicelib.channels.registry``. A channel's package keeps everything behind these
methods (routes, verification and normalizing, pollers and backfill, reply sender,
media downloads, credential checks, profile lookups, local samples) and imports its
heavy modules only inside them, so that a webhook loads its own channel and nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.channels.registry import Platform
    from chalicelib.models import Attachment, NormalizedBatch, SocialMessage
    from chalicelib.ops.token_health import TokenCheck, TokenHealth
    from chalicelib.outbound.base import ReplyConfig, ReplyTarget, Sender


@dataclass(frozen=True)
class PlatformLabels:
    """How a platform is named in the words agents and customers read."""

    label: str  # "Facebook", "WhatsApp": in ticket subjects and notes
    account: str  # "Facebook Page", "WhatsApp Business number": the account a credential belongs to
    reconnect: str  # "the Page": in "Reconnect the Page in socialdesk settings"


@dataclass(frozen=True)
class Profile:
    """What a platform's profile API shows of a person (either may be missing)."""

    display_name: str | None = None
    handle: str | None = None
    followers: int | None = None  # where the profile API says (Instagram): the triage's reach


class ProfileUnavailable(Exception):
    """A profile API answered with an error (``status``) or with something unreadable."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# Looks up the author of a message; raises when the platform does not answer.
ProfileSource = Callable[["SocialMessage"], Profile]

# A reply text's length rule: (limit, unit word, counter, "X allows {limit} in ...", note).
TextLimit = tuple[int, str, Callable[[str], int], str, str]


class MediaDownloads(Protocol):
    """What the attachment fetcher offers a channel to download a customer's file with
    (address checks, size and time limits included)."""

    limit: int  # bytes this file may take

    def download(self, url: str, *, headers: Mapping[str, str] | None = None, trusted: bool = False) -> Any:
        """GET the file; ``trusted``: the platform's own API host (no address check)."""

    def api_json(
        self, url: str, *, headers: Mapping[str, str] | None = None, explain: Callable[[int, Any], None] | None = None
    ) -> Any:
        """GET a small JSON answer from the platform's API; ``explain(status, answer)`` may
        raise the platform's own reason before the generic one is given."""

    def api_url(self, setting: str, default: str) -> str:
        """The platform API's base URL: the ``setting`` environment variable, else ``default``."""

    def token(self, secret_name: str) -> str:
        """The named credential, or a plain-words problem when it is not configured."""


class Channel(ABC):
    """One channel. Subclasses set ``name`` and ``platforms`` and implement the methods."""

    name: ClassVar[str]  # the registry key and webhook route: /webhooks/<name>
    platforms: ClassVar[Mapping[Platform, PlatformLabels]]

    # --- inbound ----------------------------------------------------------------------

    @abstractmethod
    def blueprint(self) -> Blueprint:
        """Its routes (webhook, handshakes) and scheduled jobs (pollers, backfill)."""

    @abstractmethod
    def normalize(self, payload: Any, route: str = "") -> NormalizedBatch:
        """One delivery's messages, receipts and ignored events (``route``: e.g. the generic
        source's ``generic/<source>``)."""

    # --- outbound ---------------------------------------------------------------------

    def reply_sender(self, config: ReplyConfig, secret: Callable[[str], str], env: Mapping[str, str], pool: Any) -> Sender | None:
        """The sender of agents' answers on its platforms; None where answers cannot be
        sent through an API (the agent gets a note saying where to answer instead)."""
        return None

    def text_limit(self, target: ReplyTarget, private: bool) -> TextLimit | None:
        """The length rule an answer must meet; None when the platform states none."""
        return None

    def address(
        self, target: ReplyTarget, conversation: Sequence[SocialMessage], latest: SocialMessage, config: ReplyConfig
    ) -> ReplyTarget:
        """``target`` (the customer and the message answered) with what only this channel's
        sender needs, read from the conversation's stored messages and ``latest``, the
        customer's message being answered."""
        return target

    def private_reply_answers_a_comment(self, platform: Platform, scope: str) -> bool:
        """True where a private reply must answer one of the customer's own comments
        (Facebook's and Instagram's private replies), so it cannot be sent once they are gone."""
        return False

    def ticket_note(self, message: SocialMessage) -> str | None:
        """An internal note for agents on the ticket ``message`` opens, saying what only
        this channel knows about answering it (e.g. that the platform's API cannot), or None."""
        return None

    # --- media, people, credentials -----------------------------------------------------

    def fetch_media(self, attachment: Attachment, platform: Platform, downloads: MediaDownloads) -> Any | None:
        """Download a file the platform sends as an id rather than a link: the response and
        the type the platform declared, or None to take ``attachment.url`` as it is."""
        return None

    def profile_sources(self) -> Mapping[Platform, ProfileSource]:
        """Per platform whose webhooks carry only ids, how to look a person's name up
        (clients built from the environment; secrets read per lookup)."""
        return {}

    @abstractmethod
    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        """The checks of its credentials, run by the hourly ``token_health`` job (each says
        ``not_configured`` when its credential is not set)."""

    # --- words ----------------------------------------------------------------------------

    def labels(self, platform: Platform) -> PlatformLabels:
        """The words for one of its platforms."""
        return self.platforms[platform]
