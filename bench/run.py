"""``make bench``: the four figures of the foundation issue, measured in one run.

Starts its own moto server and Zendesk sandbox on free 127.0.0.1 ports, runs each
measurement in a fresh child process (so module caches and log output do not
leak between them), prints a table and writes ``bench/results.json``.
Medians everywhere: one slow run on a shared machine must not decide a figure.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
INGEST_ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "300"))
COLD_ROUNDS = int(os.environ.get("BENCH_COLD_ROUNDS", "15"))
REPLAY_CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "60"))

TARGETS = {
    "ingest_p50_ratio": 1.3,
    "cold_start_ratio": 1.5,
    "zendesk_calls_per_message": 1.0,
    "ddb_writes_per_message": 2.0,
}

COLD_APP = """
import json, sys
import app
from bench.lambda_events import BenchContext
response = app.app(json.load(open(sys.argv[1])), BenchContext())
assert response["statusCode"] == 200, response
"""

COLD_FLOOR = """
import os, sys, uuid
import boto3
client = boto3.client("dynamodb")
client.put_item(TableName=os.environ["TABLE_NAME"], Item={"pk": {"S": "FLOOR#" + uuid.uuid4().hex}, "sk": {"S": "MSG"}, "raw": {"S": open(sys.argv[1]).read()}}, ConditionExpression="attribute_not_exists(pk)")
"""


def run_child(args: list[str], env: dict[str, str]) -> float:
    """Run a child Python process (its output discarded) and return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure_ingest(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """p50 of the handler path and of the floor, measured alternately in one process."""
    out = workdir / "ingest.json"
    run_child(["-m", "bench.ingest_latency", str(out), str(INGEST_ROUNDS)], env)
    data = json.loads(out.read_text())
    handler, floor = statistics.median(data["handler_ms"]), statistics.median(data["floor_ms"])
    return {"handler_p50_ms": handler, "floor_p50_ms": floor, "ratio": handler / floor, "requests": len(data["handler_ms"])}


def measure_cold_start(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Fresh interpreters: import the app + one signed webhook, vs. boto3 + client + one PutItem."""
    from bench.lambda_events import api_gateway_event
    from bench.workload import _messenger
    from local.samples import PAGE_ID, encode, sign

    app_times: list[float] = []
    floor_times: list[float] = []
    for n in range(COLD_ROUNDS):
        body = encode(_messenger(f"m_cold_{uuid.uuid4().hex}", "7100000099", PAGE_ID, "Cold start test", int(time.time())))
        event_file = workdir / f"cold-{n}.json"
        event_file.write_text(json.dumps(api_gateway_event("POST", "/webhooks/meta", body, sign("meta", body, env))))
        body_file = workdir / f"cold-{n}.body"
        body_file.write_bytes(body)
        app_times.append(run_child(["-c", COLD_APP, str(event_file)], env))
        floor_times.append(run_child(["-c", COLD_FLOOR, str(body_file)], env))
    app_ms, floor_ms = statistics.median(app_times) * 1000, statistics.median(floor_times) * 1000
    return {"app_median_ms": app_ms, "floor_median_ms": floor_ms, "ratio": app_ms / floor_ms, "rounds": COLD_ROUNDS}


def _sandbox_get(url: str, path: str, auth: str | None = None) -> Any:
    request = urllib.request.Request(url + path, headers={"Authorization": auth} if auth else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def measure_replay(env: dict[str, str], workdir: Path, sandbox: Any, *, retry_share: float) -> dict[str, Any]:
    """Zendesk calls and DynamoDB writes per message over the mixed replay (own table, empty sandbox)."""
    out = workdir / f"replay-{retry_share}.json"
    sandbox.reset()
    run_child(["-m", "bench.replay", str(out), str(int(time.time()) % 100000), str(REPLAY_CUSTOMERS), str(retry_share)], env)
    data = json.loads(out.read_text())
    calls = dict(sandbox.stats()["requests"])
    user_calls = sum(count for name, count in calls.items() if "/users" in name)
    ticket_calls = sum(count for name, count in calls.items() if "/users" not in name)
    writes = sum(data["writes"].values())
    return {
        **data,
        "zendesk_calls": calls,
        "ticket_calls": ticket_calls,
        "tickets": len(sandbox.tickets()),
        "zendesk_calls_per_message": ticket_calls / data["inbound"],
        "requester_calls_per_new_customer": user_calls / data["customers"],
        "ddb_writes_per_message": writes / data["messages_stored"],
    }


def main() -> int:
    """Start moto and the sandbox, take the four measurements, print and save them."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log

    sys.path.insert(0, str(ROOT))
    from local.defaults import LOCAL_SECRETS, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN, aws_environment, free_port
    from local.zendesk_sandbox import ZendeskSandbox

    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    sandbox = ZendeskSandbox(host="127.0.0.1", port=0, email=SANDBOX_ZENDESK_EMAIL, api_token=SANDBOX_ZENDESK_TOKEN)
    sandbox.start()
    try:
        env = {**os.environ, **aws_environment(f"http://127.0.0.1:{moto_port}"), **LOCAL_SECRETS}
        os.environ.update(aws_environment(f"http://127.0.0.1:{moto_port}"))
        import boto3

        from local.resources import create_local_resources

        def stack_env(stage: str) -> dict[str, str]:
            # One table per measurement: the replay's stream must not carry the
            # latency runs' messages into the sync.
            resources = create_local_resources(
                dynamodb=boto3.client("dynamodb"),
                sqs=boto3.client("sqs"),
                template_path=ROOT / "infra" / "template.json",
                stage=stage,
            )
            return {
                **env,
                "TABLE_NAME": resources.table_name,
                "STREAM_ARN": resources.stream_arn,
                "DLQ_URL": resources.dlq_url,
                "ZENDESK_URL": sandbox.url,
                "ZENDESK_EMAIL": SANDBOX_ZENDESK_EMAIL,
                "ZENDESK_API_TOKEN": SANDBOX_ZENDESK_TOKEN,
            }

        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            print("measuring webhook latency …", flush=True)
            ingest = measure_ingest(stack_env("bench-latency"), workdir)
            print("measuring cold starts …", flush=True)
            cold = measure_cold_start(stack_env("bench-cold"), workdir)
            print("replaying mixed traffic …", flush=True)
            replay = measure_replay(stack_env("bench-replay"), workdir, sandbox, retry_share=0.0)
            print("replaying it again with 20% platform retries …", flush=True)
            retried = measure_replay(stack_env("bench-retries"), workdir, sandbox, retry_share=0.2)
    finally:
        sandbox.stop()
        moto.stop()

    figures = {
        "ingest_p50_ratio": ingest["ratio"],
        "cold_start_ratio": cold["ratio"],
        "zendesk_calls_per_message": replay["zendesk_calls_per_message"],
        "ddb_writes_per_message": replay["ddb_writes_per_message"],
    }
    details = {
        "ingest_p50_ratio": f"handler p50 {ingest['handler_p50_ms']:.2f} ms / floor p50 {ingest['floor_p50_ms']:.2f} ms "
        f"({ingest['requests']} requests each)",
        "cold_start_ratio": f"app {cold['app_median_ms']:.0f} ms / boto3+PutItem {cold['floor_median_ms']:.0f} ms "
        f"(median of {cold['rounds']} fresh interpreters each)",
        "zendesk_calls_per_message": f"{replay['ticket_calls']} ticket calls for {replay['inbound']} customer messages; "
        f"requester creations per new customer {replay['requester_calls_per_new_customer']:.2f}",
        "ddb_writes_per_message": f"{sum(replay['writes'].values())} writes for {replay['messages_stored']} messages stored",
    }
    print()
    print(f"{'figure':<28}{'value':>8}{'target':>9}  {'':<4} how")
    ok = True
    for name, value in figures.items():
        passed = value <= TARGETS[name]
        ok &= passed
        print(f"{name:<28}{value:>8.2f}{'≤ ' + str(TARGETS[name]):>9}  {'ok' if passed else 'OVER':<4} {details[name]}")
    print(f"\nreplay: {replay['deliveries']} deliveries, {replay['customers']} customers, {replay['tickets']} tickets, "
          f"Zendesk calls {replay['zendesk_calls']}")
    extra_writes = sum(retried["writes"].values()) - sum(replay["writes"].values())
    print(f"with {retried['duplicate_deliveries']} platform retries added: {retried['zendesk_calls_per_message']:.2f} "
          f"ticket calls per message, {retried['tickets']} tickets, {extra_writes:+d} writes "
          f"(one failed conditional put per retried message), {retried['ddb_writes_per_message']:.2f} writes per message")
    RESULTS.write_text(
        json.dumps(
            {"figures": figures, "targets": TARGETS, "ingest": ingest, "cold_start": cold, "replay": replay,
             "replay_with_retries": retried,
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            indent=2,
        )
    )
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
