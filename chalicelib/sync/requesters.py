"""Known customers: the helpdesk user who already holds a customer's phone number or email is
the ticket's requester, so agents see the customer's whole history.

Which identities count: only those the platform vouches for as the author's own
(``Author.phone``, ``Author.email``): the number a WhatsApp message came from, a Telegram
contact card the customer shared of themselves, a generic source's ``author.email`` /
``author.phone``. A number or an address written in a message's text is never used, and
neither is a name: two people called "Maria Garcia" stay two requesters.

How a helpdesk uses this (``known_customer`` and ``ensure_requester`` of both adapters; the
bulk path of a burst, ``sync/batch.py``, asks ``known_customers`` for all its new authors at
once and upserts the others in bulk). The single path costs a lookup per identity of each
author seen for the first time; the bulk path one lookup per hundred identities of a kind
(``KnowsCustomersInBulk``: Zendesk ORs repeated ``phone:`` terms in one search), plus one per
user that search finds, so known customers pay a request and new ones none (the facts and the
options decided against: ``docs/sync.md``, "Known customers in a burst"):

1. for each of the author's contact identities, the users that hold it *exactly* (the helpdesk's
   search is partial: ``+1555123`` also finds ``+15551234567``, so every candidate's identities
   are compared, email case-insensitively, phones by their digits);
2. ``sole_holder``: one user holds them all -> that user is the requester. Nobody -> a new user
   for the author, with the identities nobody holds. Two different users (a shared family
   number, or an email and a phone that point at different people) -> no guess: a user of the
   author's own, as before, with none of the disputed identities;
3. the same person on two platforms is one requester once a shared identity is known: the
   second platform's author finds the first one's user by it. Their social handle is added
   to that user where the helpdesk has an identity type for it (Zendesk: ``twitter`` for X;
   there is none for WhatsApp, Telegram, LINE or Instagram, and Facebook's identity wants the
   person's global Facebook id, which Pages never see).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chalicelib.helpdesks.base import HelpdeskError
from chalicelib.models import Author, Platform

logger = logging.getLogger(__name__)

EMAIL, PHONE = "email", "phone"
AGENT_PREFIX = "agent:"  # a holder that is an agent: it blocks the identity, it is never a requester


@dataclass(frozen=True)
class ContactIdentity:
    """A phone number (``+<digits>``) or an email (lowercase) the author holds."""

    kind: str
    value: str

    def held_in(self, kind: str, value: str | None) -> bool:
        """Whether a helpdesk identity (``kind`` ``email``/``phone``, its value) is exactly this one."""
        if kind != self.kind or not value:
            return False
        if self.kind == PHONE:
            return phone_digits(value) == phone_digits(self.value)
        return value.strip().lower() == self.value


def phone_digits(value: str) -> str:
    """The digits of a phone number, whatever its formatting (``+1 (555) 123-4567`` -> ``15551234567``)."""
    return "".join(c for c in value if c.isdigit())


def contact_identities(author: Author) -> list[ContactIdentity]:
    """The author's own phone and email, normalized; empty when the platform gave neither."""
    found = []
    if author.email and "@" in author.email:
        found.append(ContactIdentity(EMAIL, author.email.strip().lower()))
    digits = phone_digits(author.phone or "")
    if 7 <= len(digits) <= 15:  # E.164 allows at most 15 digits
        found.append(ContactIdentity(PHONE, f"+{digits}"))
    return found


def social_identity(platform: Platform, author: Author) -> tuple[str, str] | None:
    """The (Zendesk identity type, value) of the author's social handle, where one exists."""
    if platform is Platform.X and author.handle:
        return "twitter", author.handle.lstrip("@")
    return None


def sole_holder(holders: Mapping[ContactIdentity, Iterable[str]]) -> str | None:
    """The one end user who holds the author's identities, or None: nobody holds any, they point
    at more than one user (never guess between people), or the holder is an agent."""
    users = {user for found in holders.values() for user in found}
    user = users.pop() if len(users) == 1 else None
    return None if user is None or user.startswith(AGENT_PREFIX) else user


def unclaimed(holders: Mapping[ContactIdentity, Iterable[str]]) -> list[ContactIdentity]:
    """The identities no user holds yet: safe to give to the author's user."""
    return [identity for identity, found in holders.items() if not list(found)]


@dataclass(frozen=True)
class KnownCustomer:
    """What the helpdesk knows of an author's contact identities (``holders``: identity -> the
    users holding it exactly, from the helpdesk's lookups)."""

    user_id: str | None  # the one end user who holds them (``sole_holder``); None: nobody, or no one user
    unclaimed: tuple[ContactIdentity, ...]  # held by nobody: they may go to the author's user

    @classmethod
    def of(cls, holders: Mapping[ContactIdentity, Iterable[str]]) -> KnownCustomer:
        found = {identity: list(users) for identity, users in holders.items()}
        return cls(sole_holder(found), tuple(unclaimed(found)))

    def creatable(self, author: Author) -> Author:
        """The author as a user of their own gets created: without the identities someone else holds."""
        kinds = {identity.kind for identity in self.unclaimed}
        return author.model_copy(
            update={"phone": author.phone if PHONE in kinds else None, "email": author.email if EMAIL in kinds else None}
        )


@runtime_checkable
class KnowsCustomers(Protocol):
    """A helpdesk that can say who already holds an author's phone or email (both adapters)."""

    def known_customer(self, author: Author) -> KnownCustomer:
        """One lookup per contact identity of the author (none when they have none)."""
        ...


@runtime_checkable
class KnowsCustomersInBulk(Protocol):
    """A helpdesk that looks many identities up in a few requests (Zendesk)."""

    def identity_holders(self, identities: Sequence[ContactIdentity]) -> dict[ContactIdentity, set[str]]:
        """The users holding each identity exactly (agents as ``agent:<id>``); an identity whose
        lookup failed is left out (its author is then not known either way)."""
        ...


def known_customers(helpdesk: KnowsCustomers, authors: Sequence[Author]) -> list[KnownCustomer | None]:
    """``known_customer`` of each author, in as few lookups as the helpdesk allows; None for an
    author whose lookup failed (the caller leaves them to the single path)."""
    if isinstance(helpdesk, KnowsCustomersInBulk):
        wanted = list(dict.fromkeys(identity for author in authors for identity in contact_identities(author)))
        holders = helpdesk.identity_holders(wanted) if wanted else {}
        found: list[KnownCustomer | None] = []
        for author in authors:
            identities = contact_identities(author)
            known = all(identity in holders for identity in identities)
            found.append(KnownCustomer.of({identity: holders[identity] for identity in identities}) if known else None)
        return found
    answers: list[KnownCustomer | None] = []
    for author in authors:
        try:
            answers.append(helpdesk.known_customer(author))
        except HelpdeskError as exc:
            logger.warning("known customer lookup failed", extra={"reason": type(exc).__name__})
            answers.append(None)
    return answers
