"""The channels socialdesk speaks, one line each, and the platforms they carry.

Data only, so that it costs nothing to import: ``models`` takes ``Platform`` from here,
``app.py`` registers each channel's routes from ``CHANNELS``, and everything else asks
``channel(...)`` / ``channel_of(platform)`` for what one channel knows (labels, reply
sender, media downloads, credential checks, profile lookups, local samples). Adding a
channel: its folder under ``chalicelib/channels/``, its platform(s) below and its line in
``CHANNELS`` (README, "Adding a channel").
"""

from __future__ import annotations

import importlib
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.channels.base import Channel


class Platform(str, Enum):
    """Where a message was written (each belongs to one channel in ``CHANNELS``)."""

    FACEBOOK = "facebook"  # Page feed: visitor posts, comments, replies
    MESSENGER = "messenger"
    INSTAGRAM = "instagram"
    WHATSAPP = "whatsapp"
    X = "x"
    TELEGRAM = "telegram"
    LINE = "line"
    GOOGLE = "google"  # Google Business Profile reviews
    OTHER = "other"  # any Standard Webhooks source (Trustpilot, app-store review tools...): see ``source``


# Channel name (its webhook route, /webhooks/<name>) -> the package holding all of it.
CHANNELS: dict[str, str] = {
    "meta": "chalicelib.channels.meta",  # Facebook Pages, Messenger, Instagram, WhatsApp
    "x": "chalicelib.channels.x",
    "telegram": "chalicelib.channels.telegram",
    "line": "chalicelib.channels.line",
    "google": "chalicelib.channels.google",
    "generic": "chalicelib.channels.generic",  # any Standard Webhooks source
}


def channel(name: str) -> Channel:
    """The channel registered as ``name`` (imports only that channel's package)."""
    module = importlib.import_module(CHANNELS[name])
    found: Channel = module.CHANNEL
    return found


def all_channels() -> list[Channel]:
    """Every registered channel, in registry order."""
    return [channel(name) for name in CHANNELS]


@cache
def _owners() -> dict[Platform, str]:
    return {platform: entry.name for entry in all_channels() for platform in entry.platforms}


def channel_of(platform: Platform | str) -> Channel:
    """The channel a platform belongs to."""
    return channel(_owners()[Platform(platform)])


def platform_label(platform: Platform | str) -> str:
    """ "Facebook", "WhatsApp", ... for sentences."""
    return channel_of(platform).labels(Platform(platform)).label


def account_label(platform: Platform | str) -> str:
    """ "Facebook Page", "WhatsApp Business number", ... for sentences."""
    return channel_of(platform).labels(Platform(platform)).account


def reconnect_label(platform: Platform | str) -> str:
    """ "the Page", "WhatsApp", ... in "Reconnect ... in socialdesk settings"."""
    return channel_of(platform).labels(Platform(platform)).reconnect
