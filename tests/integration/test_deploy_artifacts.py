"""The deployment artifacts: CloudFormation template, Chalice config and policies, package.

``chalice package`` runs for real (no AWS credentials, only a region). It builds the
Lambda layer from ``requirements.txt`` with pip, so it needs PyPI (or a wheel mirror)
the first time; afterwards ``.chalice/deployments`` caches the zips. It takes about
2-3 s on the dev machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.resources import TemplateError, create_local_resources, resolve

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.json"
CHALICE_DIR = ROOT / ".chalice"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
CHALICE = Path(sys.executable).with_name("chalice")
STAGES = ("dev", "prod")
# Every secret the code reads by name must be named (as an SSM parameter) in each stage.
SECRET_NAMES = tuple(
    sorted(
        {
            name
            for path in [ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")]
            for name in re.findall(r'get_secret\("([A-Z0-9_]+)"\)', path.read_text())
        }
    )
)
FORBIDDEN_IN_PACKAGE = ("boto3", "botocore", "s3transfer", "moto", "pytest")
# Which AWS service each module's injected ``_client`` talks to (checked against the policy).
CLIENT_SERVICES = {
    "chalicelib/store/table.py": "dynamodb",
    "chalicelib/store/ledger.py": "dynamodb",
    "chalicelib/store/ingest.py": "dynamodb",  # what a webhook writes
    "chalicelib/sync/deadletter.py": "sqs",
    "chalicelib/channels/x/poller.py": "dynamodb",
    "chalicelib/channels/telegram/gaps.py": "dynamodb",
    "chalicelib/privacy/deletion.py": "dynamodb",
    "chalicelib/outbound/agent_events.py": "dynamodb",
    "chalicelib/outbound/agent_replies.py": "dynamodb",
    "chalicelib/outbound/fanout.py": "dynamodb",  # crisis fan-out jobs
    "chalicelib/helpdesks/freshdesk/events.py": "dynamodb",
    "chalicelib/reporting/data.py": "dynamodb",  # make report: an operator's scan
    "chalicelib/helpdesks/budget.py": "dynamodb",  # the helpdesk's shared request budget
    "chalicelib/helpdesks/freshdesk/crisis.py": "dynamodb",  # a crisis's members on Freshdesk
}
# Calls only operators' CLIs make, with their own credentials, never a Lambda role:
# ``python -m chalicelib.privacy.deletion forget --scan`` scans the table for leftovers.
OPERATOR_ONLY_ACTIONS = {"dynamodb:Scan"}
# IAM authorizes a transaction per item, with the single-item actions.
NOT_IAM_ACTIONS = {"TransactWriteItems", "TransactGetItems"}


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CFN_LINT), "--", str(path)], capture_output=True, text=True, timeout=120)


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy["Statement"]
    return [statements] if isinstance(statements, dict) else statements


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _allowed_actions(policy: dict[str, Any]) -> set[str]:
    return {action for s in _statements(policy) if s["Effect"] == "Allow" for action in _as_list(s["Action"])}


# --- infra/template.json -------------------------------------------------------------


def test_template_passes_cfn_lint():
    result = _cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_declares_the_table_and_queue_the_app_expects():
    template = _load(TEMPLATE)
    assert template["Parameters"]["Stage"]["AllowedValues"] == ["dev", "prod"]
    resources = template["Resources"]
    table = next(r for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert props["TableName"] == {"Fn::Sub": "socialdesk-${Stage}-messages"}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-author" and index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    queue = next(r for r in resources.values() if r["Type"] == "AWS::SQS::Queue")["Properties"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600 and queue["SqsManagedSseEnabled"] is True
    assert set(template["Outputs"]) == {"TableName", "TableStreamArn", "DeadLetterQueueUrl", "DeadLetterQueueArn", "AlertTopicArn"}
    declared = [r for name, r in resources.items() if not name.startswith("Fn::ForEach::")]  # the per-channel alarms
    assert not [r for r in declared if r["Type"].startswith(("AWS::SSM::", "AWS::SecretsManager::"))]
    # A message parked too long raises an alarm on the alert topic (the metric the redrive publishes).
    alarm = resources["ParkedHeadTooOldAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("socialdesk", "parked_head_age_seconds")
    assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]


def test_template_names_match_the_app_code():
    from chalicelib.store import ingest
    from chalicelib.store import table as store

    template = _load(TEMPLATE)
    table = template["Resources"]["MessagesTable"]["Properties"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == store.AUTHOR_INDEX
    for module in (store, ingest):  # the messages a webhook writes carry the index's and the TTL's attributes too
        source = Path(module.__file__).read_text()
        for name in [a["AttributeName"] for a in table["AttributeDefinitions"]] + [table["TimeToLiveSpecification"]["AttributeName"]]:
            assert f'"{name}"' in source, f"{name} is not an attribute {module.__name__} writes"


# --- .chalice/config.json and policies ----------------------------------------------


def test_local_stage_does_not_override_the_process_environment():
    """``chalice local`` copies the stage's environment variables into ``os.environ``
    (chalice/cli/factory.py, ``load_chalice_app``), so they must be empty for ``local``."""
    from chalice.cli.factory import CLIFactory

    environ = {"TABLE_NAME": "from-the-process", "STREAM_ARN": "arn:from-the-process"}
    config = CLIFactory(str(ROOT), environ=environ).create_config_obj(chalice_stage_name="local")
    assert config.environment_variables == {}


def test_stage_config_carries_parameter_names_never_secrets():
    config = _load(CHALICE_DIR / "config.json")
    assert config["version"] == "2.0" and config["app_name"] == "socialdesk"
    assert config["autogen_policy"] is False
    assert "environment_variables" not in config  # would clobber the env of `chalice local`
    for stage in STAGES:
        settings = config["stages"][stage]
        assert settings["iam_policy_file"] == f"policy-{stage}.json"
        variables = settings["environment_variables"]
        for name in SECRET_NAMES:
            assert name not in variables and f"{name}_SECRET_ID" not in variables
            assert variables[f"{name}_PARAM"].startswith(f"/socialdesk/{stage}/")
        assert variables["TABLE_NAME"] == f"socialdesk-{stage}-messages"
        assert f"table/socialdesk-{stage}-messages/stream/" in variables["STREAM_ARN"]
        assert variables["DLQ_URL"].endswith(f"/socialdesk-{stage}-sync-dlq")


@pytest.mark.parametrize("stage", STAGES)
def test_policy_is_scoped_to_the_stage(stage):
    policy = _load(CHALICE_DIR / f"policy-{stage}.json")
    other = next(s for s in STAGES if s != stage)
    for statement in _statements(policy):
        assert statement["Effect"] == "Allow"
        assert not any("*" in action for action in _as_list(statement["Action"])), statement
        for resource in _as_list(statement["Resource"]):
            assert resource != "*"
            assert f"socialdesk-{stage}" in resource or f"socialdesk/{stage}/" in resource
            assert f"socialdesk-{other}" not in resource and f"socialdesk/{other}/" not in resource
    assert not any(action.startswith("cloudwatch:") for action in _allowed_actions(policy))  # EMF goes via logs


def test_policy_allows_every_call_the_code_makes():
    policy = _load(CHALICE_DIR / "policy-dev.json")
    allowed = _allowed_actions(policy)
    calls = re.compile(r"\b_client\.([a-z_]+)\(")
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        operations = set(calls.findall(path.read_text()))
        if not operations:
            continue
        assert relative in CLIENT_SERVICES, f"{relative} calls AWS: add it to CLIENT_SERVICES and the policies"
        service = CLIENT_SERVICES[relative]
        for operation in operations:
            action = "".join(part.capitalize() for part in operation.split("_"))
            if action not in NOT_IAM_ACTIONS and f"{service}:{action}" not in OPERATOR_ONLY_ACTIONS:
                assert f"{service}:{action}" in allowed, f"{relative} calls {operation}: allow {service}:{action}"
    stream_reads = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}
    assert stream_reads <= allowed  # the sync_tickets event source mapping polls with the function's role
    assert {"ssm:GetParameter", "secretsmanager:GetSecretValue"} <= allowed


# --- chalice package ------------------------------------------------------------------


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("chalice-package")
    out = workdir / "out"
    # Package what `make deploy` packages on a fresh clone: no __pycache__ from the test run
    # itself, then `make bytecode`. (.chalice/deployments keeps the wheel cache: this stays fast.)
    project = workdir / "project"
    project.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, project / name)
    for name in ("chalicelib", ".chalice"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    made = subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "bytecode", f"PY={sys.executable}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "STREAM_ARN", "TABLE_NAME"))}
    env.update(AWS_DEFAULT_REGION="us-east-1")
    started = time.monotonic()
    result = subprocess.run(
        [str(CHALICE), "package", "--stage", "dev", str(out)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"chalice package took {elapsed:.1f}s")
    return out


def _sam(packaged: Path) -> dict[str, Any]:
    return _load(packaged / "sam.json")


def _functions(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def test_packaged_template_passes_cfn_lint(packaged):
    result = _cfn_lint(packaged / "sam.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_packaged_functions_and_event_sources(packaged):
    functions = _functions(_sam(packaged))
    stream_arn = _load(CHALICE_DIR / "config.json")["stages"]["dev"]["environment_variables"]["STREAM_ARN"]
    assert set(functions) == {"APIHandler", "SyncTickets", "RedriveParked", "PollX", "BackfillMeta", "TokenHealth", "RetryAgentReplies"}

    sync = functions["SyncTickets"]
    (event,) = sync["Events"].values()
    assert event["Type"] == "DynamoDB"
    assert event["Properties"]["Stream"] == stream_arn
    # Large batches with a short window: a burst reaches the sync's bulk creation together.
    properties = event["Properties"]
    assert (properties["StartingPosition"], properties["BatchSize"]) == ("TRIM_HORIZON", 2000)
    assert properties["MaximumBatchingWindowInSeconds"] == 2
    assert (sync["Timeout"], sync["MemorySize"]) == (300, 512)

    (schedule,) = functions["RedriveParked"]["Events"].values()
    assert schedule == {"Type": "Schedule", "Properties": {"Schedule": "rate(10 minutes)"}}
    (poll,) = functions["PollX"]["Events"].values()
    assert poll == {"Type": "Schedule", "Properties": {"Schedule": "rate(2 minutes)"}}
    # The redrive may replay a long backlog (one message can spend 120 s on its attachments):
    # Lambda's longest timeout, with the sync's remaining-time guard inside.
    assert (functions["RedriveParked"]["Timeout"], functions["RedriveParked"]["MemorySize"]) == (900, 512)
    for name in ("APIHandler", "PollX"):
        assert functions[name]["Timeout"] == 30
    for properties in functions.values():
        assert re.fullmatch(r"python3\.1[1-4]", properties["Runtime"])
        variables = properties["Environment"]["Variables"]
        assert variables["TABLE_NAME"] == "socialdesk-dev-messages"
        assert not set(SECRET_NAMES) & set(variables)


def test_packaged_roles_use_the_stage_policy_without_wildcard_actions(packaged):
    sam = _sam(packaged)
    roles = [r["Properties"] for r in sam["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == len(_functions(sam))  # autogen_policy false: one role per function
    expected = _load(CHALICE_DIR / "policy-dev.json")
    for role in roles:
        assert "ManagedPolicyArns" not in role
        (policy,) = role["Policies"]
        assert policy["PolicyDocument"] == expected
        for statement in _statements(policy["PolicyDocument"]):
            assert not any("*" in action for action in _as_list(statement["Action"]))


def test_packages_hold_no_sdk_or_dev_tools(packaged):
    app_zip = zipfile.ZipFile(packaged / "deployment.zip").namelist()
    layer_zip = zipfile.ZipFile(packaged / "layer-deployment.zip").namelist()
    assert "app.py" in app_zip and "chalicelib/store/table.py" in app_zip
    top_level = {name.split("/")[4] for name in layer_zip if name.count("/") >= 5}
    assert {"aws_lambda_powertools", "pydantic", "pydantic_core"} <= top_level
    for name in app_zip + layer_zip:
        assert not any(f"/{bad}/" in f"/{name}" for bad in FORBIDDEN_IN_PACKAGE), name


# What a cold start compiles: Lambda cannot write bytecode (/var/task and /opt are read-only), so
# every module imported without usable bytecode is compiled from source on every cold start.
# The child imports as Lambda does: the app's folder first, then the layer's site-packages.
_COMPILED_ON_IMPORT = """
import importlib._bootstrap_external as external, json, pkgutil, sys
task, layer = sys.argv[1], sys.argv[2]
compiled = []
source_to_code = external.SourceLoader.source_to_code
def spy(self, data, path, *args, **kwargs):
    compiled.append(path)
    return source_to_code(self, data, path, *args, **kwargs)
