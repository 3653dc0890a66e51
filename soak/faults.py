"""Faults for the soak: DynamoDB throttling at the app's boto3 client, chaos in the Zendesk sandbox.

``DynamoThrottle`` hooks ``before-call.dynamodb`` on the client the app uses
(``wiring._client("dynamodb")``). When it fires it answers the call itself with a 400
``ProvisionedThroughputExceededException`` response, so botocore raises its modeled
exception exactly as it does once its own retries are spent -- no request reaches
DynamoDB and boto3 does not retry it (an exhausted retry budget, simulated in one
call). The app then sees what it would see in production after the SDK gave up:
ingest answers 503, the sync raises (and the stream batch is retried) or parks.

``ZendeskChaos`` re-plans the sandbox's faults (``inject``/``clear_faults``) every time
``rotate()`` is called: per endpoint a random fault kind fires at a random rate, and
now and then an outage (a run of consecutive failures on every endpoint) comes first.
The sandbox consults only the first matching fault per request, so each endpoint gets
its own fault (prefix ``match``) and rotating over time gives the mix.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

THROTTLE_CODE = "ProvisionedThroughputExceededException"
THROTTLE_MESSAGE = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)


class VirtualClock:
    """Real time plus every wait the soak shortened: the sync asks to sleep 30 s, sleeps
    0.08 s, and the clock moves 30 s. Faults that last a while (throttling storms) are
    timed on it, so a backoff that would outlast a storm in production outlasts it here."""

    def __init__(self) -> None:
        self._skipped = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds, monotonic."""
        return time.monotonic() + self._skipped

    def wall(self) -> float:
        """Epoch seconds on the same clock: what the sync reads to judge a record's age."""
        return time.time() + self._skipped

    def skip(self, seconds: float) -> None:
        """Account for ``seconds`` that were requested but not slept."""
        with self._lock:
            self._skipped += max(0.0, seconds)


