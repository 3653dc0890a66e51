"""A local stand-in for a Standard Webhooks source's reply callback (e.g. a Trustpilot integration).

``ReplyCallbackReceiver(secret).start()`` serves ``POST /replies`` on 127.0.0.1 (on
``local.sandbox_http.JsonSandbox``). It does what a receiver should: verifies the
signature with the ``standardwebhooks`` library (401 when it does not verify) and keeps
each ``webhook-id`` once, answering a repeat 200 without keeping it again, so
``sent()`` holds every answer exactly once and ``stats()`` shows how many deliveries it
took. An accepted answer is acknowledged ``{"id": "tp-reply-<n>"}``.

``fail_next(status, count)`` answers the next deliveries with ``status`` (0: keeps the
answer, then drops the connection without answering). ``GET /__sandbox/sent`` lists the
answers (``make demo`` reads it).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any

from local.sandbox_http import JsonSandbox, Reply, SandboxRequest

PATH = "/replies"


class ReplyCallbackReceiver(JsonSandbox):
    """Receives signed answers at ``{url}/replies``."""

    name = "reply-callback"

    def __init__(self, secret: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.secret = secret
        self._answers: dict[str, dict[str, Any]] = {}  # webhook-id -> the answer, in arrival order
        self._faults: list[int] = []
        self._outcomes: Counter[str] = Counter()
        self._numbers = itertools.count(1)
        self.route("POST", PATH, self._receive, name="reply")
        self.serve_controls()

    @property
    def reply_url(self) -> str:
        """Use it as ``GENERIC_REPLY_URL_<SOURCE>``."""
        return self.url + PATH

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` deliveries with ``status`` (0: keep it, then drop the connection)."""
        with self._lock:
            self._faults.extend([status] * count)

    def sent(self) -> list[dict[str, Any]]:
        """Every answer received, once each: ``{"webhook_id", "id", "body"}``."""
        with self._lock:
            return [dict(answer) for answer in self._answers.values()]

    def stats(self) -> dict[str, int]:
        """``delivered`` (verified deliveries), ``repeats`` (a webhook-id seen before), ``refused``, ``fault``."""
        with self._lock:
            return dict(self._outcomes)

    def _receive(self, request: SandboxRequest) -> Reply | None:
        from standardwebhooks import Webhook
        from standardwebhooks.webhooks import WebhookVerificationError

        try:
            body = Webhook(self.secret).verify(request.body, {k: v for k, v in request.headers.items()})
        except (WebhookVerificationError, ValueError) as exc:
            with self._lock:
                self._outcomes["refused"] += 1
            return 401, {"message": f"signature refused: {exc}"}, {}
        webhook_id = str(request.header("webhook-id"))
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            if fault:
                self._outcomes["fault"] += 1
                return fault, {"message": "Injected failure."}, {}
            self._outcomes["delivered"] += 1
            known = self._answers.get(webhook_id)
            if known is not None:
                self._outcomes["repeats"] += 1
                return 200, {"id": known["id"]}, {}
            answer = {"webhook_id": webhook_id, "id": f"tp-reply-{next(self._numbers)}", "body": body}
            self._answers[webhook_id] = answer
        if fault == 0:
            return None  # kept, then the connection drops: the sender cannot tell
        return 200, {"id": answer["id"]}, {}


if __name__ == "__main__":  # pragma: no cover - manual use
    from local.defaults import LOCAL_SECRETS

    with ReplyCallbackReceiver(LOCAL_SECRETS["GENERIC_WEBHOOK_SECRET_TRUSTPILOT"], port=8055) as box:
        print(f"Reply callback on {box.reply_url}")
        threading.Event().wait()
