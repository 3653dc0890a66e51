"""``make run``: the whole stack on this machine, in the foreground, until Ctrl-C.

Starts, all on 127.0.0.1:

* a moto server playing DynamoDB (+ Streams) and SQS, with the table and the
  dead-letter queue created from ``infra/template.json``;
* the Zendesk sandbox (Freshdesk's with ``HELPDESK=freshdesk``), unless ``ZENDESK_URL``
  (``FRESHDESK_URL``) names the helpdesk to use: then it is the user's, reached with the
  user's ``ZENDESK_EMAIL`` / ``ZENDESK_API_TOKEN`` (``FRESHDESK_API_KEY``), wherever it
  runs, even on this machine;
* ``chalice local`` serving the webhook routes on ``$PORT`` (default 8000);
* a stream poller handing the table's stream to the Lambda's own sync handler,
  and the scheduled redrive every minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local import console
from local.defaults import (
    SCHEDULED_EVENT,
    LOCAL_SECRETS,
    ROOT,
    SANDBOX_FRESHDESK_API_KEY,
    SANDBOX_ZENDESK_EMAIL,
    SANDBOX_ZENDESK_TOKEN,
    STATE_FILE,
    aws_environment,
    port,
    write_state,
)
from local.demo_triage import LOCAL_RULES

REDRIVE_INTERVAL_SECONDS = 60.0
POLL_INTERVAL_SECONDS = 3.0  # the deployed schedule is every 2 minutes; locally the demo should not wait


def _wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"chalice local exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"chalice local did not answer on {url} within {timeout:.0f}s")


def _log_error(what: str) -> Callable[[Exception], None]:
    def report(exc: Exception) -> None:
        print(f"[socialdesk local] {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    return report


def main() -> int:
    """Start everything, print where it is, and stop it all on Ctrl-C."""
    import logging

    from local.moto_server import start_moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log drowns the banner

    # Ctrl-C and SIGTERM both stop everything (a shell that started us in the
    # background may have left SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started: list[Callable[[], object]] = []
    stop = threading.Event()
    chalice: subprocess.Popen[bytes] | None = None
    try:
        moto = start_moto_server(port("MOTO_PORT"))
        started.append(moto.stop)
        moto_url = f"http://127.0.0.1:{port('MOTO_PORT')}"
        os.environ.update(aws_environment(moto_url))

        import boto3

        from local.resources import create_local_resources

        resources = create_local_resources(
            dynamodb=boto3.client("dynamodb"), sqs=boto3.client("sqs"), template_path=ROOT / "infra" / "template.json"
        )
        os.environ.update(
            TABLE_NAME=resources.table_name, STREAM_ARN=resources.stream_arn, DLQ_URL=resources.dlq_url
        )
        for name, value in LOCAL_SECRETS.items():
            os.environ.setdefault(name, value)
        # The console shows one line per event (local/console.py): no metric blobs (EMF is for CloudWatch).
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        # Sample attachments point at platform CDNs this machine may not reach.
        os.environ.setdefault("ATTACHMENTS_ENABLED", "false")
        # Triage routes to groups by language and business hours with the example rules (what `make demo` shows).
        os.environ.setdefault("TRIAGE_RULES_PATH", str(LOCAL_RULES))

        helpdesk = _start_helpdesk(started)
        sandboxes = [helpdesk.kind] if helpdesk.sandbox else []  # what we started: `make demo` may seed them

        if os.environ.get("GOOGLE_BUSINESS_API_URL"):
            google_url = os.environ["GOOGLE_BUSINESS_API_URL"]
        else:
            from local.google_sandbox import GoogleSandbox

            google = GoogleSandbox(port=port("GOOGLE_SANDBOX_PORT")).start()
            started.append(google.stop)
            sandboxes.append("google")
            google_url = google.url
            os.environ.update(
                GOOGLE_BUSINESS_API_URL=google.url,
                GOOGLE_OAUTH_URL=google.url,
                GOOGLE_ACCESS_TOKEN=google.access_token,
                GOOGLE_JWKS_URL=google.jwks_url,
                GOOGLE_PUSH_AUDIENCE=google.audience,
                GOOGLE_PUSH_SERVICE_ACCOUNTS=google.push_email,
            )

        if os.environ.get("X_API_URL"):
            x_note = f"X API at {os.environ['X_API_URL']}"
        else:
            from local.x_sandbox import XSandbox

            x_api = XSandbox(port=port("X_SANDBOX_PORT"), brand_username="acme_support").start()
            started.append(x_api.stop)
            sandboxes.append("x")
            os.environ.update(X_API_URL=x_api.url, X_BRAND_USER_ID=x_api.brand_id, X_USER_ACCESS_TOKEN=x_api.token)
            os.environ.setdefault("X_POLLING_ENABLED", "true")
            x_note = f"X API sandbox at {x_api.url} (polled every {POLL_INTERVAL_SECONDS:.0f} s)"

        reply_sandboxes = _start_reply_sandboxes(started, sandboxes)

        app_port = port("PORT")
        chalice_bin = Path(sys.executable).with_name("chalice")
        chalice = subprocess.Popen(
            [str(chalice_bin), "local", "--host", "127.0.0.1", "--port", str(app_port), "--stage", "local", "--no-autoreload"],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert chalice.stdout is not None
        console.pipe(chalice.stdout, sys.stdout)
        base = f"http://127.0.0.1:{app_port}"
        _wait_for_http(f"{base}/health", chalice)
        _connect_agent_replies(helpdesk, base)

        # The sync runs here, in-process, with the very handler Lambda would call.
        sys.path.insert(0, str(ROOT))
        import app as lambda_app
        from local.stream_poller import StreamPoller

        console.install(sys.stdout)  # the sync's and the schedules' records, as console lines

        poller = StreamPoller(
            boto3.client("dynamodbstreams"),
            resources.stream_arn,
            lambda_app.sync_tickets,
            batch_size=lambda_app.SYNC_BATCH_SIZE,  # as the deployed event source: a burst opens in bulk
            on_error=_log_error("ticket sync batch"),
        )
        threading.Thread(target=poller.run, args=(stop,), name="stream-poller", daemon=True).start()
        # chalice local runs no schedules: play EventBridge for the scheduled functions.
        from chalicelib.channels.x.routes import poll_x_mentions_and_dms

        schedules = (
            ("redrive_parked", lambda_app.redrive_parked, REDRIVE_INTERVAL_SECONDS),
            ("poll_x", poll_x_mentions_and_dms, POLL_INTERVAL_SECONDS),
            ("retry_agent_replies", lambda_app.retry_agent_replies, REDRIVE_INTERVAL_SECONDS),
        )
        for name, handler, interval in schedules:
            threading.Thread(target=_schedule_loop, args=(handler, interval, stop), name=name, daemon=True).start()

        write_state(
            {
                "app_url": base,
                "helpdesk": helpdesk.kind,
                "helpdesk_url": helpdesk.url,
                "sandboxes": sandboxes,
                "google_url": google_url,
                "x_api_url": os.environ["X_API_URL"],
                "moto_url": moto_url,
                "table_name": resources.table_name,
                "stream_arn": resources.stream_arn,
                "dlq_url": resources.dlq_url,
            }
        )
        started.append(lambda: STATE_FILE.unlink(missing_ok=True))
        print(
            "\n".join(
                [
                    "",
                    "socialdesk is running locally (Ctrl-C stops everything):",
                    f"  Meta webhook      {base}/webhooks/meta   (verify token: {os.environ['META_VERIFY_TOKEN']})",
                    f"  X webhook         {base}/webhooks/x",
                    f"  Telegram webhook  {base}/webhooks/telegram",
                    f"  LINE webhook      {base}/webhooks/line",
                    f"  Google reviews    {base}/webhooks/google/reviews   (Business Profile API: {google_url})",
                    f"  Any other source  {base}/webhooks/generic/<source>   (Standard Webhooks)",
                    f"  X polling         {x_note}",
                    f"  Replies go to     {reply_sandboxes}",
                    f"  Health            {base}/health",
                    f"  Helpdesk          {helpdesk.note}",
                    f"  Tickets           {helpdesk.tickets_url}",
                    f"  DynamoDB + SQS    moto at {moto_url} (table {resources.table_name})",
                    "  Try it:           make demo   (in a second terminal)",
                    "",
                ]
            ),
            flush=True,
        )
        while chalice.poll() is None:
            time.sleep(0.5)
        print(f"chalice local exited with code {chalice.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping socialdesk local stack…", flush=True)
        return 0
    finally:
        stop.set()
        if chalice is not None and chalice.poll() is None:
            chalice.terminate()
            try:
                chalice.wait(timeout=10)
            except subprocess.TimeoutExpired:
                chalice.kill()
        for stopper in reversed(started):
            try:
                stopper()
            except Exception as exc:  # keep stopping the rest
                print(f"while stopping: {exc}", file=sys.stderr)


def _start_reply_sandboxes(started: list[Callable[[], object]], sandboxes: list[str]) -> str:
    """Meta Graph, Telegram and LINE stand-ins that agents' replies are sent to (unless
    their real API URLs are configured), and the trustpilot source's reply callback, named in ``sandboxes``; a sandbox we start gets
    its own tokens, whatever the shell holds. Returns a line for the banner."""
    from local.samples import IG_ACCOUNT_ID, PAGE_ID, WA_PHONE_NUMBER_ID

    urls = []
    if not os.environ.get("META_GRAPH_URL"):
        from local.meta_graph_sandbox import MetaGraphSandbox

        graph = MetaGraphSandbox(port=port("META_SANDBOX_PORT")).start()
        started.append(graph.stop)
        for account in (PAGE_ID, IG_ACCOUNT_ID, WA_PHONE_NUMBER_ID):
            graph.set_token(account, f"local-meta-token-{account}")
            os.environ[f"META_PAGE_TOKEN_{account}"] = f"local-meta-token-{account}"
        os.environ["WHATSAPP_ACCESS_TOKEN"] = f"local-meta-token-{WA_PHONE_NUMBER_ID}"
        os.environ["META_GRAPH_URL"] = graph.url
        sandboxes.append("meta")
        urls.append(f"Meta {graph.url}")
    if not os.environ.get("TELEGRAM_API_URL"):
        from local.telegram_sandbox import DEFAULT_BOT_TOKEN, TelegramSandbox

        bot = TelegramSandbox(port=port("TELEGRAM_SANDBOX_PORT")).start()
        started.append(bot.stop)
        os.environ.update(TELEGRAM_API_URL=bot.url)
        os.environ["TELEGRAM_BOT_TOKEN"] = DEFAULT_BOT_TOKEN
        sandboxes.append("telegram")
        urls.append(f"Telegram {bot.url}")
    if not os.environ.get("LINE_API_URL"):
        from local.line_sandbox import DEFAULT_CHANNEL_TOKEN, LineSandbox

        channel = LineSandbox(port=port("LINE_SANDBOX_PORT")).start()
        started.append(channel.stop)
        os.environ.update(LINE_API_URL=channel.url)
        os.environ["LINE_CHANNEL_ACCESS_TOKEN"] = DEFAULT_CHANNEL_TOKEN
        sandboxes.append("line")
        urls.append(f"LINE {channel.url}")
    if not os.environ.get("GENERIC_REPLY_URL_TRUSTPILOT"):
        # The demo's Standard Webhooks source (trustpilot) names a reply callback: a receiver
        # that checks the signature with the source's secret and keeps each answer once.
        from local.reply_callback import ReplyCallbackReceiver

        secret = os.environ["GENERIC_WEBHOOK_SECRET_TRUSTPILOT"].split()[0]
        receiver = ReplyCallbackReceiver(secret, port=port("REPLY_CALLBACK_PORT")).start()
        started.append(receiver.stop)
        os.environ["GENERIC_REPLY_URL_TRUSTPILOT"] = receiver.reply_url
        sandboxes.append("callback")
        urls.append(f"Trustpilot reply callback {receiver.reply_url}")
    return ", ".join(urls) or "real platform APIs"


@dataclass(frozen=True)
class HelpdeskChoice:
    """The helpdesk ``make run`` uses. ``sandbox``: we started it (and know its
    credentials); otherwise it is the user's, named by ``ZENDESK_URL`` / ``FRESHDESK_URL``."""

    kind: str
    url: str
    sandbox: bool
    note: str  # a line for the banner
    tickets_url: str  # where to see the tickets


