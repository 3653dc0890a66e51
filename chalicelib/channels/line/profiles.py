"""LINE's profile endpoints: a friend's profile, or a group or room member's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from chalicelib.channels.base import Profile, ProfileUnavailable

if TYPE_CHECKING:
    from chalicelib.http import JsonHttpClient
    from chalicelib.models import SocialMessage

DEFAULT_API_URL = "https://api.line.me"


class LineProfiles:
    """``GET /v2/bot/profile/{userId}`` (a friend of the account), or in a group chat or room
    ``/v2/bot/group/{groupId}/member/{userId}`` / ``/v2/bot/room/{roomId}/member/{userId}``
    (bearer ``LINE_CHANNEL_ACCESS_TOKEN``). ``token_provider()`` is called per lookup, so a
    rotated channel token is picked up.
    """

    def __init__(
        self,
        base_url: str | None,
        token_provider: Callable[[], str],
        *,
        pool: Any = None,
        timeout: tuple[float, float] = (3.05, 5.0),
    ) -> None:
        self.base_url = (base_url or DEFAULT_API_URL).rstrip("/")
        self._token_provider = token_provider
        self._pool = pool
        self._timeout = timeout
        self._client_of: tuple[str, JsonHttpClient] | None = None  # (token, its client): a rotated token gets a new one

    def _client(self) -> JsonHttpClient:
        from chalicelib.http import JsonHttpClient

        token = (self._token_provider() or "").strip()
        if not token:
            raise ProfileUnavailable("no LINE channel access token is configured")
        if self._client_of is None or self._client_of[0] != token:
            if self._pool is None:
                import urllib3

                self._pool = urllib3.PoolManager(num_pools=1, maxsize=4, retries=False)
            client = JsonHttpClient(self.base_url, f"Bearer {token}", timeout=self._timeout, pool=self._pool)
            self._client_of = (token, client)
        return self._client_of[1]

    def get(self, user_id: str, *, chat: tuple[str, str] | None = None) -> dict[str, Any]:
        """The profile of ``user_id``; ``chat`` is ``("group" | "room", id)`` for a member of one."""
        user = quote(user_id, safe="")
        if chat is None:
            path = f"/v2/bot/profile/{user}"
        else:
            path = f"/v2/bot/{chat[0]}/{quote(chat[1], safe='')}/member/{user}"
        response = self._client().request("GET", path)
        if not response.ok:
            raise ProfileUnavailable(f"LINE answered {response.status} for a profile", status=response.status)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProfileUnavailable("LINE answered a profile with something that is not a JSON object")
        return body

    def profile_of(self, message: SocialMessage) -> Profile:
        """The display name of a message's author, read in the chat the message was written in."""
        if message.author.platform_id == message.thread_id:
            return Profile()  # a message LINE attributes to the group itself has no person behind it
        body = self.get(message.author.platform_id, chat=_chat(message))
        name = body.get("displayName")
        return Profile(display_name=name.strip() if isinstance(name, str) and name.strip() else None)


def _chat(message: SocialMessage) -> tuple[str, str] | None:
    """``("group" | "room", id)`` for a LINE message written in a group chat or room."""
    if message.thread_id is None:
        return None
    source = message.raw.get("source") if isinstance(message.raw, dict) else None
    if isinstance(source, dict) and source.get("type") in ("group", "room"):
        return str(source["type"]), message.thread_id
    # Stored messages come back without their payload: LINE's ids tell the two apart
    # (group ids start with "C", room ids with "R", user ids with "U").
    return ("room" if message.thread_id.startswith("R") else "group"), message.thread_id
