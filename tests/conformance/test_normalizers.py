"""Tier 1: every real payload through its platform's normalizer, compared with what the
platform's documentation says it is (``expectations.py``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.models import Direction, NormalizedBatch, SocialMessage
from chalicelib.channels.line import webhook as line
from chalicelib.channels.meta import webhook as meta
from chalicelib.channels.telegram import webhook as telegram
from chalicelib.channels.x import webhook as x
from tests.conformance.expectations import PAYLOADS, SEQUENCES
from tests.conformance.realpay import (
    PAYLOAD_DIR,
    TELEGRAM_BOT_ID,
    Expect,
    Msg,
    Status,
    payload,
    payload_names,
    route_of,
    sequence_names,
    sequence_steps,
)

NORMALIZERS: dict[str, Callable[[Any], NormalizedBatch]] = {
    "meta": meta.normalize_delivery,
    "x": x.normalize_delivery,
    "line": line.normalize_delivery,
    "telegram": lambda body: telegram.normalize_delivery(body, bot_id=TELEGRAM_BOT_ID),
}


def observed(message: SocialMessage) -> Msg:
    """A normalized message in the expectations' terms."""
    return Msg(
        id=message.message_id,
        key=message.conversation_key,
        kind=message.kind,
        author=message.author.platform_id,
        label=message.author.label,
        text=message.text,
        attachments=tuple(a.type for a in message.attachments),
        outbound=message.direction is Direction.OUTBOUND,
        edit_of=message.edit_of,
        deleted=message.deleted,
        rating=message.rating,
        recommends=message.recommends,
    )


def assert_normalized(batch: NormalizedBatch, expect: Expect) -> None:
    """``batch`` is exactly what ``expect`` says: nothing quarantined, nothing extra."""
    assert [r.error for r in batch.rejected] == [], "a current-format payload was quarantined"
    assert [observed(m) for m in batch.messages] == [
        dataclasses.replace(m, label=m.author_label) for m in expect.messages
    ]
    for message in batch.messages:
        assert message.conversation_key.startswith(f"{message.platform.value}:")
        assert message.created_at.utcoffset() == timedelta(0)
    assert [Status(s.message_id, s.conversation_key, s.status) for s in batch.statuses] == list(expect.statuses)
    assert batch.ignored == len(batch.ignored_reasons) == len(expect.ignored), batch.ignored_reasons
    for reason, expected in zip(batch.ignored_reasons, expect.ignored, strict=True):
        assert expected.lower() in reason.lower(), f"ignored because {reason!r}; expected a reason naming {expected!r}"


def test_every_real_payload_has_a_written_expectation() -> None:
    names = payload_names()
    assert names, f"no real payloads found in {PAYLOAD_DIR}"
    assert sorted(PAYLOADS) == names
    assert sorted(SEQUENCES) == sequence_names()


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_normalizes_as_documented(name: str) -> None:
    assert_normalized(NORMALIZERS[route_of(name)](payload(name)), PAYLOADS[name])


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_sequence_steps_normalize_as_documented(name: str) -> None:
    steps = sequence_steps(name)
    assert len(steps) == len(SEQUENCES[name])
    for step, expect in zip(steps, SEQUENCES[name], strict=True):
        assert_normalized(NORMALIZERS[route_of(name)](step), expect)
