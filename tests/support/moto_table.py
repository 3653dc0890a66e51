"""The one table (built from ``infra/template.json``) in moto, in-process: for tests of code
that writes table items without the rest of the stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def moto_table(monkeypatch: pytest.MonkeyPatch, stage: str = "unit") -> Iterator[tuple[Any, str]]:
    """``(DynamoDB client, table name)`` of a fresh in-process table, with fake credentials."""
    from local.resources import create_local_resources

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "test",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        resources = create_local_resources(dynamodb=client, sqs=boto3.client("sqs", region_name="us-east-1"),
                                           template_path=ROOT / "infra" / "template.json", stage=stage)
        yield client, resources.table_name
