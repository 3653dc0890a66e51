"""infra/record_outputs.py: stack outputs into the Chalice stage config and policy."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from infra.record_outputs import (
    OutputsError,
    apply_to_config,
    apply_to_policy,
    main,
    parse_outputs,
    policy_file_name,
    rewrite_resource,
)

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "210987654321", "eu-west-1"
STREAM = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/socialdesk-prod-messages/stream/2026-11-25T10:00:00.000"
OUTPUTS = {
    "TableName": "socialdesk-prod-messages",
    "TableStreamArn": STREAM,
    "DeadLetterQueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/socialdesk-prod-sync-dlq",
    "DeadLetterQueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:socialdesk-prod-sync-dlq",
}
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/socialdesk-prod-messages"


@pytest.fixture
def outputs():
    return parse_outputs(OUTPUTS)


def test_outputs_are_read_from_every_shape_the_cli_produces():
    as_list = [{"OutputKey": key, "OutputValue": value, "Description": "x"} for key, value in OUTPUTS.items()]
    described = {"Stacks": [{"StackName": "socialdesk-prod", "Outputs": as_list}]}

    assert parse_outputs(OUTPUTS) == parse_outputs(as_list) == parse_outputs(described)
    parsed = parse_outputs(described)
    assert (parsed.table_arn, parsed.region, parsed.account) == (TABLE, REGION, ACCOUNT)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DeadLetterQueueArn": ""}, "lack DeadLetterQueueArn"),
        ({"TableName": "other-table"}, "is not the stream of table"),
        ({"TableStreamArn": "not-an-arn"}, "not an ARN"),
        ({"TableStreamArn": TABLE}, "not a DynamoDB stream ARN"),
        ({"DeadLetterQueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/another-queue"}, "disagree"),
        (
            {
                "DeadLetterQueueArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:socialdesk-prod-sync-dlq",
                "DeadLetterQueueUrl": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/socialdesk-prod-sync-dlq",
            },
            "different regions",
        ),
    ],
)
def test_inconsistent_outputs_are_refused(change, message):
    with pytest.raises(OutputsError, match=message):
        parse_outputs({**OUTPUTS, **change})


def test_config_gets_the_stage_resource_variables_and_nothing_else(outputs):
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    before = copy.deepcopy(config)

    updated = apply_to_config(config, "prod", outputs)

    assert config == before  # pure: the input is untouched
    variables = updated["stages"]["prod"]["environment_variables"]
    assert variables["TABLE_NAME"] == "socialdesk-prod-messages"
    assert variables["STREAM_ARN"] == STREAM
    assert variables["DLQ_URL"] == OUTPUTS["DeadLetterQueueUrl"]
    for key in set(variables) - {"TABLE_NAME", "STREAM_ARN", "DLQ_URL"}:
        assert variables[key] == before["stages"]["prod"]["environment_variables"][key]
    assert updated["stages"]["dev"] == before["stages"]["dev"]
    assert updated["stages"]["local"] == before["stages"]["local"]


def test_unknown_stage_is_refused(outputs):
    with pytest.raises(OutputsError, match="staging"):
        apply_to_config({"stages": {"prod": {}}}, "staging", outputs)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("arn:aws:dynamodb:us-east-1:123456789012:table/socialdesk-prod-messages", TABLE),
        ("arn:aws:dynamodb:us-east-1:123456789012:table/old-name/index/by-author", f"{TABLE}/index/by-author"),
        ("arn:aws:dynamodb:us-east-1:123456789012:table/socialdesk-prod-messages/stream/*", f"{TABLE}/stream/*"),
        ("arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/REPLACE-WITH-TableStreamArn-OUTPUT", STREAM),
        ("arn:aws:sqs:us-east-1:123456789012:socialdesk-prod-sync-dlq", OUTPUTS["DeadLetterQueueArn"]),
        (
            "arn:aws:ssm:us-east-1:123456789012:parameter/socialdesk/prod/*",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/socialdesk/prod/*",
        ),
        (
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/socialdesk-prod-*:*",
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/socialdesk-prod-*:*",
        ),
        ("arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/ReadOnlyAccess"),
        ("*", "*"),
    ],
)
def test_each_kind_of_resource_is_rewritten(outputs, resource, expected):
    assert rewrite_resource(resource, outputs) == expected


def test_the_prod_policy_points_at_the_stack_and_keeps_its_actions(outputs):
    policy = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())

    updated = apply_to_policy(policy, outputs)

    assert [s["Action"] for s in updated["Statement"]] == [s["Action"] for s in policy["Statement"]]
    text = json.dumps(updated)
    assert "123456789012" not in text and "us-east-1" not in text
    by_sid = {s["Sid"]: s for s in updated["Statement"]}
    assert by_sid["MessagesTable"]["Resource"] == [TABLE, f"{TABLE}/index/by-author"]
    assert by_sid["MessagesTableStream"]["Resource"] == f"{TABLE}/stream/*"
    assert by_sid["SyncDeadLetterQueue"]["Resource"] == OUTPUTS["DeadLetterQueueArn"]
    assert apply_to_policy(updated, outputs) == updated  # idempotent


def test_policy_file_follows_the_stage_config():
    assert policy_file_name({"stages": {"prod": {"iam_policy_file": "p.json"}}}, "prod") == "p.json"
    assert policy_file_name({"stages": {"prod": {}}}, "prod") == "policy-prod.json"


def test_cli_writes_both_files_offline(tmp_path, capsys):
    chalice_dir = tmp_path / ".chalice"
    chalice_dir.mkdir()
    for name in ("config.json", "policy-prod.json", "policy-dev.json"):
        (chalice_dir / name).write_text((ROOT / ".chalice" / name).read_text())
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps([{"OutputKey": k, "OutputValue": v} for k, v in OUTPUTS.items()]))
    argv = ["--stage", "prod", "--outputs-file", str(outputs_file), "--project-dir", str(tmp_path)]

    assert main(argv) == 0

    config = json.loads((chalice_dir / "config.json").read_text())
    assert config["stages"]["prod"]["environment_variables"]["STREAM_ARN"] == STREAM
    policy = json.loads((chalice_dir / "policy-prod.json").read_text())
    assert ACCOUNT in json.dumps(policy)
    assert (chalice_dir / "policy-dev.json").read_text() == (ROOT / ".chalice" / "policy-dev.json").read_text()
    assert main(argv) == 0
    assert "unchanged: .chalice/config.json" in capsys.readouterr().out


def test_cli_reports_bad_outputs_without_writing(tmp_path, capsys):
    chalice_dir = tmp_path / ".chalice"
    chalice_dir.mkdir()
    original = (ROOT / ".chalice" / "config.json").read_text()
    (chalice_dir / "config.json").write_text(original)
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps({"TableName": "socialdesk-prod-messages"}))

    assert main(["--stage", "prod", "--outputs-file", str(outputs_file), "--project-dir", str(tmp_path)]) == 1

    assert "lack TableStreamArn" in capsys.readouterr().err
    assert (chalice_dir / "config.json").read_text() == original
