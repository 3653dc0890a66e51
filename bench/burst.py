"""Child process of ``make bench``: the crisis burst and the steady-state ticket latency.

Each mode starts its own Zendesk sandbox (so it can read every ticket and user directly),
points the app at it and at the table the parent made, sends webhooks through the Lambda
handler and drains the table's stream into the sync handler, as on AWS.

``burst``: 1,000 complaints (``bench.burst_workload``) sent as fast as the handler takes them,
then the stream drained until every complaint has its ticket and nothing more changes.
Reports every helpdesk request the sandbox counted, the time to ingest alone and the time to
drain, and how the tickets linked to problem tickets match the burst's clusters.

``steady``: one webhook at a time; each one's ticket or comment awaited in the sandbox.

Writes a JSON summary to the path given as argv[2].
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

VISIBLE_TIMEOUT_SECONDS = 30.0
# The burst's random draw (wordings, order, unrelated complaints): ``BENCH_BURST_SEED=12 BENCH_ONLY=burst
# make bench`` measures another burst of the same shape. 11 is the default the figures are quoted at.
BURST_SEED = int(os.environ.get("BENCH_BURST_SEED", "11"))
BUDGET_LIMITS = ("HELPDESK_RATE_PER_MINUTE", "HELPDESK_UPDATES_PER_MINUTE", "HELPDESK_USER_CREATES_PER_MINUTE")


def membership_scores(linked: Mapping[str, str], cluster_of: Mapping[str, str | None]) -> dict[str, Any]:
    """Precision and recall of crisis membership against the known clusters.

    ``linked``: author -> the problem ticket their complaint's ticket is an incident of.
    ``cluster_of``: author -> true cluster (None: unrelated). A problem stands for the cluster
    most of its incidents belong to (None when most are unrelated: a crisis made of noise).
    Precision: linked incidents in their problem's cluster, over all linked incidents.
    Recall: clustered complaints linked to a problem standing for their cluster, over all
    clustered complaints. Precision is None when nothing is linked.
    """
    members: dict[str, list[str | None]] = defaultdict(list)
    for author, problem in linked.items():
        members[problem].append(cluster_of.get(author))
    stands_for = {problem: Counter(labels).most_common(1)[0][0] for problem, labels in members.items()}
    right = sum(
        1
        for author, problem in linked.items()
        if cluster_of.get(author) is not None and cluster_of.get(author) == stands_for[problem]
    )
    clustered = sum(1 for label in cluster_of.values() if label is not None)
    per_cluster: dict[str, dict[str, int]] = {}
    for label in sorted({label for label in cluster_of.values() if label is not None}):
        size = sum(1 for value in cluster_of.values() if value == label)
        found = sum(1 for author, problem in linked.items() if cluster_of.get(author) == label and stands_for[problem] == label)
        per_cluster[label] = {"complaints": size, "linked": found, "problems": sum(1 for p in stands_for.values() if p == label)}
    return {
        "precision": right / len(linked) if linked else None,
        "recall": right / clustered if clustered else None,
        "linked": len(linked),
        "problems": len(members),
        "noise_problems": sum(1 for label in stands_for.values() if label is None),
        "per_cluster": per_cluster,
    }


def _start_sandbox() -> Any:
    from local.defaults import SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN
    from local.zendesk_sandbox import ZendeskSandbox

    sandbox = ZendeskSandbox(host="127.0.0.1", port=0, email=SANDBOX_ZENDESK_EMAIL, api_token=SANDBOX_ZENDESK_TOKEN).start()
    os.environ.update(ZENDESK_URL=sandbox.url, ZENDESK_EMAIL=SANDBOX_ZENDESK_EMAIL, ZENDESK_API_TOKEN=SANDBOX_ZENDESK_TOKEN)
    return sandbox


def _sender() -> Any:
    """Sends one delivery through the API Gateway handler, as the platform would."""
    import app as lambda_app
    from bench.lambda_events import BenchContext, api_gateway_event
    from local.samples import encode, sign

    secrets = dict(os.environ)

    def send(route: str, payload: dict[str, Any]) -> None:
        body = encode(payload)
        response = lambda_app.app(
            api_gateway_event("POST", f"/webhooks/{route}", body, sign(route, body, secrets)), BenchContext()
        )
        assert response["statusCode"] == 200, response

    return send


def _poller() -> Any:
    import boto3

    import app as lambda_app
    from local.stream_poller import StreamPoller

    # Batches gathered as the deployed event source gathers them (its batch size and batching
    # window), so a burst is opened in bulk as on AWS and a lone message waits the window.
    return StreamPoller(
        boto3.client("dynamodbstreams"),
        os.environ["STREAM_ARN"],
        lambda_app.sync_tickets,
        batch_size=lambda_app.SYNC_BATCH_SIZE,
        batching_window_seconds=lambda_app.SYNC_BATCHING_WINDOW_SECONDS,
    )


def _requesters(sandbox: Any) -> dict[int, str]:
    """Zendesk user id -> the author's platform id (``<platform>:<id>`` external ids)."""
    return {user["id"]: str(user.get("external_id") or "").partition(":")[2] for user in sandbox.users()}


