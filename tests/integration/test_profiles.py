"""Customers' names from the profile APIs: the Meta Graph and LINE sandboxes over real HTTP,
the table on the moto server, and the whole stack for the helpdesk users they end in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.channels.line.profiles import LineProfiles
from chalicelib.channels.meta.graph import GraphClient, instagram_profile, messenger_profile
from chalicelib.sync.profiles import ProfileLookup, profile_pk
from chalicelib.sync.tickets import TicketSync
from local.line_sandbox import LineSandbox
from local.meta_graph_sandbox import MetaGraphSandbox
from local.samples import LINE_BOT_ID, PAGE_ID, line_chat, messenger_chat
from tests.integration.conftest import Stack

IG_ACCOUNT = "17841405726653026"
IG_PAGE = "448242228374517"  # the Facebook Page the Instagram account is linked to
PAGE_TOKEN, IG_PAGE_TOKEN, LINE_TOKEN = "sandbox-page-token", "sandbox-ig-page-token", "sandbox-line-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Apis:
    graph: MetaGraphSandbox
    line: LineSandbox
    clock: Clock
    stack: Stack

    def lookup(self) -> ProfileLookup:
        """A lookup as one container builds it (its own memory, the shared table)."""
        tokens = {PAGE_ID: PAGE_TOKEN, IG_PAGE: IG_PAGE_TOKEN}
        graph = GraphClient(self.graph.url, token_provider=lambda account: tokens[account])
        sources = {
            Platform.MESSENGER: lambda message: messenger_profile(graph, message),
            Platform.INSTAGRAM: lambda message: instagram_profile(graph, message, {IG_ACCOUNT: IG_PAGE}),
            Platform.LINE: LineProfiles(self.line.url, lambda: LINE_TOKEN).profile_of,
        }
        return ProfileLookup(self.stack.resources.table_name, self.stack.dynamodb, sources=sources, clock=self.clock)

    def calls(self) -> int:
        return self.graph.request_counts["user.profile"] + self.line.request_counts["profile"] + self.line.request_counts["chat.member"]


@pytest.fixture
def apis(stack: Stack) -> Iterator[Apis]:
    graph, line = MetaGraphSandbox(), LineSandbox(token=LINE_TOKEN)
    graph.set_token(PAGE_ID, PAGE_TOKEN)
    graph.set_token(IG_PAGE, IG_PAGE_TOKEN)
    graph.start()
    line.start()
    try:
        yield Apis(graph, line, Clock(), stack)
    finally:
        graph.stop()
        line.stop()


def message(platform: Platform, author: Author, *, account: str, thread: str | None = None, raw: dict[str, Any] | None = None,
            kind: Kind = Kind.DIRECT_MESSAGE, direction: Direction = Direction.INBOUND) -> SocialMessage:
    return SocialMessage(
        platform=platform, kind=kind, direction=direction, message_id=f"m-{author.platform_id}",
        conversation_key=f"{platform.value}:{'group' if thread else 'dm'}:{account}:{thread or author.platform_id}",
        account_id=account, author=author,
        text="hello", created_at=datetime(2026, 12, 1, tzinfo=timezone.utc), thread_id=thread, raw=raw or {},
    )


# --- through the whole stack: the helpdesk user carries the person's name -------------------


class NamedSync(TicketSync):
    """The sync as wired in the app: the author is named by the lookup before the helpdesk user is made."""

    def __init__(self, *args: Any, lookup: ProfileLookup, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lookup = lookup

    def _requester(self, message: SocialMessage, conversation: Any) -> Any:
        return super()._requester(message.model_copy(update={"author": self.lookup.enrich(message)}), conversation)


@pytest.fixture
def named(apis: Apis) -> Apis:
    from chalicelib import wiring

    stack = apis.stack
    wiring.override("sync", NamedSync(wiring.message_store(), wiring.helpdesk(), wiring.dead_letters(), lookup=apis.lookup(),
                                      sleep=stack.time.sleep, clock=stack.time.now))
    return apis


def users_by_external_id(stack: Stack) -> dict[str, str]:
    return {user["external_id"]: user["name"] for user in stack.sandbox.users()}


def test_messenger_and_line_customers_get_their_names_and_each_is_looked_up_once(named: Apis) -> None:
    stack, run = named.stack, "4711"
    psid, line_user = f"7001{run}", f"U{run.rjust(32, 'a')}"
    named.graph.add_user_profile(PAGE_ID, psid, first_name="Dana", last_name="Reyes", name="Dana Reyes")
    named.line.add_user(line_user, display_name="美咲")
    for route, payload in [*messenger_chat(run), *line_chat(run)]:  # two Messenger messages, one LINE message
        assert stack.post_webhook(route, payload).status == 200
    stack.sync()

    users = users_by_external_id(stack)
    assert users[f"messenger:{psid}"] == "Dana Reyes" and users[f"line:{line_user}"] == "美咲"
    assert len(stack.ticket_for(f"messenger:dm:{PAGE_ID}:{psid}")) == 1
    assert named.graph.request_counts["user.profile"] == 1 and named.line.request_counts["profile"] == 1
    [asked] = [r for r in named.graph.requests if r.route == "user.profile"]
    assert asked.query["fields"] == ["first_name,last_name,name"] and asked.headers["authorization"] == f"Bearer {PAGE_TOKEN}"


def test_a_failing_profile_api_falls_back_to_the_id(named: Apis) -> None:
    stack, run = named.stack, "4712"
    psid, line_user = f"7001{run}", f"U{run.rjust(32, 'a')}"  # Meta shows nothing of this person (100/33)
    named.line.inject_error(500, match="/v2/bot/profile/", count=5)
    for route, payload in [*messenger_chat(run), *line_chat(run)]:
        assert stack.post_webhook(route, payload).status == 200
    stack.sync()

    users = users_by_external_id(stack)
    assert users[f"messenger:{psid}"] == psid and users[f"line:{line_user}"] == line_user
    assert len(stack.ticket_for(f"messenger:dm:{PAGE_ID}:{psid}")) == 1 and len(stack.ticket_for(f"line:dm:{LINE_BOT_ID}:{line_user}")) == 1
    assert named.calls() == 2  # one failed call per person, not one per message


# --- the lookups themselves ---------------------------------------------------------------


def test_instagram_is_read_with_its_pages_token_and_gives_name_and_username(apis: Apis) -> None:
    apis.graph.add_user_profile(IG_PAGE, "8002", platform="instagram", name="Lena K.", username="lena.k")
    author = apis.lookup().enrich(message(Platform.INSTAGRAM, Author(platform_id="8002"), account=IG_ACCOUNT))
    assert (author.display_name, author.handle, author.label) == ("Lena K.", "lena.k", "Lena K. (@lena.k)")
    [asked] = apis.graph.requests
    assert asked.path == "/v23.0/8002" and asked.query["fields"] == ["name,username,follower_count"]
    assert asked.headers["authorization"] == f"Bearer {IG_PAGE_TOKEN}"


def test_line_group_and_room_members_are_read_in_their_chat(apis: Apis) -> None:
    group, room, user = "Ca56f94637cc4347f90a25382909b24b9", "Ra8dbf4673c4c812cd491258042226c99", "U206d25c2ea6bd87c17655609a1c37cb8"
    apis.line.add_member(group, user, "Group Name")
    apis.line.add_member(room, user, "Room Name", room=True)
    lookup = apis.lookup()
    in_group = message(Platform.LINE, Author(platform_id=user), account=LINE_BOT_ID, thread=group, kind=Kind.COMMENT,
                       raw={"source": {"type": "group", "groupId": group, "userId": user}})
    # As the sync reads it back from the table: without its payload.
    in_room = message(Platform.LINE, Author(platform_id=user), account=f"{LINE_BOT_ID}-2", thread=room, kind=Kind.COMMENT)
    assert lookup.enrich(in_group).display_name == "Group Name"
    assert lookup.enrich(in_room).display_name == "Room Name"
    assert [r.path for r in apis.line.requests] == [f"/v2/bot/group/{group}/member/{user}", f"/v2/bot/room/{room}/member/{user}"]
    # A message LINE attributes to the group itself names no person: nothing to ask.
    assert lookup.enrich(message(Platform.LINE, Author(platform_id=group), account=LINE_BOT_ID, thread=group)).display_name is None
    assert len(apis.line.requests) == 2


def test_the_table_keeps_a_name_for_every_container_and_a_failure_for_an_hour(apis: Apis) -> None:
    apis.graph.add_user_profile(PAGE_ID, "7002", name="Sam Okafor")
    known, unknown = (message(Platform.MESSENGER, Author(platform_id=pid), account=PAGE_ID) for pid in ("7002", "7003"))
    first = apis.lookup()
    assert first.enrich(known).display_name == "Sam Okafor" and first.enrich(unknown) == unknown.author
    assert apis.calls() == 2

    other_container = apis.lookup()
    assert other_container.enrich(known).display_name == "Sam Okafor" and other_container.enrich(unknown) == unknown.author
    assert apis.calls() == 2  # both answers came from the table

    apis.graph.add_user_profile(PAGE_ID, "7003", name="Noa Levi")  # e.g. Meta's outage is over
    apis.clock.now += 3601
    assert apis.lookup().enrich(unknown).display_name == "Noa Levi" and apis.calls() == 3
    apis.clock.now += 29 * 86400  # the name is still fresh: no call
    assert apis.lookup().enrich(known).display_name == "Sam Okafor" and apis.calls() == 3
    [item] = [i for i in apis.stack.items("PROFILE#") if i["pk"]["S"] == profile_pk("messenger", PAGE_ID, "7002")]
    assert item["gsi1pk"]["S"] == "AUTHOR#messenger#7002" and int(item["expires_at"]["N"]) > apis.clock.now


def test_a_named_author_or_the_brand_is_never_looked_up(apis: Apis) -> None:
    lookup = apis.lookup()
    named = Author(platform_id="7004", display_name="Already Named")
    handled = Author(platform_id="8004", handle="from_the_webhook")
    assert lookup.enrich(message(Platform.MESSENGER, named, account=PAGE_ID)) == named
    assert lookup.enrich(message(Platform.INSTAGRAM, handled, account=IG_ACCOUNT)) == handled
    brand = message(Platform.MESSENGER, Author(platform_id=PAGE_ID), account=PAGE_ID, direction=Direction.OUTBOUND)
    assert lookup.enrich(brand) == brand.author
    whatsapp = message(Platform.WHATSAPP, Author(platform_id="16505551234"), account="106540352242922")
    assert lookup.enrich(whatsapp) == whatsapp.author
    assert apis.calls() == 0 and apis.stack.items("PROFILE#") == []


def test_forgetting_a_person_erases_their_cached_profile(apis: Apis) -> None:
    from chalicelib.privacy.deletion import DeletionRequests

    apis.line.add_user("U00000000000000000000000000000f01", display_name="Forget Me")
    author = Author(platform_id="U00000000000000000000000000000f01")
    assert apis.lookup().enrich(message(Platform.LINE, author, account=LINE_BOT_ID)).display_name == "Forget Me"
    assert len(apis.stack.items("PROFILE#")) == 1

    DeletionRequests(apis.stack.resources.table_name, apis.stack.dynamodb).forget("line", author.platform_id)

    assert apis.stack.items("PROFILE#") == []


def test_the_app_asks_each_channel_how_to_look_its_people_up(apis: Apis, monkeypatch: pytest.MonkeyPatch) -> None:
    """``wiring.profile_lookup()``: the sources the channels give, configured from the environment."""
    from chalicelib import wiring

    for name, value in {"META_GRAPH_URL": apis.graph.url, f"META_PAGE_TOKEN_{PAGE_ID}": PAGE_TOKEN,
                        "LINE_API_URL": apis.line.url, "LINE_CHANNEL_ACCESS_TOKEN": LINE_TOKEN}.items():
        monkeypatch.setenv(name, value)
    for name in ("profiles", "meta_graph"):
        wiring._built.pop(name, None)  # noqa: SLF001 (built from this environment)
    apis.graph.add_user_profile(PAGE_ID, "7005", name="Ada Obi")
    apis.line.add_user("U00000000000000000000000000000f05", display_name="Kenji")
    lookup = wiring.profile_lookup()
    assert lookup.enrich(message(Platform.MESSENGER, Author(platform_id="7005"), account=PAGE_ID)).display_name == "Ada Obi"
    line_author = Author(platform_id="U00000000000000000000000000000f05")
    assert lookup.enrich(message(Platform.LINE, line_author, account=LINE_BOT_ID)).display_name == "Kenji"
    whatsapp = message(Platform.WHATSAPP, Author(platform_id="16505551234"), account="106540352242922")
    assert lookup.enrich(whatsapp) == whatsapp.author  # WhatsApp's webhook names people itself
    for name in ("profiles", "meta_graph"):
        wiring._built.pop(name, None)  # noqa: SLF001


def test_an_account_without_a_configured_token_is_not_asked_and_costs_no_table_write(apis: Apis) -> None:
    from chalicelib.errors import NotConfigured

    def no_token(account: str) -> str:
        raise NotConfigured(f"META_PAGE_TOKEN_{account} is not configured")

    graph = GraphClient(apis.graph.url, token_provider=no_token)
    lookup = ProfileLookup(apis.stack.resources.table_name, apis.stack.dynamodb, clock=apis.clock,
                           sources={Platform.MESSENGER: lambda m: messenger_profile(graph, m)})
    nameless = message(Platform.MESSENGER, Author(platform_id="7009"), account=PAGE_ID)
    assert lookup.enrich(nameless) == nameless.author and lookup.enrich(nameless) == nameless.author
    assert apis.calls() == 0 and apis.stack.items("PROFILE#") == []