def _users_credentials(url_variable: str, *needed: str) -> None:
    """The user named their own helpdesk: its credentials are theirs to give, never ours."""
    missing = [name for name in needed if not os.environ.get(name)]
    if missing:
        raise SystemExit(
            f"{url_variable} is set, so `make run` uses that helpdesk with your credentials: set "
            f"{' and '.join(missing)} too (or unset {url_variable} to use the local sandbox)."
        )


def _start_helpdesk(started: list[Callable[[], object]]) -> HelpdeskChoice:
    """The helpdesk named by ``HELPDESK``: the user's when its URL is set, else our sandbox."""
    kind = os.environ.get("HELPDESK", "zendesk").strip().lower()
    if kind == "freshdesk":
        if os.environ.get("FRESHDESK_URL"):
            _users_credentials("FRESHDESK_URL", "FRESHDESK_API_KEY")
            url = os.environ["FRESHDESK_URL"].rstrip("/")
            return HelpdeskChoice(kind, url, False, f"your Freshdesk at {url}", f"{url}/a/tickets")
        from local.freshdesk_sandbox import FreshdeskSandbox

        freshdesk = FreshdeskSandbox(port=port("FRESHDESK_SANDBOX_PORT"), api_key=SANDBOX_FRESHDESK_API_KEY).start()
        started.append(freshdesk.stop)
        os.environ.update(FRESHDESK_URL=freshdesk.url, FRESHDESK_API_KEY=SANDBOX_FRESHDESK_API_KEY)
        return HelpdeskChoice(kind, freshdesk.url, True, f"Freshdesk sandbox at {freshdesk.url}",
                              f"{freshdesk.url}/api/v2/tickets")
    if os.environ.get("ZENDESK_URL"):
        _users_credentials("ZENDESK_URL", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN")
        url = os.environ["ZENDESK_URL"].rstrip("/")
        note = f"your Zendesk at {url} (agents' replies need `make zendesk-setup` and a public URL)"
        return HelpdeskChoice("zendesk", url, False, note, f"{url}/agent/filters")
    from local.zendesk_sandbox import ZendeskSandbox

    zendesk = ZendeskSandbox(
        host="127.0.0.1",
        port=port("ZENDESK_SANDBOX_PORT"),
        email=SANDBOX_ZENDESK_EMAIL,
        api_token=SANDBOX_ZENDESK_TOKEN,
        webhook_secret=os.environ["ZENDESK_WEBHOOK_SECRET"],  # signs what its triggers send, as Zendesk does
    ).start()
    started.append(zendesk.stop)
    # Our sandbox, so its credentials: whatever ZENDESK_EMAIL the shell may hold is not for it.
    os.environ.update(ZENDESK_URL=zendesk.url, ZENDESK_EMAIL=SANDBOX_ZENDESK_EMAIL, ZENDESK_API_TOKEN=SANDBOX_ZENDESK_TOKEN)
    return HelpdeskChoice("zendesk", zendesk.url, True, f"Zendesk sandbox at {zendesk.url}", f"{zendesk.url}/api/v2/tickets.json")


def _connect_agent_replies(helpdesk: HelpdeskChoice, app_url: str) -> None:
    """What `make zendesk-setup` does for a real account (the webhook and triggers that send
    agents' public replies to the app), done here for our own Zendesk sandbox only: a
    helpdesk the user named is never changed behind their back."""
    if helpdesk.kind == "zendesk" and helpdesk.sandbox:
        from chalicelib.helpdesks.zendesk.admin import ZendeskAdmin

        ZendeskAdmin(helpdesk.url, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN).ensure(app_url)


def _schedule_loop(handler: Callable[[dict[str, Any], Any], Any], interval: float, stop: threading.Event) -> None:
    report = _log_error(f"scheduled {getattr(handler, '__name__', 'function')}")
    while not stop.wait(interval):
        try:
            handler(SCHEDULED_EVENT, None)
        except Exception as exc:
            report(exc)


if __name__ == "__main__":
    sys.exit(main())