def _budget_use(wiring: Any) -> Counter[str]:
    """What the helpdesk budget did over the run (seconds waited, requests refused, tokens
    unused), summed from what each sync invocation publishes as metrics."""
    totals: Counter[str] = Counter()

    def publish() -> None:
        budget = wiring.helpdesk_budget()
        if budget is not None:
            for figures in budget.take_figures()[0].values():
                totals["waited_seconds"] += figures.waited_seconds
                totals["refused"] += figures.refused
                totals["unused"] += figures.unused

    wiring.publish_helpdesk_budget = publish  # what app.sync_tickets calls after each batch
    return totals


def run_burst(run: str, size: int) -> dict[str, Any]:
    from bench.burst_workload import crisis_burst
    from bench.replay import count_writes
    from chalicelib import wiring

    sandbox = _start_sandbox()
    try:
        send, poller = _sender(), _poller()
        writes, budget_writes = count_writes(wiring._client("dynamodb"))
        budget_use = _budget_use(wiring)
        burst = crisis_burst(run, size, seed=BURST_SEED)

        started = time.perf_counter()
        for route, payload in burst.deliveries:
            send(route, payload)
        ingested = time.perf_counter() - started

        # Drained: every complaint has a ticket and a whole round of the stream changed nothing.
        deadline = started + 600
        while time.perf_counter() < deadline:
            handled = poller.poll_once()
            tickets = [t for t in sandbox.tickets() if t.get("type") != "problem"]
            if handled == 0 and len(tickets) >= size and poller.poll_once() == 0:
                break
        drained = time.perf_counter() - started

        authors = _requesters(sandbox)
        tickets = sandbox.tickets()
        problems = {t["id"] for t in tickets if t.get("type") == "problem"}
        linked = {
            authors.get(t["requester_id"], ""): str(t["problem_id"])
            for t in tickets
            if t.get("type") == "incident" and t.get("problem_id") is not None
        }
        complaint_tickets = [t for t in tickets if t["id"] not in problems]
        stats = sandbox.stats()
        return {
            "complaints": size,
            "seed": BURST_SEED,
            "budget_limits": {name: os.environ.get(name) for name in BUDGET_LIMITS},
            "deliveries": len(burst.deliveries),
            "platforms": dict(Counter(burst.platform_of.values())),
            "tickets": len(complaint_tickets),
            "authors_with_a_ticket": len({authors.get(t["requester_id"]) for t in complaint_tickets} & set(burst.cluster_of)),
            "problem_tickets": len(problems),
            "helpdesk_calls": stats["total"],
            "helpdesk_calls_by_operation": stats["requests"],
            "ingest_seconds": ingested,
            "drain_seconds": drained,
            "drained": drained < 600,
            "membership": membership_scores(linked, burst.cluster_of),
            "writes": dict(writes),
            "budget_writes": sum(budget_writes.values()),
            "budget_use": dict(budget_use),
            "stream_records": poller.records_handled,
            "stream_batches": poller.batches,
            "sync_failures": poller.failures,
        }
    finally:
        sandbox.stop()


def _visible(sandbox: Any, before: tuple[int, int]) -> bool:
    return _sandbox_size(sandbox) > before


def _sandbox_size(sandbox: Any) -> tuple[int, int]:
    """Tickets and customers' comments in the sandbox (a new message adds one or the other)."""
    tickets = sandbox.tickets()
    return len(tickets), sum(len(sandbox.comments(t["id"])) for t in tickets)


def run_steady(run: str, customers: int) -> dict[str, Any]:
    from bench.workload import mixed_replay

    sandbox = _start_sandbox()
    try:
        send, poller = _sender(), _poller()
        work = mixed_replay(run, customers)
        latencies: list[float] = []
        ingest: list[float] = []
        missing = 0
        for route, payload in work.deliveries:
            if _is_echo(payload):
                continue  # the brand's own message: no ticket or comment to wait for
            before = _sandbox_size(sandbox)
            started = time.perf_counter()
            send(route, payload)
            ingest.append(time.perf_counter() - started)
            while not _visible(sandbox, before):
                if time.perf_counter() - started > VISIBLE_TIMEOUT_SECONDS:
                    missing += 1
                    break
                poller.poll_once()
            else:
                latencies.append(time.perf_counter() - started)
            poller.drain()  # the bookkeeping records too, before the next message
        return {"messages": len(latencies) + missing, "latencies": latencies, "ingest": ingest, "missing": missing}
    finally:
        sandbox.stop()


def _is_echo(payload: dict[str, Any]) -> bool:
    return any(
        event.get("message", {}).get("is_echo") for entry in payload.get("entry", []) for event in entry.get("messaging", [])
    )


def main(mode: str, out_path: str, run: str, count: int) -> None:
    result = run_burst(run, count) if mode == "burst" else run_steady(run, count)
    with open(out_path, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