external.SourceLoader.source_to_code = spy
sys.dont_write_bytecode = True
sys.path[0:0] = [task, layer]
import app, chalicelib, pydantic
assert pydantic.__file__.startswith(layer), pydantic.__file__
for module in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    if not module.name.endswith(".__main__"):  # a command line: it would run
        __import__(module.name)
mine = [path for path in compiled if path.startswith((task, layer))]
print(json.dumps(sorted(path[len(task if path.startswith(task) else layer) + 1 :] for path in mine)))
"""


def _compiled_on_import(root: Path) -> list[str]:
    layer = root / "opt" / "python" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "TABLE_NAME"))}
    env.update(AWS_DEFAULT_REGION="us-east-1", PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-c", _COMPILED_ON_IMPORT, str(root / "task"), str(layer)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_cold_start_compiles_none_of_the_apps_code_nor_the_layers(packaged, tmp_path):
    app_zip = zipfile.ZipFile(packaged / "deployment.zip")
    tag = sys.implementation.cache_tag
    modules = [name for name in app_zip.namelist() if name.startswith("chalicelib/") and name.endswith(".py")]
    for module in modules:
        folder, _, file = module.rpartition("/")
        assert f"{folder}/__pycache__/{file[:-3]}.{tag}.pyc" in app_zip.namelist(), module
    lambda_root = tmp_path / "lambda"
    app_zip.extractall(lambda_root / "task")
    zipfile.ZipFile(packaged / "layer-deployment.zip").extractall(lambda_root / "opt")
    later = time.time() + 3600  # Lambda's copy of the files has its own times: the bytecode must not depend on them
    for path in lambda_root.rglob("*"):
        os.utime(path, (later, later))
    # Chalice packs app.py (a few lines) and its own runtime without bytecode, whatever the tree holds.
    chalice_packs_bare = ["app.py", "chalice/__init__.py", "chalice/app.py"]
    assert _compiled_on_import(lambda_root) == chalice_packs_bare

    # The control: without the bytecode, each module is compiled at every cold start, ours and the layer's.
    bare = tmp_path / "bare"
    shutil.copytree(lambda_root, bare, ignore=shutil.ignore_patterns("__pycache__"))
    imported = {module for module in modules if not module.endswith("/__main__.py")}
    assert set(_compiled_on_import(bare)) >= {*chalice_packs_bare, *imported, "pydantic/main.py", "aws_lambda_powertools/logging/logger.py"}

    # Bytecode that no longer matches its source is never used (a hand-edited file, a partial deploy).
    edited = lambda_root / "task" / "chalicelib" / "errors.py"
    edited.write_text(edited.read_text() + "\nEDITED_AFTER_THE_BYTECODE = True\n")
    assert _compiled_on_import(lambda_root) == sorted([*chalice_packs_bare, "chalicelib/errors.py"])


# --- local/resources.py ---------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")  # moto and the streams endpoint
    with mock_aws():
        yield


def test_local_resources_match_the_template(aws):
    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")

    created = create_local_resources(dynamodb=dynamodb, sqs=sqs, template_path=TEMPLATE)

    assert created.table_name == "socialdesk-local-messages"
    table = dynamodb.describe_table(TableName=created.table_name)["Table"]
    assert table["LatestStreamArn"] == created.stream_arn
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-author" and index["Projection"]["ProjectionType"] == "KEYS_ONLY"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    ttl = dynamodb.describe_time_to_live(TableName=created.table_name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    stream = boto3.client("dynamodbstreams").describe_stream(StreamArn=created.stream_arn)["StreamDescription"]
    assert stream["StreamStatus"] == "ENABLED"
    attributes = sqs.get_queue_attributes(QueueUrl=created.dlq_url, AttributeNames=["All"])["Attributes"]
    assert attributes["MessageRetentionPeriod"] == "1209600"
    assert attributes["QueueArn"].endswith(":socialdesk-local-sync-dlq")


def test_local_resources_are_reused(aws):
    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    first = create_local_resources(dynamodb=dynamodb, sqs=sqs, template_path=TEMPLATE, stage="dev")
    dynamodb.put_item(TableName=first.table_name, Item={"pk": {"S": "CONV#1"}, "sk": {"S": "CONV"}})

    again = create_local_resources(dynamodb=dynamodb, sqs=sqs, template_path=TEMPLATE, stage="dev")

    assert again == first and first.table_name == "socialdesk-dev-messages"
    assert dynamodb.scan(TableName=first.table_name)["Count"] == 1
    assert len(sqs.list_queues()["QueueUrls"]) == 1


def test_resolve_understands_only_what_the_template_uses():
    parameters = {"Stage": "dev", "AWS::Region": "eu-west-1"}
    assert resolve({"Fn::Sub": "socialdesk-${Stage}-${AWS::Region}-${!Literal}"}, parameters) == (
        "socialdesk-dev-eu-west-1-${Literal}"
    )
    assert resolve({"Fn::Sub": ["${Prefix}-x", {"Prefix": {"Ref": "Stage"}}]}, parameters) == "dev-x"
    assert resolve([{"Key": "stage", "Value": {"Ref": "Stage"}}], parameters) == [{"Key": "stage", "Value": "dev"}]
    with pytest.raises(TemplateError):
        resolve({"Fn::If": ["IsProd", True, False]}, parameters)
    with pytest.raises(TemplateError):
        resolve({"Ref": "Unknown"}, parameters)


# --- docs/deploy.md -------------------------------------------------------------------


def test_documented_manual_redrive_payload_is_a_scheduled_event():
    """Chalice parses a schedule handler's payload as a CloudWatch event before the
    handler runs; ``{}`` raises ``KeyError: 'version'``."""
    from chalice.app import CloudWatchEvent

    (payload,) = re.findall(r"--payload '([^']+)'", (ROOT / "docs" / "deploy.md").read_text())
    event = CloudWatchEvent(json.loads(payload), None)
    assert event.detail_type == "Scheduled Event"
    with pytest.raises(KeyError):
        CloudWatchEvent({}, None)
