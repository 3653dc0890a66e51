"""The helpdesks socialdesk can work in, one line each (``HELPDESK=<name>`` picks one).

Adding a helpdesk: its folder under ``chalicelib/helpdesks/`` (adapter, event route,
``HELPDESK`` plug-in in its ``__init__``) and its line below (README, "Adding a helpdesk").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.helpdesks.plugin import HelpdeskPlugin

HELPDESKS: dict[str, str] = {
    "zendesk": "chalicelib.helpdesks.zendesk",
    "freshdesk": "chalicelib.helpdesks.freshdesk",
}


def helpdesk_plugin(name: str) -> HelpdeskPlugin:
    """The helpdesk registered as ``name`` (imports only its package)."""
    found: HelpdeskPlugin = importlib.import_module(HELPDESKS[name]).HELPDESK
    return found


def all_helpdesks() -> list[HelpdeskPlugin]:
    """Every registered helpdesk, in registry order."""
    return [helpdesk_plugin(name) for name in HELPDESKS]
