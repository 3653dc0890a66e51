"""A helpdesk's package as the registry knows it (``HelpdeskPlugin``).

Apart from ``base.py`` (the ``Helpdesk`` interface the sync and the reply path use) so that
registering the helpdesks' routes, which every cold start does, loads nothing more.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.helpdesks.base import Helpdesk
    from chalicelib.ops.token_health import TokenCheck, TokenHealth


class HelpdeskPlugin(ABC):
    """One helpdesk's package, as the registry (``helpdesks/registry.py``) knows it: how to
    build its adapter, the route its agent events arrive on, the check of its credentials."""

    name: ClassVar[str]  # the registry key, ``HELPDESK=<name>``, the route /helpdesk/<name>

    @abstractmethod
    def adapter(self) -> Helpdesk:
        """The adapter, configured from the environment and secrets (``NotConfigured`` when
        a setting is missing)."""

    @abstractmethod
    def blueprint(self) -> Blueprint:
        """The route its agent events (replies, status changes) arrive on."""

    @abstractmethod
    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        """The checks of its credentials, run by the hourly ``token_health`` job."""
