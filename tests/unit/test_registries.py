"""The registries: every registered channel and helpdesk has all its parts, each platform has
one channel, and shared code finds their behaviour through them (a new channel is a folder and
a line in ``CHANNELS``, a new helpdesk a folder and a line in ``HELPDESKS``)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

from datetime import datetime, timezone

import pytest

from chalicelib.channels.base import Channel, PlatformLabels
from chalicelib.channels.registry import CHANNELS, Platform, all_channels, channel, channel_of, platform_label
from chalicelib.outbound.base import ReplyConfig, ReplyTarget
from chalicelib.helpdesks.base import Helpdesk, HelpdeskPlugin
from chalicelib.helpdesks.registry import HELPDESKS, helpdesk_plugin
from chalicelib.models import Kind
from chalicelib.ops.token_health import TokenHealth
from bench.lambda_events import api_gateway_event
from local.samples import all_samples, encode, messenger_chat, normalizer, sign

NOW = datetime(2026, 12, 3, tzinfo=timezone.utc)
ENTRIES = list(CHANNELS)


@pytest.mark.parametrize("name", ENTRIES)
def test_each_channel_is_a_complete_package(name: str) -> None:
    entry = channel(name)
    assert isinstance(entry, Channel) and entry.name == name
    assert CHANNELS[name] == f"chalicelib.channels.{name}"
    assert entry.platforms and all(isinstance(labels, PlatformLabels) for labels in entry.platforms.values())
    for part in ("routes", "webhook"):  # verification and normalizing live in the channel's own folder
        importlib.import_module(f"{CHANNELS[name]}.{part}")


def test_every_platform_belongs_to_exactly_one_channel() -> None:
    owners = [platform for entry in all_channels() for platform in entry.platforms]
    assert sorted(owners) == sorted(Platform) and len(owners) == len(set(owners))
    assert channel_of(Platform.WHATSAPP).name == "meta" and channel_of("telegram").name == "telegram"
    assert platform_label(Platform.LINE) == "LINE" and platform_label("whatsapp") == "WhatsApp"


def test_the_app_serves_each_channels_webhook_from_its_blueprint() -> None:
    import app as lambda_app

    routes = set(lambda_app.app.routes)
    for name in ENTRIES:
        assert any(path.startswith(f"/webhooks/{name}") for path in routes), name


@pytest.mark.parametrize("name", ENTRIES)
def test_a_sender_answers_only_on_its_own_channels_platforms_and_states_their_length_rule(name: str) -> None:
    entry = channel(name)
    sender = entry.reply_sender(ReplyConfig(), lambda secret: "token", {}, pool=None)
    if sender is None:
        return  # answered on the source itself: the agent gets a note saying so
    assert set(sender.platforms) <= set(entry.platforms)
    for platform in sender.platforms:
        for private in (False, True):
            target = ReplyTarget(platform=platform, kind=Kind.COMMENT, conversation_key=f"{platform.value}:comment:a:b",
                                 account_id="a", customer_id="b", reply_to_id="c", last_inbound_at=NOW)
            rule = entry.text_limit(target, private)
            assert rule is not None and rule[0] > 0 and "{limit}" in rule[3], (platform, private)


def test_every_sample_delivery_is_normalized_by_its_channel() -> None:
    for route, payload in all_samples("4711"):
        normalize = normalizer(route)
        assert normalize is not None, route
        batch = normalize(payload)
        assert batch.messages or batch.statuses or batch.ignored, route
        assert {channel_of(m.platform).name for m in batch.messages} <= {route.partition("/")[0]}


def test_importing_the_app_loads_no_platform_module() -> None:
    """A cold start pays for the channel that woke it up, not for all of them."""
    code = ("import sys, app; print(sorted(m for m in sys.modules if m.startswith('chalicelib.channels.') and "
            "m.rsplit('.', 1)[-1] in ('webhook', 'replies', 'graph', 'api', 'poller', 'backfill')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


# What a cold start woken by one Meta webhook may load: its channel's webhook module and the
# table's writes; not the sync's side of the table, the HTTP client, a helpdesk, another channel.
COLD_WEBHOOK = """
import gc, json, sys
import app
from bench.lambda_events import BenchContext
from chalicelib import wiring

