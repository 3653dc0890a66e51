"""``make soak``: thousands of webhook deliveries under faults, then check that nothing was lost.

    python -m soak.run --deliveries 5000 --duplicates 0.2 --seed 1

What it does, in this process against the Zendesk sandbox and a moto server (a child
process; both on free 127.0.0.1 ports, stopped at the end):

1. *Chaos.* Sends every delivery of ``soak/workload.py`` (every platform, a share of
   duplicates, shuffled) through the Lambda handler as API Gateway proxy events. A
   share of DynamoDB calls fails with ``ProvisionedThroughputExceededException`` as if
   boto3's retries were spent (``soak/faults.py``), plus throttling storms (every call
   fails for a while; some start right after Zendesk accepted a message): the webhook
   must answer 503, and the soak sends it again later, as the platform would. Between
   chunks of deliveries the stream is polled into ``app.sync_tickets`` (a batch that
   raises is retried from the same position, as Lambda does, sometimes in a fresh
   execution environment with nothing in memory), with the sandbox answering 429 +
   Retry-After, 503, 500 (before and after applying), dropped connections (before and
   after applying), slow answers and answers later than the client's read timeout;
   now and then the redrive runs (as its own function, two at once: EventBridge delivers
   at least once and an operator may run ``make redrive`` meanwhile), under the same
   faults. Operators work the helpdesk meanwhile: they delete tickets, merge tickets,
   close tickets, delete end users and merge end users (``soak/faults.py`` ``Operators``).
   ``--big-conversation`` grows one viral thread past ten thousand messages; ``--crisis``
   customers post one outage complaint in their own words within five minutes, on every
   platform (crisis detection makes them incidents of one problem ticket).
2. *Faults stop.* Pending platform retries are sent, the stream backlog is drained,
   and ``app.redrive_parked`` (the scheduled handler, with an EventBridge event) runs
   until the dead-letter queue is empty. Each phase is timed.
3. *Checks.* One ticket per conversation (more only where an operator deleted, merged or
   closed one); every customer message exactly once, on its own conversation's tickets
   (a deleted ticket still counts as delivered); no brand message on any ticket; nothing
   parked or stuck; the ticket's order is the order the sync placed the messages in. Against the
   platforms' timestamps the order is only measured and reported: with shuffled
   arrivals the first message to *arrive* opens the ticket.

The sync's backoff waits are recorded at their requested length (Retry-After, 1 s,
2 s...) but slept for at most ``--sleep-cap`` seconds, so the run takes minutes; the
skipped time still counts on the virtual clock that times the storms.
Exit status 1 if any check fails. ``--json PATH`` also writes the full report.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import os
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The redrive's per-conversation lease, shortened: a redrive the faults kill mid-way keeps its
# conversations until the lease runs out (in production until the next scheduled run).
LEASE_SECONDS = 10.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (defaults: the full soak)."""
    p = argparse.ArgumentParser(prog="python -m soak.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--deliveries", type=int, default=5000, help="webhook deliveries, duplicates included")
    p.add_argument("--duplicates", type=float, default=0.2, help="share of deliveries that repeat another one")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--reorder-window",
        type=int,
        default=0,
        help="0: shuffle all deliveries; N: platform-time order, each moved by up to N places",
    )
    p.add_argument("--ingest-throttle", type=float, default=0.05, help="share of DynamoDB calls throttled during ingest")
    p.add_argument("--sync-throttle", type=float, default=0.01, help="share of DynamoDB calls throttled during the sync")
    p.add_argument("--zendesk-fault-rate", type=float, default=0.12, help="mean per-request fault rate while a plan is active")
    p.add_argument("--outage-chance", type=float, default=0.08, help="chance per re-plan of a burst of consecutive failures")
    p.add_argument(
        "--storm-chance",
        type=float,
        default=0.03,
        help="per sync round, chance that every DynamoDB call fails for a while (--storm-seconds)",
    )
    p.add_argument(
        "--storm-seconds",
        type=float,
        default=150.0,
        help="longest throttling storm (virtual seconds); longer than the sync's bookkeeping patience",
    )
    p.add_argument(
        "--storm-real-cap", type=float, default=1.5, help="longest throttling storm in real seconds (the soak compresses time)"
    )
    p.add_argument(
        "--storm-after-write-chance",
        type=float,
        default=0.005,
        help="chance that a storm starts right after Zendesk accepted a ticket or comment",
    )
    p.add_argument(
        "--fresh-container-chance",
        type=float,
        default=0.3,
        help="chance that Lambda retries a failed batch in a new execution environment (no memory)",
    )
    p.add_argument("--chunk", type=int, default=40, help="deliveries between two stream polls")
    p.add_argument("--polls-per-chunk", type=int, default=4, help="most sync invocations between two chunks")
    p.add_argument("--rotate-every", type=int, default=2, help="sync rounds between two Zendesk fault re-plans")
    p.add_argument("--redrive-every", type=int, default=10, help="sync rounds between two redrives during the faults (0: none)")
    p.add_argument("--read-timeout", type=float, default=0.25, help="the helpdesk client's read timeout, seconds")
    p.add_argument("--sleep-cap", type=float, default=0.08, help="longest real sleep for one sync backoff, seconds")
    p.add_argument("--batch-size", type=int, default=100, help="stream records per sync invocation")
    p.add_argument(
        "--operator-rate",
        type=float,
        default=0.08,
        help="per sync round, chance of each operator action (delete/merge/close a ticket, delete/merge users)",
    )
    p.add_argument(
        "--big-conversation", type=int, default=10_500, help="messages in one viral thread on top of --deliveries (0: none)"
    )
    p.add_argument(
        "--crisis",
        type=int,
        default=None,
        help="customers posting one outage complaint within five minutes, on top of --deliveries "
        "(default: one per 20 deliveries; 0: none)",
    )
    p.add_argument(
        "--budget-per-minute",
        type=int,
        default=2500,
        help="every helpdesk request goes through the shared rate budget, as deployed, with this limit "
        "per minute (Zendesk High Volume) in the soak's virtual time (0: no budget)",
    )
    p.add_argument("--concurrent-redrives", type=int, default=2, help="redrives started at the same time")
    p.add_argument("--moto-in-process", action="store_true", help="run moto in this process (default: a child process)")
    p.add_argument("--json", type=Path, help="also write the report here")
    p.add_argument("--app-log", type=Path, help="write the app's warnings and errors (redacted) to this file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if args.deliveries < 10:
        p.error("--deliveries must be at least 10")
    return args


# --- instrumentation (wrappers only: the app's logic is untouched) -----------------------------


class SleepRecorder:
    """The sync's ``sleep``: records each requested wait, sleeps at most ``cap`` seconds of
    it, and moves ``clock`` (a ``soak.faults.VirtualClock``) by the rest."""

    def __init__(self, cap: float, clock: Any = None) -> None:
        self.cap = cap
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        slept = min(seconds, self.cap) if self.cap > 0 else 0.0
        if slept:
            time.sleep(slept)
        if self.clock is not None:
            self.clock.skip(seconds - slept)


def _instrumented_classes() -> tuple[type, type]:
    from chalicelib.sync.deadletter import DeadLetterQueue
    from chalicelib.sync.tickets import TicketSync

    class CountingTicketSync(TicketSync):
        """The app's ``TicketSync``, counting what happens to each message."""

        def __init__(self, *args: Any, shared_with: CountingTicketSync | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # One set of counts for every execution environment of the run.
            self.outcomes: Counter[str] = shared_with.outcomes if shared_with else Counter()
            # ref -> error of the failed bookkeeping write
            self.unrecorded_deliveries: dict[str, str] = shared_with.unrecorded_deliveries if shared_with else {}
            # Per conversation, the order messages took their place: accepted by the
            # helpdesk, or parked (their place held until the redrive brings them).
            self.placed: dict[str, list[str]] = shared_with.placed if shared_with else defaultdict(list)

        def _place(self, message: Any) -> None:
            ref = f"{message.platform.value}:{message.message_id}"
            if ref not in self.placed[message.conversation_key]:
                self.placed[message.conversation_key].append(ref)

        def sync_message(self, message: Any, *, redrive: Any = None, received_at: float | None = None) -> Any:
            path = "redrive" if redrive is not None else "stream"
            try:
                outcome = super().sync_message(message, redrive=redrive, received_at=received_at)
            except Exception as exc:
                self.outcomes[f"{path}:raised:{type(exc).__name__}"] += 1
                raise
            self.outcomes[f"{path}:{outcome.value}"] += 1
            return outcome

        def _record(self, message: Any, *args: Any, **kwargs: Any) -> None:
            # Called right after the helpdesk accepted the message: if the bookkeeping
            # write fails now, the helpdesk has it but the conversation does not say so.
            self._place(message)
            try:
                super()._record(message, *args, **kwargs)
            except Exception as exc:
                self.unrecorded_deliveries[f"{message.platform.value}:{message.message_id}"] = type(exc).__name__
                raise

        def _park(self, message: Any, conversation: Any, reason: str, **kwargs: Any) -> Any:
            outcome = super()._park(message, conversation, reason, **kwargs)
            self._place(message)  # parked for good only once the conversation says so
            return outcome

        def _park_unrecorded(self, message: Any, reason: str) -> Any:
            outcome = super()._park_unrecorded(message, reason)
            self._place(message)
            return outcome

    class CountingDeadLetterQueue(DeadLetterQueue):
        """The app's dead-letter queue, counting parked messages."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.parks = 0
            self.parked_refs: set[tuple[str, str]] = set()

        def park(self, conversation_key: str, message_id: str, reason: str, **kwargs: Any) -> None:
            super().park(conversation_key, message_id, reason, **kwargs)
            self.parks += 1
            self.parked_refs.add((conversation_key, message_id))

    return CountingTicketSync, CountingDeadLetterQueue


# --- sending webhooks ---------------------------------------------------------------------------


def proxy_event(route: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The API Gateway proxy event for one delivery (routes with a path parameter included)."""
    from bench.lambda_events import api_gateway_event

    path = f"/webhooks/{route}"
    event = api_gateway_event("POST", path, body, headers)
    if route.startswith("generic/"):
        template = "/webhooks/generic/{source}"
        event["resource"] = template
        event["requestContext"]["resourcePath"] = template
        event["pathParameters"] = {"source": route.split("/", 1)[1]}
    return event


@dataclass
class Sender:
    """Posts deliveries to the Lambda handler in-process; counts answers."""

    app: Any
    secrets: dict[str, str]
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0

    def send(self, delivery: Any) -> int:
        from bench.lambda_events import BenchContext
        from local.samples import encode, sign

        body = encode(delivery.payload)
        response = self.app.app(proxy_event(delivery.route, body, sign(delivery.route, body, self.secrets)), BenchContext())
        status = int(response["statusCode"])
        self.statuses[status] += 1
        if status == 200:
            answer = json.loads(response["body"])
            self.stored += answer["stored"]
            self.duplicates += answer["duplicates"]
        elif status != 503 and len(self.unexpected) < 20:
            self.unexpected.append(f"{status} for delivery {delivery.id} ({delivery.route}): {response.get('body', '')[:300]}")
        return status


# --- reading back what happened -----------------------------------------------------------------


def read_stream(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of the table's stream, in stream order (a fresh reader from TRIM_HORIZON)."""
    records: list[dict[str, Any]] = []
    description = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
    for shard in description.get("Shards", []):
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            batch = response.get("Records", [])
            records.extend(batch)
            if not batch:
                break
            iterator = response.get("NextShardIterator")
    return records


def scan_table(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every item of the table (low-level format)."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return [item for page in pages for item in page["Items"]]


def ticket_refs(sandbox: Any, ticket_id: int) -> tuple[list[str], int, int]:
    """The message references of a ticket's comments, in comment order; plus the number
    of comments and of comments whose audit carries no reference."""
    from chalicelib.helpdesks.zendesk.adapter import METADATA_KEY

    refs: list[str] = []
    unattributed = operator_notes = 0
    for audit in sandbox.audits(ticket_id):
        if not any(event.get("type") == "Comment" for event in audit.get("events", [])):
            continue
        if (audit.get("via") or {}).get("channel") == "web":  # an agent in the helpdesk (e.g. a merge note)
            operator_notes += 1
            continue
        ref = ((audit.get("metadata") or {}).get("custom") or {}).get(METADATA_KEY)
        if ref:
            refs.append(ref)
        else:
            unattributed += 1
    return refs, len(sandbox.comments(ticket_id)) - operator_notes, unattributed


def inversions(order: list[str], rank: dict[str, float]) -> tuple[int, int]:
    """Pairs out of ``rank`` order in ``order``, and pairs compared (merge sort: the viral
    thread has ten thousand messages)."""

    def count(values: list[float]) -> tuple[list[float], int]:
        if len(values) <= 1:
            return values, 0
        middle = len(values) // 2
        left, bad_left = count(values[:middle])
        right, bad_right = count(values[middle:])
        merged: list[float] = []
        bad = bad_left + bad_right
        i = j = 0
        while i < len(left) and j < len(right):
            if right[j] < left[i]:  # strictly later in order, strictly earlier in rank
                merged.append(right[j])
                bad += len(left) - i
                j += 1
            else:
                merged.append(left[i])
                i += 1
        merged += left[i:] + right[j:]
        return merged, bad

    n = len(order)
    return count([rank[r] for r in order])[1], n * (n - 1) // 2


# --- the soak -----------------------------------------------------------------------------------


def run_soak(args: argparse.Namespace, moto_url: str, sandbox: Any, log: Any) -> dict[str, Any]:
    """Set up the stack in this process, run the three phases, return the report."""
    from local.defaults import LOCAL_SECRETS, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN, SCHEDULED_EVENT, aws_environment

    os.environ.update(aws_environment(moto_url))
    os.environ.update(LOCAL_SECRETS)
    os.environ["REDRIVE_LEASE_SECONDS"] = str(LEASE_SECONDS)
    import boto3

    from local.resources import create_local_resources

    resources = create_local_resources(
        dynamodb=boto3.client("dynamodb"),
        sqs=boto3.client("sqs"),
        template_path=ROOT / "infra" / "template.json",
        stage=f"soak{args.seed}x{os.getpid()}",
    )
    os.environ.update(
        TABLE_NAME=resources.table_name,
        STREAM_ARN=resources.stream_arn,
        DLQ_URL=resources.dlq_url,
        ZENDESK_URL=sandbox.url,
        ZENDESK_EMAIL=SANDBOX_ZENDESK_EMAIL,
        ZENDESK_API_TOKEN=SANDBOX_ZENDESK_TOKEN,
    )

    import app as lambda_app
    from chalicelib import wiring
    from chalicelib.http import JsonHttpClient
    from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk, basic_auth_header
    from chalicelib.sync.policy import TicketPolicy
    from chalicelib.sync.redrive import redrive
    from local.stream_poller import StreamPoller
    from soak.faults import DynamoThrottle, Operators, VirtualClock, ZendeskChaos
    from soak.workload import build

    wiring.reset()
    CountingTicketSync, CountingDeadLetterQueue = _instrumented_classes()
    # The production adapter, with a short read timeout so "slower than the client waits"
    # costs a quarter of a second instead of ten.
    storm_rng = random.Random(args.seed + 3)
    storm_plan = {"chance": args.storm_after_write_chance, "started": 0}

    def after_exchange(exchange: Any) -> None:
        # The most awkward moment for DynamoDB to start throttling: Zendesk has just
        # accepted a message and the sync is about to record that on the conversation.
        if exchange.method in ("POST", "PUT") and "/tickets" in exchange.url and 200 <= exchange.status < 300:
            if storm_plan["chance"] and storm_rng.random() < storm_plan["chance"]:
                throttle.storm(storm_rng.uniform(1.0, args.storm_seconds), real_cap=args.storm_real_cap)
                storm_plan["started"] += 1

    http = JsonHttpClient(
        sandbox.url,
        basic_auth_header(SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN),
        timeout=(1.0, args.read_timeout),
        observer=after_exchange,
    )
    helpdesk = ZendeskHelpdesk(sandbox.url, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN, http=http)
    wiring.override("helpdesk", helpdesk)
    dead_letters = CountingDeadLetterQueue(resources.dlq_url, wiring._client("sqs"))
    wiring.override("dead_letters", dead_letters)
    clock = VirtualClock()
    sleeper = SleepRecorder(args.sleep_cap, clock)
    budget: Any = None
    if args.budget_per_minute:
        # The shared budget on the same table, paced by the soak's clock: 429s pause it, and a
        # request it holds back fails like a 429 (helpdesks/outcomes.py).
        from chalicelib.helpdesks import outcomes
        from chalicelib.helpdesks.budget import OVERALL, Bucket, RateBudget

        budget = RateBudget(
            resources.table_name,
            wiring._client("dynamodb"),
            helpdesk="zendesk",
            buckets=[Bucket(OVERALL, args.budget_per_minute)],
            clock=clock.wall,
            sleep=SleepRecorder(args.sleep_cap, clock),
        )
        outcomes.use_budget("zendesk", budget)

    def fresh_crisis() -> Any:
        """An execution environment's crisis detection: its in-memory window starts empty (the
        table holds the rest), like the app's (``wiring.crisis_tickets``)."""
        wiring._built.pop("crisis", None)  # noqa: SLF001 - the soak plays Lambda's execution environments
        return wiring.crisis_tickets()

    sync = CountingTicketSync(
        wiring.message_store(),
        helpdesk,
        dead_letters,
        sleep=sleeper,
        clock=clock.wall,
        policy=TicketPolicy.from_env(),
        crisis=fresh_crisis(),
    )
    wiring.override("sync", sync)
    # The redrive is its own Lambda function: each invocation its own execution environment.
    redrive_syncs = [
        CountingTicketSync(
            wiring.message_store(),
            helpdesk,
            dead_letters,
            sleep=sleeper,
            clock=clock.wall,
            policy=TicketPolicy.from_env(),
            shared_with=sync,
            crisis=fresh_crisis(),
        )
        for _ in range(max(1, args.concurrent_redrives))
    ]
    redrive_sync = redrive_syncs[0]

    def run_redrive(call: Any) -> Any:
        stream_sync = wiring.ticket_sync()
        wiring.override("sync", redrive_sync)
        try:
            return call()
        finally:
            wiring.override("sync", stream_sync)

    def concurrent_redrives(**kwargs: Any) -> tuple[list[Any], list[BaseException]]:
        """``--concurrent-redrives`` redrives started together, as overlapping invocations."""
        import threading

        reports: list[Any] = []
        errors: list[BaseException] = []

        def one(each: Any) -> None:
            try:
                reports.append(redrive(wiring.message_store(), each, dead_letters, lease_seconds=LEASE_SECONDS, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - counted like a failed invocation
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(each,)) for each in redrive_syncs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return reports, errors

    throttle = DynamoThrottle(wiring._client("dynamodb"), seed=args.seed, clock=clock)
    chaos = ZendeskChaos(
        sandbox,
        random.Random(args.seed + 1),
        rate=args.zendesk_fault_rate,
        read_timeout=args.read_timeout,
        outage_chance=args.outage_chance,
    )
    operators = Operators(sandbox, random.Random(args.seed + 4), rate=args.operator_rate)
    sync_errors: Counter[str] = Counter()

    rng = random.Random(args.seed + 2)
    containers = [1]

    def on_sync_error(exc: Exception) -> None:
        sync_errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
        # Lambda retries the batch, usually in the same execution environment, but
        # nothing guarantees it: then whatever the sync kept in memory is gone.
        if rng.random() < args.fresh_container_chance:
            fresh = CountingTicketSync(
                wiring.message_store(),
                helpdesk,
                dead_letters,
                sleep=sleeper,
                clock=clock.wall,
                policy=TicketPolicy.from_env(),
                shared_with=sync,
                crisis=fresh_crisis(),
            )
            wiring.override("sync", fresh)
            containers[0] += 1

    # Count what the Telegram gap check reports: every update is delivered in the end,
    # so any "missing" update it reports is a false alarm caused by reordering.
    import chalicelib.channels.telegram.gaps as backfill

    telegram_missing_reported: list[int] = []
    original_record_update_id = backfill.record_update_id

    def counting_record_update_id(*a: Any, **kw: Any) -> int:
        missing = original_record_update_id(*a, **kw)
        telegram_missing_reported.append(missing)
        return missing

    backfill.record_update_id = counting_record_update_id

    streams = boto3.client("dynamodbstreams")
    poller = StreamPoller(
        streams, resources.stream_arn, lambda_app.sync_tickets, batch_size=args.batch_size, on_error=on_sync_error
    )
    sender = Sender(lambda_app, dict(LOCAL_SECRETS))

    run_id = f"{args.seed % 1000:03d}"
    work = build(
        args.deliveries,
        args.duplicates,
        seed=args.seed,
        run=run_id,
        reorder_window=args.reorder_window,
        big_conversation=args.big_conversation,
        crisis=args.deliveries // 20 if args.crisis is None else args.crisis,
    )
    log(
        f"workload: {len(work.deliveries)} deliveries ({work.duplicates} duplicates, "
        f"{work.duplicates / len(work.deliveries):.1%}), {len(work.messages)} messages, "
        f"{len(work.conversations)} conversations"
    )
    expected = check_workload(work)

    # --- phase 1: chaos ------------------------------------------------------------------------
    t_start = time.monotonic()
    first_arrival: dict[str, int] = {}
    retries: list[tuple[int, float, Any]] = []  # (due step, tie-break, delivery): 503s sent again later
    step = polls = 0
    redrives_during_faults: Counter[str] = Counter()
    redrive_errors: Counter[str] = Counter()
    ingest_503_by_delivery: Counter[int] = Counter()

    from chalicelib.observability import metrics

    def sync_round() -> None:
        nonlocal polls
        # The handlers' metrics are never flushed here (POWERTOOLS_METRICS_DISABLED) but
        # they pile up, and Powertools prints a full set once it holds 100 values.
        metrics.clear_metrics()
        if polls % args.rotate_every == 0:
            chaos.rotate()
        throttle.rate = args.sync_throttle
        if rng.random() < args.storm_chance:
            throttle.storm(rng.uniform(1.0, args.storm_seconds), after=rng.randint(0, 150), real_cap=args.storm_real_cap)
        # Lambda polls the shard back to back: keep invoking the sync while it finds
        # work, up to --polls-per-chunk times between two chunks of deliveries.
        for _ in range(args.polls_per_chunk):
            failures = poller.failures
            if poller.poll_once() == 0 and poller.failures == failures:
                break
        polls += 1
        operators.act()
        if args.redrive_every and polls % args.redrive_every == 0:
            reports, errors = concurrent_redrives(visibility_timeout=2)
            for report in reports:
                redrives_during_faults.update(report.outcomes)
                redrives_during_faults["leased_elsewhere"] += report.leased_elsewhere
            for exc in errors:  # the scheduled Lambda fails; the next one tries again
                redrive_errors[type(exc).__name__] += 1
        throttle.rate = args.ingest_throttle

    throttle.rate = args.ingest_throttle
    for delivery in work.deliveries:
        while retries and retries[0][0] <= step:
            _, _, again = heapq.heappop(retries)
            if sender.send(again) != 200:
                ingest_503_by_delivery[again.id] += 1
                heapq.heappush(retries, (step + rng.randint(5, 80), rng.random(), again))
        for ref in delivery.refs:
            first_arrival.setdefault(ref, step)
        if sender.send(delivery) != 200:
            ingest_503_by_delivery[delivery.id] += 1
            heapq.heappush(retries, (step + rng.randint(5, 80), rng.random(), delivery))
        step += 1
        if step % args.chunk == 0:
            sync_round()
            if not args.quiet and polls % 25 == 0:
                log(
                    f"  {step}/{len(work.deliveries)} sent, {polls} polls, {poller.records_handled} stream records synced, "
                    f"{poller.failures} batch retries, {dead_letters.parks} parked, {len(retries)} waiting platform retries"
                )
    t_faults_stop = time.monotonic()

    # --- phase 2: faults stop; platform retries, drain, redrive ---------------------------------
    throttle.stop()
    storm_plan["chance"] = 0.0
    chaos.stop()
    pending_at_stop = len(retries)
    while retries:
        _, _, again = heapq.heappop(retries)
        if sender.send(again) != 200:  # nothing fails any more: this would be a bug
            ingest_503_by_delivery[again.id] += 1
            heapq.heappush(retries, (step, rng.random(), again))
            if sum(ingest_503_by_delivery.values()) > 100 * len(work.deliveries):
                break
        step += 1
    never_accepted = len(retries)
    t_resent = time.monotonic()
    stream_total_at_stop = len(read_stream(streams, resources.stream_arn))
    backlog_records = stream_total_at_stop - poller.records_handled
    failures_before_drain = poller.failures
    t_drain_start = time.monotonic()  # (reading the whole stream above is the soak's cost, not the app's)
    drain_rounds = drained = 0
    while drain_rounds < 10000:
        failures = poller.failures
        handled = poller.poll_once()
        drain_rounds += 1
        drained += handled
        if handled == 0 and poller.failures == failures:
            break  # a round that found nothing new and failed nothing: drained
        if poller.failures - failures_before_drain > 50:
            break  # a batch that keeps failing without any fault: reported below
    post_fault_sync_failures = poller.failures - failures_before_drain
    t_drained = time.monotonic()

    dlq_at_drain = dead_letters.depth()
    redrive_passes: list[dict[str, Any]] = []
    redrive_failures_after_faults: Counter[str] = Counter()
    # Two redrives at once first (the schedule and an operator's make redrive), then the
    # scheduled handler until nothing is left.
    reports, errors = concurrent_redrives(visibility_timeout=0)
    redrive_passes.append({"concurrent": len(redrive_syncs), "leased_elsewhere": sum(r.leased_elsewhere for r in reports)})
    for exc in errors:
        redrive_failures_after_faults[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
    idle = 0
    last_progress = t_scheduled = time.monotonic()
    # The scheduled passes get their own 15 minutes: the overlapping pair above may take longer
    # than that on a viral thread's backlog, and what it left (entries of a conversation the
    # other held, entries it saw failing) is the scheduled redrive's to finish.
    while _still_parked(wiring.message_store(), dead_letters) and time.monotonic() - t_scheduled < 900:
        before = dict(sync.outcomes)
        try:
            run_redrive(lambda: lambda_app.redrive_parked(SCHEDULED_EVENT, None))
        except Exception as exc:  # nothing fails any more: a bug, reported below
            redrive_failures_after_faults[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
            time.sleep(0.5)
        delta = {k: v - before.get(k, 0) for k, v in sync.outcomes.items() if v != before.get(k, 0)}
        redrive_passes.append(delta)
        idle = 0 if any(not k.endswith(("still_failing", "still_rejected")) for k in delta) else idle + 1
        if idle >= 20 and time.monotonic() - last_progress > 2 * LEASE_SECONDS:
            break  # passes that move nothing (even once a dead redrive's lease ran out): what is left is stuck
        if idle == 0:
            last_progress = time.monotonic()
        if _still_parked(wiring.message_store(), dead_letters) and not delta:
            time.sleep(0.5)  # entries still invisible after a redrive during the faults: wait for them
    dlq_after = dead_letters.depth()
    metrics.clear_metrics()
    poller.drain()
    t_end = time.monotonic()
    log(
        f"faults stopped after {t_faults_stop - t_start:.1f}s; backlog {backlog_records} stream records, "
        f"{pending_at_stop} deliveries awaiting a platform retry, {dlq_at_drain} parked"
    )

    # --- phase 3: checks -------------------------------------------------------------------------
    checks = verify(
        work, expected, sandbox, boto3.client("dynamodb"), resources, first_arrival, sync.placed, operators.touched_keys
    )
    throttle.uninstall()
    backfill.record_update_id = original_record_update_id
    doubled = checks["doubled_refs"]
    checks["doubled_after_failed_bookkeeping_write"] = sum(r in sync.unrecorded_deliveries for r in doubled)
    checks["examples"]["unrecorded_deliveries"] = dict(list(sync.unrecorded_deliveries.items())[:10])
    del checks["doubled_refs"]
    # Ingest: every delivery accepted in the end, and only ever 200 or 503.
    checks["deliveries_never_accepted"] = never_accepted
    checks["unexpected_http_answers"] = sum(v for k, v in sender.statuses.items() if k not in (200, 503))
    checks["sync_failures_after_faults_stopped"] = post_fault_sync_failures
    checks["redrive_failures_after_faults_stopped"] = sum(redrive_failures_after_faults.values())
    checks["failed"] += [name for name in LATE_FAILURE_CHECKS if checks[name]]
    checks["ok"] = not checks["failed"]
    report = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "workload": {
            "deliveries": len(work.deliveries),
            "unique_deliveries": len(work.unique),
            "duplicate_deliveries": work.duplicates,
            "duplicate_share": round(work.duplicates / len(work.deliveries), 4),
            "messages": len(work.messages),
            "inbound_messages": sum(m.inbound for m in work.messages.values()),
            "conversations": len(work.conversations),
            "conversations_with_inbound": len(expected["inbound_keys"]),
            "by_platform": dict(Counter(work.platform_of.values())),
            "multi_message_deliveries": sum(len(d.refs) > 1 for d in work.unique),
        },
        "ingest": {
            "posts": sum(sender.statuses.values()),
            "statuses": {str(k): v for k, v in sorted(sender.statuses.items())},
            "deliveries_answered_503_at_least_once": len(ingest_503_by_delivery),
            "unexpected_answers": sender.unexpected,
            "stored": sender.stored,
            "duplicates_reported": sender.duplicates,
            "platform_retries_pending_when_faults_stopped": pending_at_stop,
        },
        "faults": {
            "dynamodb_throttled": dict(throttle.fired),
            "dynamodb_calls": sum(throttle.calls.values()),
            "dynamodb_throttling_storms": throttle.storms,
            "dynamodb_storm_seconds": round(throttle.storm_seconds, 1),
            "dynamodb_storms_right_after_a_helpdesk_write": storm_plan["started"],
            "sync_execution_environments": containers[0],
            "zendesk": sandbox.stats(),
            "zendesk_plans": dict(chaos.planned),
            "sync_batch_failures_during_faults": failures_before_drain,
            "sync_errors": dict(sync_errors.most_common(8)),
            "redrives_during_faults": dict(redrives_during_faults),
            "redrive_errors_during_faults": dict(redrive_errors),
            "operator_actions": {name: operators.done[name] for name in Operators.ACTIONS},
            "concurrent_redrives": len(redrive_syncs),
            "big_conversation_messages": len(work.conversations.get("viral-thread", [])),
            "crisis_complaints": sum(1 for label in work.conversations if label.startswith("crisis-")),
            "helpdesk_budget": budget_figures(budget),
            "problem_tickets": sum(1 for ticket in sandbox.tickets() if ticket.get("type") == "problem"),
            "incidents_linked": sum(1 for ticket in sandbox.tickets() if ticket.get("problem_id") is not None),
        },
        "sync": {
            "outcomes": dict(sorted(sync.outcomes.items())),
            "messages_parked_total": sync.outcomes["stream:parked"],
            "dead_letter_notices": dead_letters.parks,
            "distinct_messages_parked": len(dead_letters.parked_refs),
            "backoff_waits": len(sleeper.waits),
            "backoff_requested_seconds": round(sum(sleeper.waits), 1),
            "retry_after_waits_30s_capped": sum(1 for w in sleeper.waits if w >= 30),
            "bookkeeping_write_failed_after_helpdesk_accepted": len(sync.unrecorded_deliveries),
            "telegram_updates": len(telegram_missing_reported),
            "telegram_updates_reported_missing": sum(telegram_missing_reported),
        },
        "drain": {
            "faults_phase_seconds": round(t_faults_stop - t_start, 2),
            "platform_resend_seconds": round(t_resent - t_faults_stop, 2),
            "backlog_stream_records_at_stop": backlog_records,
            "stream_drain_seconds": round(t_drained - t_drain_start, 2),
            "stream_drain_rounds": drain_rounds,
            "stream_records_drained": drained,
            "sync_failures_after_faults_stopped": post_fault_sync_failures,
            "parked_when_drained": dlq_at_drain,
            "redrive_passes": len(redrive_passes),
            "redrive_outcomes": redrive_passes,
            "redrive_seconds": round(t_end - t_drained, 2),
            "redrive_failures_after_faults_stopped": dict(redrive_failures_after_faults),
            "backlog_total_seconds": round(t_end - t_faults_stop - (t_drain_start - t_resent), 2),
            "dlq_depth_after_redrive": dlq_after,
            "total_seconds": round(t_end - t_start, 2),
        },
        "checks": checks,
    }
    return report


def budget_figures(budget: Any) -> dict[str, Any]:
    """What the helpdesk budget did over the run ({} without one): requests sent, seconds
    they waited for it (virtual), requests it held back, its DynamoDB writes."""
    if budget is None:
        return {}
    overall = budget.usage["overall"]
    return {
        "requests": overall.requests,
        "waited_seconds": round(overall.waited_seconds, 1),
        "held_back": overall.refused,
        "writes": budget.writes,
    }


def check_workload(work: Any) -> dict[str, Any]:
    """Normalize every distinct delivery with the app's own normalizers: each soak message
    must come out once, with the direction the soak meant, and each soak conversation must
    map to one conversation key of its own. Returns ref -> key and the keys expected."""
    from chalicelib.helpdesks.formatting import message_reference
    from chalicelib.models import Direction
    from local.samples import normalizer

    key_of: dict[str, str] = {}
    problems: list[str] = []
    for delivery in work.unique:
        normalize = normalizer(delivery.route)
        assert normalize is not None, delivery.route
        batch = normalize(json.loads(json.dumps(delivery.payload)))
        refs = [message_reference(m) for m in batch.messages]
        if sorted(refs) != sorted(delivery.refs) or batch.rejected:
            problems.append(f"delivery {delivery.id}: normalized to {refs}, expected {list(delivery.refs)}")
        for message in batch.messages:
            ref = message_reference(message)
            key_of[ref] = message.conversation_key
            if ref in work.messages and (message.direction is Direction.INBOUND) != work.messages[ref].inbound:
                problems.append(f"{ref}: direction {message.direction.value}")
    keys_of_label: dict[str, set[str]] = defaultdict(set)
    for ref, message in work.messages.items():
        keys_of_label[message.conversation].add(key_of.get(ref, "?"))
    for label, keys in keys_of_label.items():
        if len(keys) != 1:
            problems.append(f"conversation {label} spans keys {sorted(keys)}")
    label_of_key: dict[str, str] = {}
    for label, keys in keys_of_label.items():
        for key in keys:
            if key in label_of_key:
                problems.append(f"conversations {label_of_key[key]} and {label} share key {key}")
            label_of_key[key] = label
    if problems:
        raise SystemExit("the soak workload is not what the normalizers read:\n" + "\n".join(problems[:20]))
    inbound = work.inbound_conversations()
    return {
        "key_of": key_of,
        "key_of_label": {label: next(iter(keys)) for label, keys in keys_of_label.items()},
        "inbound_keys": {next(iter(keys_of_label[label])): refs for label, refs in inbound.items()},
    }


def verify(
    work: Any,
    expected: dict[str, Any],
    sandbox: Any,
    dynamodb: Any,
    resources: Any,
    first_arrival: dict[str, int],
    placed: dict[str, list[str]],
    touched_keys: set[str],
) -> dict[str, Any]:
    """Compare the sandbox and the table with what the workload should have produced.

    ``placed``: per conversation key, the message references in the order the sync gave
    them their place on the ticket (accepted by the helpdesk, or parked). ``touched_keys``:
    conversations whose ticket an operator deleted, merged or closed (they may have more
    than one ticket)."""

    key_of: dict[str, str] = expected["key_of"]
    inbound_keys: dict[str, list[str]] = expected["inbound_keys"]  # key -> inbound refs in platform order
    messages = work.messages

    # The table: every message stored once (the key makes doubles impossible), nothing parked.
    from chalicelib.store import message_fields

    items = scan_table(dynamodb, resources.table_name)
    stored_refs: set[str] = set()
    parked_conversations: dict[str, list[str]] = {}
    for item in items:
        platform = message_fields(item).get("platform") if item["sk"]["S"].startswith("MSG#") else None
        if platform:
            stored_refs.add(f"{platform}:{item['sk']['S'][len('MSG#') :]}")
        elif item["sk"]["S"].startswith(("PARKED#", "ASIDE#")):
            parked_conversations.setdefault(item["pk"]["S"], []).append(
                f"{item['message_id']['S']}: {item.get('reason', {}).get('S', '')[:200]}"
            )
        elif item.get("item_type", {}).get("S") == "conversation" and item.get("gsi1pk", {}).get("S") == "PARKED":
            parked_conversations.setdefault(item["pk"]["S"], [])
    missing_stored = sorted(set(messages) - stored_refs)
    unexpected_stored = sorted(stored_refs - set(messages))

    # The helpdesk.
    tickets_by_key: dict[str, list[int]] = defaultdict(list)
    deleted_ids = {int(t["id"]) for t in sandbox.deleted_tickets()}
    for ticket in [*sandbox.tickets(), *sandbox.deleted_tickets()]:
        tickets_by_key[str(ticket.get("external_id"))].append(int(ticket["id"]))
    missing_tickets = sorted(k for k in inbound_keys if not tickets_by_key.get(k))
    doubled_tickets = {
        k: ids for k, ids in tickets_by_key.items() if k in inbound_keys and len(ids) > 1 and k not in touched_keys
    }
    # A crisis's problem ticket (external id ``crisis:...``, crisis/tickets.py) is the bridge's
    # own, with its own description: expected, and not a conversation's.
    from chalicelib.crisis.tickets import PROBLEM_KEY_PREFIX

    problem_keys = {k for k in tickets_by_key if k.startswith(PROBLEM_KEY_PREFIX)}
    unexpected_tickets = sorted(k for k in tickets_by_key if k not in inbound_keys and k not in problem_keys)

    # A message on a ticket an agent deleted reached the helpdesk; if it is also on a live
    # one, the agent still reads it once. Doubled: twice on live tickets, or twice on deleted ones.
    seen: Counter[str] = Counter()
    seen_deleted: Counter[str] = Counter()
    on_ticket_of: dict[str, set[str]] = defaultdict(set)
    ticket_order: dict[str, list[str]] = {}
    comment_mismatch = unattributed_total = 0
    for key, ids in tickets_by_key.items():
        if key in problem_keys:
            continue
        order: list[str] = []
        for ticket_id in sorted(ids):
            refs, comments, unattributed = ticket_refs(sandbox, ticket_id)
            unattributed_total += unattributed
            comment_mismatch += comments != len(refs) + unattributed
            order += refs
            for ref in refs:
                (seen_deleted if ticket_id in deleted_ids else seen)[ref] += 1
                on_ticket_of[ref].add(key)
        ticket_order[key] = list(dict.fromkeys(order))

    inbound_refs = [r for refs in inbound_keys.values() for r in refs]
    lost = sorted(r for r in inbound_refs if seen[r] + seen_deleted[r] == 0)
    doubled = {r: max(seen[r], seen_deleted[r]) for r in inbound_refs if seen[r] > 1 or seen_deleted[r] > 1}
    misplaced = sorted(r for r in inbound_refs if seen[r] and on_ticket_of[r] != {key_of[r]})
    every_seen = seen + seen_deleted
    outbound_on_tickets = sorted(r for r in every_seen if r in messages and not messages[r].inbound)
    unknown_on_tickets = sorted(r for r in every_seen if r not in messages)

    # Order. Guarantee: a ticket's comments follow the order the sync gave its
    # conversation's messages their place -- nothing overtakes a parked message, and no
    # retry or redrive adds one out of turn. Measured
    # only: platform-timestamp order (a message that arrives after a later one already
    # reached the ticket comes after it; its comment shows its own time) and arrival order.
    multi = [k for k, refs in inbound_keys.items() if len(refs) > 1]
    sync_violations: list[str] = []
    in_platform_order = in_arrival_order = 0
    platform_bad = platform_pairs = arrival_bad = 0
    first_is_earliest = 0
    for key in multi:
        on_ticket = ticket_order.get(key, [])
        in_place_order = [r for r in placed.get(key, []) if r in set(on_ticket)]
        if on_ticket != in_place_order:
            sync_violations.append(key)
        platform_rank = {r: messages[r].timestamp for r in on_ticket}
        arrival_rank = {r: float(first_arrival.get(r, -1)) for r in on_ticket}
        bad, pairs = inversions(on_ticket, platform_rank)
        platform_bad += bad
        platform_pairs += pairs
        in_platform_order += bad == 0
        a_bad, _ = inversions(on_ticket, arrival_rank)
        arrival_bad += a_bad
        in_arrival_order += a_bad == 0
        first_is_earliest += bool(on_ticket) and on_ticket[0] == inbound_keys[key][0]

    # Several messages of one conversation in one delivery (LINE, Meta and generic batch
    # them; the ingest writes them in parallel): do they reach the ticket in the order
    # they had inside the delivery?
    ticket_rank = {ref: i for refs in ticket_order.values() for i, ref in enumerate(refs)}
    same_delivery_pairs = same_delivery_inverted = 0
    for delivery in work.unique:
        inbound_refs_here = [r for r in delivery.refs if messages[r].inbound]
        for i in range(len(inbound_refs_here)):
            for j in range(i + 1, len(inbound_refs_here)):
                a, b = inbound_refs_here[i], inbound_refs_here[j]
                if messages[a].conversation != messages[b].conversation or a not in ticket_rank or b not in ticket_rank:
                    continue
                same_delivery_pairs += 1
                same_delivery_inverted += ticket_rank[a] > ticket_rank[b]

    dlq_depth = _dlq_depth(resources)
    results = {
        "conversations_expected": len(inbound_keys),
        "tickets": sum(len(v) for v in tickets_by_key.values()),
        "tickets_missing": len(missing_tickets),
        "tickets_doubled": len(doubled_tickets),
        "tickets_unexpected": len(unexpected_tickets),
        "inbound_messages_expected": len(inbound_refs),
        "messages_not_stored": len(missing_stored),
        "messages_stored_unexpectedly": len(unexpected_stored),
        "messages_lost": len(lost),
        "messages_doubled": len(doubled),
        "extra_copies_on_tickets": sum(v - 1 for v in doubled.values()),
        "messages_on_wrong_ticket": len(misplaced),
        "brand_messages_on_tickets": len(outbound_on_tickets),
        "unknown_comments": len(unknown_on_tickets) + unattributed_total,
        "comment_count_mismatches": comment_mismatch,
        "conversations_still_parked": len(parked_conversations),
        "dlq_depth": dlq_depth,
        "order_multi_message_conversations": len(multi),
        "order_sync_order_violations": len(sync_violations),
        "order_platform_time_conversations_in_order": in_platform_order,
        "order_platform_time_inverted_pairs": platform_bad,
        "order_platform_time_pairs": platform_pairs,
        "order_ticket_opened_by_earliest_message": first_is_earliest,
        "order_arrival_conversations_in_order": in_arrival_order,
        "order_arrival_inverted_pairs": arrival_bad,
        "order_same_delivery_pairs": same_delivery_pairs,
        "order_same_delivery_pairs_inverted": same_delivery_inverted,
    }
    results["examples"] = {
        "tickets_missing": missing_tickets[:5],
        "tickets_doubled": dict(list(doubled_tickets.items())[:5]),
        "tickets_unexpected": unexpected_tickets[:5],
        "messages_not_stored": missing_stored[:5],
        "messages_lost": lost[:5],
        "messages_doubled": dict(list(doubled.items())[:5]),
        "messages_on_wrong_ticket": misplaced[:5],
        "brand_messages_on_tickets": outbound_on_tickets[:5],
        "conversations_still_parked": dict(list(parked_conversations.items())[:5]),
        "order_sync_order_violations": {k: {"ticket": ticket_order.get(k), "placed": placed.get(k)} for k in sync_violations[:3]},
    }
    results["doubled_refs"] = sorted(doubled)
    failing = [name for name in FAILURE_CHECKS if results[name]]
    results["failed"] = failing
    results["ok"] = not failing
    return results


# Any non-zero value fails the soak.
FAILURE_CHECKS = (
    "tickets_missing",
    "tickets_doubled",
    "tickets_unexpected",
    "messages_not_stored",
    "messages_stored_unexpectedly",
    "messages_lost",
    "messages_doubled",
    "messages_on_wrong_ticket",
    "brand_messages_on_tickets",
    "unknown_comments",
    "comment_count_mismatches",
    "conversations_still_parked",
    "dlq_depth",
    "order_sync_order_violations",
)


LATE_FAILURE_CHECKS = (
    "deliveries_never_accepted",
    "unexpected_http_answers",
    "sync_failures_after_faults_stopped",
    "redrive_failures_after_faults_stopped",
)


def _still_parked(store: Any, dead_letters: Any) -> bool:
    """Anything left for the redrive: a conversation with parked messages, or a queue notice."""
    return bool(store.blocked_conversations()) or dead_letters.depth() > 0


def _dlq_depth(resources: Any) -> int:
    import boto3

    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=resources.dlq_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def print_report(report: dict[str, Any]) -> None:
    """The human-readable summary."""
    w, i, f, s, d, c = (report[k] for k in ("workload", "ingest", "faults", "sync", "drain", "checks"))
    pct = lambda a, b: f"{a / b:.1%}" if b else "n/a"  # noqa: E731
    print()
    print(
        f"workload   {w['deliveries']} deliveries ({w['duplicate_deliveries']} duplicates = {w['duplicate_share']:.1%}), "
        f"{w['messages']} messages ({w['inbound_messages']} from customers), {w['conversations']} conversations, "
        f"{w['multi_message_deliveries']} multi-message deliveries; {w['by_platform']}"
    )
    print(
        f"ingest     {i['posts']} POSTs {i['statuses']}; {i['deliveries_answered_503_at_least_once']} deliveries got a 503 "
        f"and were sent again; unexpected answers: {len(i['unexpected_answers'])}"
    )
    print(
        f"faults     DynamoDB throttled {sum(f['dynamodb_throttled'].values())} of {f['dynamodb_calls']} calls "
        f"{f['dynamodb_throttled']} ({f['dynamodb_throttling_storms']} storms, {f['dynamodb_storm_seconds']} s); Zendesk faults fired {f['zendesk']['faults_fired']} of {f['zendesk']['total']} requests; "
        f"{f['sync_batch_failures_during_faults']} stream batches retried, in {f['sync_execution_environments']} sync "
        f"execution environments"
    )
    print(
        f"operators  {f['operator_actions']}; {f['concurrent_redrives']} redrives at once "
        f"({f['redrives_during_faults'].get('leased_elsewhere', 0)} conversations skipped as leased by the other); "
        f"viral thread of {f['big_conversation_messages']} messages; a crisis of {f['crisis_complaints']} complaints: "
        f"{f['problem_tickets']} problem tickets, {f['incidents_linked']} incidents linked"
    )
    if f["helpdesk_budget"]:
        print(f"budget     the shared helpdesk budget: {f['helpdesk_budget']}")
    print(f"sync       {s['outcomes']}")
    print(
        f"           parked {s['messages_parked_total']} times ({s['distinct_messages_parked']} distinct messages); "
        f"{s['backoff_waits']} backoff waits, {s['backoff_requested_seconds']} s requested (slept ≤ cap)"
    )
    print(
        f"           {s['bookkeeping_write_failed_after_helpdesk_accepted']} deliveries accepted by Zendesk whose "
        f"bookkeeping write then failed; Telegram gap check: {s['telegram_updates_reported_missing']} updates reported "
        f"missing over {s['telegram_updates']} updates (all were delivered)"
    )
    print(
        f"drain      faults phase {d['faults_phase_seconds']} s; after faults stopped: platform re-sends "
        f"{d['platform_resend_seconds']} s, stream backlog {d['backlog_stream_records_at_stop']} records drained in "
        f"{d['stream_drain_seconds']} s, {d['parked_when_drained']} parked redriven in {d['redrive_passes']} pass(es) / "
        f"{d['redrive_seconds']} s; backlog gone {d['backlog_total_seconds']} s after faults stopped; total {d['total_seconds']} s"
    )
    print()
    rows = [
        (
            "tickets = conversations",
            f"{c['tickets']} tickets for {c['conversations_expected']} conversations "
            f"(missing {c['tickets_missing']}, doubled {c['tickets_doubled']}, unexpected {c['tickets_unexpected']}; "
            f"more than one only after an operator deleted, merged or closed one)",
            not (c["tickets_missing"] or c["tickets_doubled"] or c["tickets_unexpected"]),
        ),
        (
            "every message stored once",
            f"{c['messages_not_stored']} not stored, {c['messages_stored_unexpectedly']} unexpected",
            not (c["messages_not_stored"] or c["messages_stored_unexpectedly"]),
        ),
        (
            "every customer message on its ticket once",
            f"{c['inbound_messages_expected']} expected: lost {c['messages_lost']}, "
            f"doubled {c['messages_doubled']} (+{c['extra_copies_on_tickets']} copies), wrong ticket {c['messages_on_wrong_ticket']}",
            not (c["messages_lost"] or c["messages_doubled"] or c["messages_on_wrong_ticket"]),
        ),
        (
            "no brand or unknown comment",
            f"brand {c['brand_messages_on_tickets']}, unknown {c['unknown_comments']}, "
            f"count mismatches {c['comment_count_mismatches']}",
            not (c["brand_messages_on_tickets"] or c["unknown_comments"] or c["comment_count_mismatches"]),
        ),
        (
            "nothing parked or stuck",
            f"DLQ {c['dlq_depth']}, conversations with parked messages {c['conversations_still_parked']}",
            not (c["dlq_depth"] or c["conversations_still_parked"]),
        ),
        (
            "every delivery accepted with 200 or 503",
            f"never accepted {c['deliveries_never_accepted']}, other answers {c['unexpected_http_answers']}",
            not (c["deliveries_never_accepted"] or c["unexpected_http_answers"]),
        ),
        (
            "no failure once faults stopped",
            f"sync batch failures {c['sync_failures_after_faults_stopped']}, redrive "
            f"failures {c['redrive_failures_after_faults_stopped']}",
            not (c["sync_failures_after_faults_stopped"] or c["redrive_failures_after_faults_stopped"]),
        ),
        (
            "ticket order = the order the sync placed them",
            f"{c['order_sync_order_violations']} violations in "
            f"{c['order_multi_message_conversations']} multi-message conversations",
            not c["order_sync_order_violations"],
        ),
    ]
    for name, detail, passed in rows:
        print(f"{'ok  ' if passed else 'FAIL'} {name:<44} {detail}")
    n = c["order_multi_message_conversations"]
    print(
        f"info ticket order vs platform timestamps        {c['order_platform_time_conversations_in_order']} of {n} "
        f"conversations in timestamp order ({pct(c['order_platform_time_conversations_in_order'], n)}); "
        f"{c['order_platform_time_inverted_pairs']} of {c['order_platform_time_pairs']} message pairs inverted "
        f"({pct(c['order_platform_time_inverted_pairs'], c['order_platform_time_pairs'])}); ticket opened by the "
        f"earliest message in {c['order_ticket_opened_by_earliest_message']} of {n}"
    )
    print(
        f"info ticket order vs first arrival              {c['order_arrival_conversations_in_order']} of {n} "
        f"conversations in arrival order; {c['order_arrival_inverted_pairs']} pairs inverted (a 503 delays a message's store)"
    )
    print(
        f"info messages batched in one delivery           {c['order_same_delivery_pairs_inverted']} of "
        f"{c['order_same_delivery_pairs']} same-conversation pairs reached the ticket in the opposite order "
        f"to the delivery's"
    )
    if c["messages_doubled"]:
        print(
            f"     of the {c['messages_doubled']} doubled messages, {c['doubled_after_failed_bookkeeping_write']} had their "
            f"bookkeeping write fail right after Zendesk accepted them (the stream retry sent them again)"
        )
    if c["failed"]:
        print(f"\nFAILED: {', '.join(c['failed'])}")
        print(json.dumps(c["examples"], indent=2, default=str))
    else:
        print(f"\n{c['messages_lost']} lost, {c['messages_doubled']} doubled, {c['conversations_still_parked']} stuck")


MOTO_CHILD = """
import logging, sys, time
sys.path.insert(0, sys.argv[2])
from local.moto_server import start_moto_server
logging.getLogger("werkzeug").setLevel(logging.ERROR)
start_moto_server(int(sys.argv[1]))
while sys.stdin.read(1):  # until the parent closes our stdin (or dies)
    pass
"""


class _MotoProcess:
    """A moto server in a child process of ours: its CPU work does not compete with
    the soak for this process's GIL. Stops when ``stop()`` closes its stdin (or when
    this process exits, which closes it too)."""

    def __init__(self, port: int) -> None:
        import subprocess
        import urllib.request

        self._process = subprocess.Popen([sys.executable, "-c", MOTO_CHILD, str(port), str(ROOT)], stdin=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("the moto server did not start")
                time.sleep(0.1)

    def stop(self) -> None:
        import subprocess

        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def start_moto(port: int, *, in_process: bool) -> Any:
    """A moto server on 127.0.0.1:``port`` with a ``stop()``."""
    if in_process:
        from local.moto_server import start_moto_server

        return start_moto_server(port)
    return _MotoProcess(port)


def main(argv: list[str] | None = None) -> int:
    """Start moto and the sandbox, run the soak, print (and save) the report."""
    args = parse_args(argv)
    # Quiet handlers: no per-request JSON logs or EMF metrics on stdout.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("chalicelib").setLevel(logging.ERROR)  # e.g. per-update Telegram gap warnings (counted instead)
    if args.app_log:
        from chalicelib.observability import logger as app_logger

        handler = logging.FileHandler(args.app_log)
        handler.setFormatter(app_logger.registered_formatter)  # redacted like in Lambda
        for name in ("chalicelib", "socialdesk"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))

    from local.defaults import SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN, free_port
    from local.zendesk_sandbox import ZendeskSandbox

    def log(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    moto_port = free_port()
    moto = start_moto(moto_port, in_process=args.moto_in_process)
    sandbox = None
    try:
        sandbox = ZendeskSandbox(host="127.0.0.1", port=0, email=SANDBOX_ZENDESK_EMAIL, api_token=SANDBOX_ZENDESK_TOKEN)
        sandbox.start()
        report = run_soak(args, f"http://127.0.0.1:{moto_port}", sandbox, log)
    finally:
        if sandbox is not None:
            sandbox.stop()
        moto.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print_report(report)
    return 0 if report["checks"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
