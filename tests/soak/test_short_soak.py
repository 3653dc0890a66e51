"""A short soak (``soak/run.py``) inside ``make test``: a few hundred deliveries, same faults, same checks.

Runs ``python -m soak.run`` in a child process (its own moto server, sandbox,
environment and wiring), so nothing leaks into the other tests, and reads the
JSON report back. Tuned to be hard in little time: more Zendesk outages and more
DynamoDB throttling storms than the full soak, every failed stream batch retried in a
fresh execution environment, and a redrive every few polls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ARGS = [
    "--deliveries", "400", "--duplicates", "0.25", "--seed", "7",
    "--chunk", "20", "--rotate-every", "1", "--outage-chance", "0.35", "--redrive-every", "6",
    "--ingest-throttle", "0.06", "--sync-throttle", "0.02",
    # Throttling storms (some longer than the sync waits to record a delivery), some
    # starting right after Zendesk accepted a message, and every failed stream batch
    # retried in a new execution environment (no in-memory state).
    "--storm-chance", "0.05", "--storm-after-write-chance", "0.05", "--fresh-container-chance", "1.0",
    # Operators work the helpdesk meanwhile (deleting, merging and closing tickets, deleting and
    # merging users), two redrives run at once, and one viral thread grows to 300 messages.
    "--operator-rate", "0.25", "--concurrent-redrives", "2", "--big-conversation", "300",
    # And a crisis: 40 more customers post one outage complaint in their own words within minutes.
    "--crisis", "40",
]


def test_short_soak_loses_and_doubles_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, "-m", "soak.run", *ARGS, "--quiet", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=480,
    )
    assert out.exists(), f"the soak did not finish (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    report = json.loads(out.read_text())
    checks, workload, ingest, faults, drain = (report[k] for k in ("checks", "workload", "ingest", "faults", "drain"))

    # The run really was adverse: duplicates, 503s, throttling and helpdesk faults.
    assert workload["deliveries"] >= 400 and workload["duplicate_share"] >= 0.2
    assert ingest["statuses"].get("503", 0) > 0, "no webhook was answered 503"
    assert sum(faults["dynamodb_throttled"].values()) > 0
    assert faults["zendesk"]["faults_fired"] > 0
    assert set(ingest["statuses"]) <= {"200", "503"}, ingest["unexpected_answers"]
    # The hardest case happened: Zendesk accepted a message, then recording that failed
    # for longer than the sync waits, and a fresh execution environment retried it.
    assert report["sync"]["bookkeeping_write_failed_after_helpdesk_accepted"] > 0

    # Every kind of operator action happened, and the viral thread was whole.
    assert all(faults["operator_actions"][action] > 0 for action in (
        "tickets_deleted", "tickets_merged", "tickets_closed", "users_deleted", "users_merged")), faults["operator_actions"]
    assert faults["concurrent_redrives"] == 2 and faults["big_conversation_messages"] == 300
    assert faults["crisis_complaints"] == 40  # each its own conversation, checked like every other below
    assert faults["helpdesk_budget"]["requests"] > 0  # every helpdesk request went through the shared budget

    # Nothing lost, nothing doubled, nothing left parked or stuck, order as the sync promises.
    summary = run.stdout[-4000:]
    assert checks["failed"] == [], f"soak checks failed: {checks['failed']}\n{json.dumps(checks['examples'], indent=2)}\n{summary}"
    assert checks["tickets"] >= checks["conversations_expected"] and checks["tickets_doubled"] == 0
    assert checks["messages_lost"] == 0 and checks["messages_doubled"] == 0
    assert checks["dlq_depth"] == 0 and checks["conversations_still_parked"] == 0
    assert checks["order_sync_order_violations"] == 0
    assert drain["sync_failures_after_faults_stopped"] == 0
    assert run.returncode == 0