class DynamoThrottle:
    """Fails a share of the client's DynamoDB calls with a throttling error (after "retries").

    ``rate`` is the probability per API call; change it at any time (e.g. one rate while
    webhooks are ingested and another while the sync runs); ``0`` turns it off.
    ``storm(seconds, after=n)``: once ``n`` more calls went through, every call fails
    for ``seconds`` on ``clock`` (a hot partition, a capacity dip).
    ``operations`` limits it to some operation names (default: every one).
    Thread-safe: the ingest writes a multi-message delivery from a thread pool.
    """

    def __init__(
        self,
        client: Any,
        *,
        rate: float = 0.0,
        seed: int = 0,
        operations: set[str] | None = None,
        clock: VirtualClock | None = None,
    ) -> None:
        self.rate = rate
        self.operations = operations
        self.clock = clock or VirtualClock()
        self.fired: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.storms = 0
        self.storm_seconds = 0.0
        self._storm_after = 0  # calls still to let through before the storm starts
        self._storm_duration = 0.0
        self._storm_until: float | None = None
        self._storm_real_until = 0.0
        self._storm_real_cap = 0.6
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._client = client
        client.meta.events.register("before-call.dynamodb", self._before_call, unique_id="soak-dynamo-throttle")

    def storm(self, seconds: float, *, after: int = 0, real_cap: float = 0.6) -> None:
        """Throttle every call for ``seconds`` on the clock, starting once ``after`` more
        calls went through. It also ends after ``real_cap`` seconds of real time: the soak
        compresses hours of traffic into minutes, so a storm long in real time would hit
        far more deliveries than it does in production; in the sync's own (virtual)
        backoff time it still lasts ``seconds``."""
        with self._lock:
            self._storm_after, self._storm_duration, self._storm_until = after, seconds, None
            self._storm_real_cap = real_cap
            self.storms += 1
            self.storm_seconds += seconds

    def stop(self) -> None:
        """No more throttling from now on."""
        with self._lock:
            self.rate = 0.0
            self._storm_duration, self._storm_until = 0.0, None

    def uninstall(self) -> None:
        """Remove the hook from the client."""
        self._client.meta.events.unregister("before-call.dynamodb", unique_id="soak-dynamo-throttle")

    def _storming(self) -> bool:
        if self._storm_until is None and self._storm_duration > 0:
            if self._storm_after > 0:
                self._storm_after -= 1
                return False
            self._storm_until = self.clock.now() + self._storm_duration
            self._storm_real_until = time.monotonic() + self._storm_real_cap
        if self._storm_until is not None:
            if self.clock.now() < self._storm_until and time.monotonic() < self._storm_real_until:
                return True
            self._storm_until, self._storm_duration = None, 0.0
        return False

    def _before_call(self, model: Any, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        name = model.name
        with self._lock:
            self.calls[name] += 1
            if self.operations is not None and name not in self.operations:
                return None
            if not self._storming() and (self.rate <= 0 or self._rng.random() >= self.rate):
                return None
            self.fired[name] += 1
        from botocore.awsrequest import AWSResponse

        # What DynamoDB answers to a throttled request, after the SDK's last attempt.
        parsed = {
            "Error": {"Code": THROTTLE_CODE, "Message": THROTTLE_MESSAGE},
            "ResponseMetadata": {"HTTPStatusCode": 400, "RetryAttempts": 4, "MaxAttemptsReached": True},
        }
        return AWSResponse("https://dynamodb.soak.invalid/", 400, {}, None), parsed


# --- Zendesk ------------------------------------------------------------------------------------

# Endpoints the sync calls, as the sandbox names them (prefix match).
ENDPOINTS = {
    "create_ticket": "POST /api/v2/tickets",
    "add_comment": "PUT /api/v2/tickets",
    "upsert_user": "POST /api/v2/users",
    "reads": "GET /api/v2/",  # audits, tickets by external_id, search
}


@dataclass
class ZendeskChaos:
    """Random faults in the sandbox, re-planned on every ``rotate()``.

    ``rate``: the mean probability that a request to an endpoint fails (or is slowed)
    while a plan is active. ``read_timeout``: the helpdesk client's read timeout; the
    "timeout" kind answers ``late_by`` seconds after it (the request is applied after
    the client gave up, as a slow Zendesk does). ``outage_chance``: per rotation, the
    chance of a burst of consecutive failures on every endpoint.
    """

    sandbox: Any
    rng: random.Random
    rate: float = 0.12
    read_timeout: float = 0.25
    late_by: float = 0.02
    outage_chance: float = 0.08
    planned: Counter[str] = field(default_factory=Counter)
    active: bool = True

    def kinds(self) -> dict[str, tuple[float, Any]]:
        """Fault kind -> (weight, maker of the sandbox fault dict)."""
        rng = self.rng
        return {
            "429_retry_after": (3, lambda: {"status": 429, "retry_after": rng.choice((1, 2, 5, 30, 60))}),
            "503_retry_after": (1, lambda: {"status": 503, "retry_after": rng.choice((1, 4))}),
            "500_before": (2, lambda: {"status": 500}),
            "500_after_applied": (2, lambda: {"status": 500, "when": "after"}),
            "drop_before": (2, lambda: {"drop": True}),
            "drop_after_applied": (2, lambda: {"drop": True, "when": "after"}),
            "slow": (2, lambda: {"delay": round(rng.uniform(0.02, 0.08), 3)}),
            "timeout_applied_late": (1, lambda: {"delay": round(self.read_timeout + self.late_by, 3)}),
        }

    def rotate(self) -> list[dict[str, Any]]:
        """Replace the sandbox's faults with a new random plan; returns it."""
        self.sandbox.clear_faults()
        if not self.active:
            return []
        kinds = self.kinds()
        names = list(kinds)
        weights = [kinds[n][0] for n in names]
        plan: list[dict[str, Any]] = []
        if self.rng.random() < self.outage_chance:
            # First in the list, so it fires before the per-endpoint faults.
            kind = self.rng.choice(("500_before", "drop_before", "500_after_applied", "429_retry_after"))
            plan.append({**kinds[kind][1](), "count": self.rng.randint(3, 12)})
            self.planned[f"outage:{kind}"] += 1
        for endpoint, match in ENDPOINTS.items():
            if self.rng.random() < 0.25:
                continue  # this endpoint behaves for a while
            kind = self.rng.choices(names, weights)[0]
            probability = min(0.9, self.rng.uniform(0.3, 1.7) * self.rate)
            plan.append({**kinds[kind][1](), "match": match, "probability": round(probability, 3),
                         "seed": self.rng.randrange(2**31)})
            self.planned[f"{endpoint}:{kind}"] += 1
        self.sandbox.inject(*plan)
        return plan

    def stop(self) -> None:
        """No more faults from now on."""
        self.active = False
        self.sandbox.clear_faults()


class Operators:
    """What agents and admins do in the helpdesk while the bridge works: delete tickets,
    merge a ticket into another, close tickets, delete end users, merge two end users.

    ``act()`` is called between sync rounds; each action happens with ``rate`` chance per
    call, on a random ticket (or user) the bridge made. What was done is counted per action
    and remembered per ticket, so the checks can tell a second ticket the bridge opened
    because an agent deleted or closed the first from one it opened by mistake."""

    ACTIONS = ("tickets_deleted", "tickets_merged", "tickets_closed", "users_deleted", "users_merged")

    def __init__(self, sandbox: Any, rng: random.Random, *, rate: float) -> None:
        self.sandbox = sandbox
        self.rng = rng
        self.rate = rate
        self.done: Counter[str] = Counter()
        self.touched_keys: set[str] = set()  # conversations whose ticket an operator deleted, merged or closed

    def act(self) -> None:
        """Perhaps do each kind of action once."""
        if self.rate <= 0:
            return
        tickets = [t for t in self.sandbox.tickets() if t.get("external_id") and t["status"] != "closed"]
        users = [u for u in self.sandbox.users() if u["active"] and u.get("external_id")]
        if tickets and self._now():
            ticket = self.rng.choice(tickets)
            self.sandbox.delete_ticket(ticket["id"])
            self._touched(ticket, "tickets_deleted")
            tickets.remove(ticket)
        if len(tickets) >= 2 and self._now():
            source, target = self.rng.sample(tickets, 2)
            self.sandbox.merge_tickets(source["id"], target["id"])
            self._touched(source, "tickets_merged")
            tickets.remove(source)
        if tickets and self._now():
            ticket = self.rng.choice(tickets)
            self.sandbox.set_status(ticket["id"], "closed")
            self._touched(ticket, "tickets_closed")
        if users and self._now():
            user = self.rng.choice(users)
            self.sandbox.delete_user(user["id"])
            self.done["users_deleted"] += 1
            users.remove(user)
        if len(users) >= 2 and self._now():
            source, target = self.rng.sample(users, 2)
            self.sandbox.merge_users(source["id"], target["id"])
            self.done["users_merged"] += 1

    def _now(self) -> bool:
        return self.rng.random() < self.rate

    def _touched(self, ticket: dict[str, Any], action: str) -> None:
        self.done[action] += 1
        self.touched_keys.add(str(ticket["external_id"]))
