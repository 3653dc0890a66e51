"""``python -m chalicelib.reporting``: TABLE_NAME with the environment's credentials, or ``--local``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib.reporting.cli import main
from local.defaults import free_port

AWS_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
             "AWS_ACCOUNT_ID_ENDPOINT_MODE", "TABLE_NAME", "REPORT_LANGUAGE")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """AWS settings of this test only (``--local`` sets them; the monkeypatch puts them back)."""
    for name in AWS_NAMES:
        monkeypatch.setenv(name, "")  # recorded, so whatever the test sets is undone afterwards
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return monkeypatch


def _table_with_one_ticket(client: object, name: str) -> None:
    client.create_table(  # type: ignore[attr-defined]
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    )
    at = (datetime.now(UTC) - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    client.put_item(TableName=name, Item={  # type: ignore[attr-defined]
        "pk": {"S": "CONV#x:tweets:brand:1"}, "sk": {"S": "MSG#1"}, "item_type": {"S": "message"}, "platform": {"S": "x"},
        "direction": {"S": "in"}, "created_at": {"S": at}, "message": {"S": json.dumps({"kind": "mention"})},
    })
    client.put_item(TableName=name, Item={  # type: ignore[attr-defined]
        "pk": {"S": "CONV#x:tweets:brand:1"}, "sk": {"S": "CONV"}, "item_type": {"S": "conversation"},
        "state": {"S": json.dumps({"ticket_id": "5", "ticket_status": "new"})},
    })


@pytest.fixture
def aws_table(clean_env: pytest.MonkeyPatch) -> Iterator[str]:
    with mock_aws():
        _table_with_one_ticket(boto3.client("dynamodb"), "socialdesk-test-messages")
        clean_env.setenv("TABLE_NAME", "socialdesk-test-messages")
        yield "socialdesk-test-messages"


def test_writes_the_page_for_table_name_in_the_language_asked(aws_table: str, clean_env: pytest.MonkeyPatch,
                                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("REPORT_LANGUAGE", "es")
    out = tmp_path / "deep" / "report.html"
    assert main(["--out", str(out), "--sla", "x:public=30m"]) == 0
    page = out.read_text(encoding="utf-8")
    assert '<html lang="es">' in page and aws_table in page
    assert "1 cliente espera más que el SLA (el que más, 2 h)" in page  # 2 h against the 30 min asked for
    printed = capsys.readouterr().out
    assert printed.startswith("Response-time report (") and printed.rstrip().endswith(str(out.resolve()))


def test_refuses_to_guess_the_table(clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--out", str(tmp_path / "r.html")])
    assert stopped.value.code == 2 and "set TABLE_NAME" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_a_bad_sla_target_is_refused(aws_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "r.html"), "--sla", "x:public=soon"])
    assert "not a duration" in capsys.readouterr().err


def test_local_reads_the_running_stacks_table(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``make report`` without TABLE_NAME: the moto server and table ``make run`` wrote to its state file."""
    import local.defaults
    from local.moto_server import start_moto_server

    port = free_port()
    server = start_moto_server(port)
    try:
        moto_url = f"http://127.0.0.1:{port}"
        client = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
        _table_with_one_ticket(client, "socialdesk-local-messages")
        state = tmp_path / "local.json"
        state.write_text(json.dumps({"moto_url": moto_url, "table_name": "socialdesk-local-messages"}))
        clean_env.setattr(local.defaults, "STATE_FILE", state)
        out = tmp_path / "report.html"
        assert main(["--local", "--out", str(out)]) == 0
        assert "X · public (1)" in out.read_text(encoding="utf-8")
        assert os.environ["AWS_ENDPOINT_URL"] == moto_url
    finally:
        server.stop()
