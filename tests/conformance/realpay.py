"""Real webhook payloads written by others (``../shared/realpay``), read in place, and
the shape of what each must become.

The payloads are not copied into the repository (each source keeps its licence); the
expectations in ``expectations.py`` are ours, written from the platforms' documentation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from chalicelib.models import Kind

# Beside the repository (../shared/realpay); /work/shared is where this workplace keeps
# it when the clone sits elsewhere (CI), as for the specs in tests/support/openapi.py.
_RELATIVE = Path("shared/realpay")
CANDIDATES = (Path(__file__).resolve().parents[3] / _RELATIVE, Path("/work") / _RELATIVE)
REALPAY = next((p for p in CANDIDATES if (p / "payloads").is_dir()), CANDIDATES[0])
PAYLOAD_DIR = REALPAY / "payloads"
SEQUENCE_DIR = REALPAY / "sequences"

# What a Telegram delivery's conversation keys use as the bot's account (TELEGRAM_BOT_ID).
TELEGRAM_BOT_ID = "5550001111"


def payload_names() -> list[str]:
    """Every single-delivery payload's file name (empty when the directory is missing)."""
    return sorted(p.name for p in PAYLOAD_DIR.glob("*.json"))


def sequence_names() -> list[str]:
    """Every two-step sequence's file name."""
    return sorted(p.name for p in SEQUENCE_DIR.glob("*.json"))


def route_of(name: str) -> str:
    """The webhook a payload is posted to: the file name's first segment."""
    return name.split("__", 1)[0]


def payload_bytes(name: str) -> bytes:
    """The body exactly as the source holds it (what the test signs and posts)."""
    return (PAYLOAD_DIR / name).read_bytes()


def payload(name: str) -> Any:
    return json.loads(payload_bytes(name))


def sequence_steps(name: str) -> list[Any]:
    """The deliveries of a sequence, in order."""
    return list(json.loads((SEQUENCE_DIR / name).read_text(encoding="utf-8"))["_sequence"])


@dataclass(frozen=True)
class Msg:
    """One normalized message, as the platform's documentation says it comes out.

    ``label`` is how agents see the author (the requester's name): the author id when
    the payload names nobody. A change (edit or deletion) has ``edit_of``.
    """

    id: str
    key: str
    kind: Kind
    author: str
    text: str
    label: str | None = None
    attachments: tuple[str, ...] = ()
    outbound: bool = False
    edit_of: str | None = None
    deleted: bool = False
    rating: int | None = None
    recommends: bool | None = None

    @property
    def author_label(self) -> str:
        return self.label or self.author


@dataclass(frozen=True)
class Status:
    """A delivery receipt about a message the brand sent."""

    id: str
    key: str
    status: str


class Helpdesk(Enum):
    """What reaches the helpdesk once the delivery is stored and the stream synced."""

    TICKET = "a ticket for the conversation, the customer's words as its first public comment"
    NOTE = "an internal note on the conversation's existing ticket"
    NO_TICKET = "no ticket"


@dataclass(frozen=True)
class Expect:
    """What one delivery must become.

    ``ignored``: one named reason per event ignored on purpose (each must occur in the
    normalizer's reason). ``after``: for an edit or deletion, a payload holding the
    original message; the pair test posts it first and expects an internal note.
    """

    helpdesk: Helpdesk
    messages: tuple[Msg, ...] = ()
    statuses: tuple[Status, ...] = ()
    ignored: tuple[str, ...] = ()
    after: str | None = None