class Table:
    def __init__(self):
        self.puts = []
    def put_item(self, **call):
        self.puts.append(call)
        return {}

table = Table()
wiring.override("dynamodb", table)
response = app.app(json.loads(sys.stdin.read()), BenchContext())
item = table.puts[0]["Item"] if table.puts else {}
print(json.dumps({"status": response["statusCode"], "puts": len(table.puts), "sk": item.get("sk"), "modules": sorted(sys.modules),
                  "collecting": gc.isenabled()}))
"""


def test_a_webhook_cold_start_loads_only_what_the_webhook_needs() -> None:
    """The message is written, and none of what other routes and jobs need was imported for it."""
    _, payload = messenger_chat("cold")[0]
    body = encode(payload)
    secrets = {"META_APP_SECRET": "meta-secret-for-the-cold-start-test"}
    event = api_gateway_event("POST", "/webhooks/meta", body, sign("meta", body, secrets))
    env = {**os.environ, **secrets, "TABLE_NAME": "socialdesk-cold-test"}
    out = subprocess.run([sys.executable, "-c", COLD_WEBHOOK], input=json.dumps(event), env=env,
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["status"], result["puts"], result["sk"]) == (200, 1, {"S": "MSG#m_colda"})
    assert result["collecting"]  # the garbage collector, off while the app is imported, is back on
    loaded = set(result["modules"])
    assert not loaded & {"chalicelib.store.table", "chalicelib.store.ledger", "chalicelib.http", "urllib3", "chalicelib.helpdesks.base"}
    elsewhere = ("chalicelib.sync", "chalicelib.crisis", "chalicelib.triage", "chalicelib.outbound", "chalicelib.ops",
                 "chalicelib.privacy.deletion")
    assert [m for m in loaded if m.startswith(elsewhere)] == []
    assert [m for m in loaded if m.startswith("chalicelib.channels.") and m.count(".") == 3
            and not m.endswith((".routes", ".base", ".common", ".registry"))] == ["chalicelib.channels.meta.webhook"]


def test_building_the_aws_clients_leaves_the_garbage_collector_on() -> None:
    """The first client is built with the collector off (the SDK's objects live as long as the
    container); it is on again afterwards, also when building a client fails."""
    code = """
import gc, boto3
from chalicelib import wiring
real = boto3.client
def broken(*args, **kwargs):
    raise RuntimeError("no such service")
boto3.client = broken
try:
    wiring._client("dynamodb")
except RuntimeError:
    pass
assert gc.isenabled()
boto3.client = real
client = wiring._client("dynamodb")
assert gc.isenabled() and wiring._client("dynamodb") is client and gc.get_freeze_count() > 0
print("ok")
"""
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


# --- helpdesks, the same way -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(HELPDESKS))
def test_each_helpdesk_is_a_complete_package_and_the_app_serves_its_events(name: str) -> None:
    import app as lambda_app

    plugin = helpdesk_plugin(name)
    assert isinstance(plugin, HelpdeskPlugin) and plugin.name == name and HELPDESKS[name] == f"chalicelib.helpdesks.{name}"
    importlib.import_module(f"{HELPDESKS[name]}.adapter")
    assert f"/helpdesk/{name}" in lambda_app.app.routes
    assert [check.__name__ for check in plugin.credential_checks(TokenHealth(env={}))] == [f"check_{name}"]


def test_the_configured_helpdesk_is_built_by_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib import wiring
    from chalicelib.errors import NotConfigured

    monkeypatch.setenv("HELPDESK", "freshdesk")
    monkeypatch.setenv("FRESHDESK_URL", "https://acme.freshdesk.com")
    monkeypatch.setenv("FRESHDESK_API_KEY", "key")
    wiring.reset()
    try:
        assert isinstance(wiring.helpdesk(), Helpdesk) and wiring.helpdesk().name == "freshdesk"
        monkeypatch.setenv("HELPDESK", "helpscout")
        wiring.reset()
        with pytest.raises(NotConfigured, match="HELPDESK must be one of zendesk, freshdesk"):
            wiring.helpdesk()
    finally:
        wiring.reset()
